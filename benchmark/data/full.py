"""Prepare stage for the full public datasets, out of core (DESIGN section 2, last paragraph).

A full source is declared in params (``full_sources: {<id>: {kind, path}}``,
:mod:`benchmark.config.full_params`) and prepared into ``data/prepared/<id>/`` with the
same files as a mirrored source (:mod:`benchmark.data.prepare`): ``interactions.parquet``
and ``items.parquet`` with the canonical columns of :mod:`.loaders.common`, the
source's extra tables (Goodreads: ``shelves.parquet``) and ``report.json`` with every
file's rows read / kept / dropped by reason. So a scenario builder reads a full source
like any other.

Why not the pandas loaders: Goodreads' 228M shelf rows do not fit a laptop's memory as
frames. Here DuckDB reads the CSV/JSON(.gz) and writes parquet directly under a hard
``memory_limit``, spilling to a scratch folder (:mod:`.loaders.full_sql`); no whole file
ever becomes a pandas frame. The pandas loaders stay the reference: tests run both on
the same fixture files and require identical tables and counts.

Why no download here: the fetch stage pins a sha256 per file (``datasets/sources.tsv``)
and these files are not pinned (Kaggle needs a login; the others are archives of several
GB). A ``path`` that is a URL is refused with the pages to download from; the user
downloads and gives the local folder (README, "Full public datasets").
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

from benchmark.config import paths
from benchmark.config.full_params import KINDS
from benchmark.config.atomic import atomic_dir
from benchmark.data.loaders.common import DEFAULT_MIN_KEPT_SHARE, DOMAINS, FileReport, LoaderError
from benchmark.data.loaders import full_goodreads, full_lastfm, full_podcasts
from benchmark.data.loaders.full_sql import connect, sql_text

DOWNLOAD_PAGES = {
    "goodreads": "https://mengtingwan.github.io/data/goodreads (goodreads_interactions.csv, book_id_map.csv, user_id_map.csv, goodreads_books.json.gz, goodreads_book_authors.json.gz)",
    "lastfm-1k": "http://ocelma.net/MusicRecommendationDataset/lastfm-1K.html (userid-timestamp-artid-artname-traid-traname.tsv)",
    "lastfm-360k": "http://ocelma.net/MusicRecommendationDataset/lastfm-360K.html (usersha1-artmbid-artname-plays.tsv)",
    "kaggle-podcasts": "https://www.kaggle.com/datasets/thoughtvector/podcastreviews (podcasts.json, categories.json, reviews.json)",
}


def _goodreads(con, path: Path, out: Path) -> tuple[dict[str, FileReport], list[str], dict]:
    files = full_goodreads.files_in(path)
    reports = {files["interactions"].name: FileReport()}
    full_goodreads.prepare_interactions(con, files, out, reports[files["interactions"].name])
    notes = ["value = rating 0-5 (0 = not rated; shelved-not-read and read-not-rated are told apart by shelves.is_read)",
             "positive = is_read and (rating >= 4 or rating == 0)"]
    if files["books"] is not None:
        reports[files["books"].name] = FileReport()
        full_goodreads.prepare_books(con, files["books"], files["authors"], reports[files["books"].name])
        notes.append("is_audiobook from the edition format (audio/mp3/audible/cassette)")
    else:
        con.execute("""CREATE TABLE books (item VARCHAR, domain VARCHAR, title VARCHAR, creator VARCHAR, description VARCHAR,
            tags VARCHAR, format VARCHAR, is_audiobook BOOLEAN, isbn VARCHAR, isbn13 VARCHAR, year BIGINT, work_id VARCHAR)""")
        notes.append(f"no {full_goodreads.BOOKS[0]}: items have no text or format (the goodreads-audio scenario needs it)")
    # every shelved book gets an items row; books absent from the catalog have no metadata
    con.execute(f"""COPY (SELECT * FROM books UNION ALL SELECT item, 'book', '', '', '', '', '', false, '', '', NULL, ''
        FROM gr_items ANTI JOIN books USING (item) ORDER BY item) TO {sql_text(str(out / 'items.parquet'))} (FORMAT parquet)""")
    extra = {"items_without_metadata": int(con.execute("SELECT count(*) FROM gr_items ANTI JOIN books USING (item)").fetchone()[0])}
    return reports, notes, extra


PREPARERS = {
    "goodreads": _goodreads,
    "lastfm-1k": full_lastfm.prepare_1k,
    "lastfm-360k": full_lastfm.prepare_360k,
    "kaggle-podcasts": full_podcasts.prepare,
}
assert tuple(PREPARERS) == KINDS, "benchmark.config.full_params.KINDS and the preparers disagree"


def local_path(kind: str, path: str | Path) -> Path:
    """The local file or folder of a full source; a URL is refused with where to download."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", str(path), re.IGNORECASE):
        raise LoaderError(f"{path}: full sources are read from a local path; download the files from {DOWNLOAD_PAGES[kind]} and set path to their folder")
    p = Path(path).expanduser()
    if not p.exists():
        raise LoaderError(f"{p} not found; download the files from {DOWNLOAD_PAGES[kind]}")
    return p


def _summary(con, out: Path, source: str, reports: dict[str, FileReport], notes: list[str], extra: dict) -> dict:
    """report.json: per-file accounting (as :func:`benchmark.data.prepare.summarise`) and
    per-domain sizes, computed by DuckDB on the written parquet."""
    inter, items = sql_text(str(out / "interactions.parquet")), sql_text(str(out / "items.parquet"))
    per_domain = {}
    for dom in DOMAINS:
        rows, users, n_items, vmin, vmax, with_ts = con.execute(f"""SELECT count(*), count(DISTINCT "user"), count(DISTINCT item),
            min(value), max(value), count("timestamp") FROM read_parquet({inter}) WHERE domain = ?""", [dom]).fetchone()
        catalog = con.execute(f"SELECT count(*) FROM read_parquet({items}) WHERE domain = ?", [dom]).fetchone()[0]
        if rows or catalog:
            per_domain[dom] = {"rows": int(rows), "users": int(users), "items_interacted": int(n_items), "items_catalog": int(catalog),
                               "value_min": float(vmin) if rows else None, "value_max": float(vmax) if rows else None,
                               "with_timestamp": int(with_ts)}
    tables = {p.stem: int(con.execute(f"SELECT count(*) FROM read_parquet({sql_text(str(p))})").fetchone()[0])
              for p in sorted(out.glob("*.parquet")) if p.stem not in ("interactions", "items")}
    return {
        "source": source,
        "files": {name: rep.to_dict() for name, rep in sorted(reports.items())},
        "rows_read": int(sum(r.rows_read for r in reports.values())),
        "rows_kept": int(sum(r.rows_kept for r in reports.values())),
        "interactions": int(con.execute(f"SELECT count(*) FROM read_parquet({inter})").fetchone()[0]),
        "items": int(con.execute(f"SELECT count(*) FROM read_parquet({items})").fetchone()[0]),
        "domains": per_domain,
        "extra_tables": tables,
        **extra,
        "notes": list(notes),
    }


def prepare_full(
    source: str,
    kind: str,
    path: str | Path,
    out_root: Path = paths.PREPARED,
    *,
    memory_limit: str = "1.5GB",
    threads: int = 2,
    work_dir: Path | None = None,
    min_kept_share: float = DEFAULT_MIN_KEPT_SHARE,
) -> dict:
    """Prepare full source ``source`` of ``kind`` from the local ``path`` into ``out_root/<source>/``.

    DuckDB works in a scratch folder under ``work_dir`` (default: the system temp
    folder; it needs free disk of about the raw files' size) with ``memory_limit``.
    Every file's accounting and kept share (``min_kept_share``) is checked before the
    folder replaces an older one; any refusal is a one-line :class:`LoaderError`.
    """
    if kind not in PREPARERS:
        raise LoaderError(f"{source}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    t0 = time.perf_counter()
    src = local_path(kind, path)
    with atomic_dir(Path(out_root) / source) as tmp, tempfile.TemporaryDirectory(prefix="cdrbench-duckdb-", dir=work_dir) as work:
        con = connect(Path(work), memory_limit, threads)
        try:
            reports, notes, extra = PREPARERS[kind](con, src, tmp)
            for name, rep in reports.items():
                rep.check(f"{source}/{name}", min_kept_share)
            report = _summary(con, tmp, source, reports, notes, extra)
        finally:
            con.close()
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return {**report, "seconds": round(time.perf_counter() - t0, 2)}
