"""Readers for the full public datasets that users with a network download themselves.

These are not mirrored (too large, or licensed for download only), so they are not
in ``datasets/sources.tsv``; each reader takes the path of the downloaded file(s) and
returns the same :class:`~.common.LoadResult` as the mirrored loaders:

* Last.fm 1K (``userid-timestamp-artid-artname-traid-traname.tsv``): play events,
  aggregated to user x artist play counts with timestamp = first play;
* Last.fm 360K (``usersha1-artmbid-artname-plays.tsv``): user x artist play counts;
* Kaggle "Podcast Reviews" (``reviews.json``, ``podcasts.json``, ``categories.json``,
  JSON lines);
* UCSD Goodreads interactions (``goodreads_interactions.csv`` with its id maps, or the
  ``goodreads_interactions_dedup.json.gz`` variant) and books
  (``goodreads_books.json.gz``) whose edition ``format`` marks real audiobooks.

Files are streamed line by line (the 1K file has 19M lines) and plain or gzip.
Artists are keyed by MusicBrainz id when present, else by ``name:<lower-cased
name>``, since both Last.fm files leave the MBID empty for many artists.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.loaders import isbn as isbnlib
from benchmark.data.loaders.common import (BAD_ENCODING, BAD_JSON, DUPLICATE, MISSING, OUT_OF_RANGE, UNKNOWN_ID,
    WRONG_COLUMNS, FileReport, LoaderError, LoadResult, canonical_interactions, canonical_items, empty_interactions,
    join_tags, to_number)

CHUNK = 500_000
_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
AUDIO_FORMAT = re.compile(r"audio|mp3|audible|cassette", re.IGNORECASE)


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise LoaderError(f"{path} not found; download it from the dataset's page (see datasets/README)")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _batched(rows: Iterator[list[str]], names: list[str], rep: FileReport, empty_frame: bool) -> Iterator[pd.DataFrame]:
    """String DataFrames of ``CHUNK`` rows; ``empty_frame``: one empty frame for an empty file."""
    buf: list[list[str]] = []
    for parts in rows:
        buf.append(parts)
        if len(buf) >= CHUNK:
            yield pd.DataFrame(buf, columns=names, dtype=str)
            buf = []
    if buf or (empty_frame and rep.rows_read == 0):
        yield pd.DataFrame(buf, columns=names, dtype=str)


def iter_tsv(path: Path, n_cols: int, names: list[str], rep: FileReport, header: bool = False) -> Iterator[pd.DataFrame]:
    """Yield string DataFrames of ``CHUNK`` well-formed lines; bad lines are counted."""

    def rows() -> Iterator[list[str]]:
        with _open(path) as fh:
            if header:
                fh.readline()
            for raw in fh:
                raw = raw.rstrip(b"\r\n")
                if not raw.strip():
                    continue
                rep.rows_read += 1
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    rep.drop(BAD_ENCODING)
                    continue
                parts = line.split("\t")
                if len(parts) != n_cols:
                    rep.drop(WRONG_COLUMNS)
                    continue
                yield parts

    return _batched(rows(), names, rep, empty_frame=True)


def iter_json_lines(path: Path, rep: FileReport) -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file; bad lines are counted."""
    with _open(path) as fh:
        for raw in fh:
            if not raw.strip():
                continue
            rep.rows_read += 1
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                rep.drop(BAD_ENCODING)
                continue
            except json.JSONDecodeError:
                rep.drop(BAD_JSON)
                continue
            if not isinstance(rec, dict):
                rep.drop(BAD_JSON)
                continue
            yield rec


def artist_key(mbid: pd.Series, name: pd.Series) -> pd.Series:
    mbid = mbid.str.strip().str.lower()
    return mbid.where(mbid.str.match(_MBID), "name:" + name.str.strip().str.lower())


def _artist_items(names: pd.DataFrame) -> pd.DataFrame:
    first = names.drop_duplicates("item")
    return canonical_items(first.assign(domain="music", title=first["name"], creator=first["name"], description="", tags=""))


def load_lastfm_1k(path: Path) -> LoadResult:
    """Last.fm 1K play events -> user x artist play counts (timestamp = first play)."""
    rep = FileReport()
    names = ["user", "ts", "mbid", "name", "track_mbid", "track"]
    agg, artists = [], []
    for df in iter_tsv(path, 6, names, rep):
        df["user"] = df["user"].str.strip()
        df = rep.drop_mask(df, (df["user"].eq("") | (df["mbid"].str.strip().eq("") & df["name"].str.strip().eq(""))).to_numpy(), MISSING)
        ts = pd.to_datetime(df["ts"].str.strip(), errors="coerce", utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        df = rep.drop_mask(df.assign(ts=ts), ts.isna().to_numpy(), "bad_timestamp")
        df["item"] = artist_key(df["mbid"], df["name"])
        df["t"] = df["ts"].astype("int64") // 10**9
        agg.append(df.groupby(["user", "item"]).agg(value=("t", "size"), timestamp=("t", "min")).reset_index())
        artists.append(df[["item", "name"]].drop_duplicates("item"))
        rep.rows_kept += len(df)
    inter = pd.concat(agg).groupby(["user", "item"], as_index=False).agg(value=("value", "sum"), timestamp=("timestamp", "min"))
    rep.notes.append(f"{rep.rows_kept} play events aggregated into {len(inter)} user-artist pairs")
    items = _artist_items(pd.concat(artists))
    return LoadResult(canonical_interactions(inter.assign(domain="music")), items, {Path(path).name: rep}, notes=["value = number of plays; timestamp = first play (Unix s)"])


def load_lastfm_360k(path: Path) -> LoadResult:
    """Last.fm 360K user x artist play counts; rows of the same user and artist key
    (spelling variants of one MBID) are summed and the extra rows counted as duplicates."""
    rep = FileReport()
    parts, artists = [], []
    for df in iter_tsv(path, 4, ["user", "mbid", "name", "value"], rep):
        df["user"] = df["user"].str.strip()
        df = rep.drop_mask(df, (df["user"].eq("") | (df["mbid"].str.strip().eq("") & df["name"].str.strip().eq(""))).to_numpy(), MISSING)
        df = to_number(df, "value", rep)
        df = rep.drop_mask(df, (df["value"] <= 0).to_numpy(), OUT_OF_RANGE)
        df["item"] = artist_key(df["mbid"], df["name"])
        parts.append(df[["user", "item", "value"]])
        artists.append(df[["item", "name"]].drop_duplicates("item"))
    df = pd.concat(parts, ignore_index=True)
    inter = df.groupby(["user", "item"], as_index=False)["value"].sum()
    rep.drop(DUPLICATE, len(df) - len(inter))
    rep.rows_kept = len(inter)
    items = _artist_items(pd.concat(artists))
    return LoadResult(canonical_interactions(inter.assign(domain="music", timestamp=pd.NA)), items, {Path(path).name: rep}, notes=["value = plays (summed over rows of one artist key)"])


def _unix(series: pd.Series, fmt: str | None = None) -> pd.Series:
    t = pd.to_datetime(series, errors="coerce", utc=True, format=fmt)
    out = pd.Series(pd.NA, index=series.index, dtype="Int64")
    ok = t.notna()
    out[ok] = (t[ok].astype("int64") // 10**9).astype("int64")
    return out


def load_kaggle_podcast_reviews(folder: Path) -> LoadResult:
    """Kaggle "Podcast Reviews" JSON-lines tables -> podcast interactions and items.

    Items are keyed by iTunes id when ``podcasts.json`` gives one (the same id space
    as the mirrored Apple data), else by Kaggle's ``podcast_id``; tags = categories.
    Repeated (author, podcast) reviews keep the latest.
    """
    folder = Path(folder)
    files = {n: FileReport() for n in ("podcasts.json", "categories.json", "reviews.json")}
    pods = pd.DataFrame(list(iter_json_lines(folder / "podcasts.json", files["podcasts.json"])))
    rep = files["podcasts.json"]
    for col in ("podcast_id", "itunes_id", "title"):
        if col not in pods:
            pods[col] = ""
    pods = pods.fillna("")
    pods["podcast_id"] = pods["podcast_id"].astype(str).str.strip()
    pods = rep.drop_mask(pods, pods["podcast_id"].eq("").to_numpy(), MISSING)
    pods = rep.drop_mask(pods, pods.duplicated("podcast_id").to_numpy(), DUPLICATE)
    rep.rows_kept = len(pods)
    itunes = pods["itunes_id"].astype(str).str.replace(r"\.0$", "", regex=True).str.strip()
    pods["item"] = itunes.where(itunes.str.fullmatch(r"\d+"), pods["podcast_id"])
    rep.flags["no_itunes_id_podcast_id_used"] += int((~itunes.str.fullmatch(r"\d+")).sum())
    item_of = dict(zip(pods["podcast_id"], pods["item"]))

    rep = files["categories.json"]
    cats: dict[str, list[str]] = {}
    for rec in iter_json_lines(folder / "categories.json", rep):
        pid, cat = str(rec.get("podcast_id") or "").strip(), str(rec.get("category") or "").strip()
        if not pid or not cat:
            rep.drop(MISSING)
        elif pid not in item_of:
            rep.drop(UNKNOWN_ID)
        else:
            cats.setdefault(pid, []).append(cat)
            rep.rows_kept += 1

    rep = files["reviews.json"]
    recs = [(str(r.get("author_id") or "").strip(), str(r.get("podcast_id") or "").strip(), r.get("rating"), r.get("created_at")) for r in iter_json_lines(folder / "reviews.json", rep)]
    rv = pd.DataFrame(recs, columns=["user", "podcast_id", "value", "created_at"], dtype=object)
    rv = rep.drop_mask(rv, (rv["user"].eq("") | rv["podcast_id"].eq("")).to_numpy(), MISSING)
    rv = to_number(rv.astype({"value": str}), "value", rep)
    rv = rep.drop_mask(rv, ~rv["value"].between(1, 5).to_numpy(), OUT_OF_RANGE)
    rv = rep.drop_mask(rv, ~rv["podcast_id"].isin(set(item_of)).to_numpy(), UNKNOWN_ID)
    rv["timestamp"] = _unix(rv["created_at"].astype(str))
    rv["item"] = rv["podcast_id"].map(item_of)
    rv = rv.sort_values("timestamp", kind="stable", na_position="first")
    rv = rep.drop_mask(rv, rv.duplicated(["user", "item"], keep="last").to_numpy(), DUPLICATE)
    rep.rows_kept = len(rv)
    rep.flags["no_timestamp"] += int(rv["timestamp"].isna().sum())

    pods = rep_dedupe_items(pods, files["podcasts.json"])
    items = canonical_items(
        pods.assign(domain="podcast", creator="", description="", tags=pods["podcast_id"].map(lambda p: join_tags(cats.get(p, [])))),
        extra=["podcast_id"],
    )
    return LoadResult(canonical_interactions(rv.assign(domain="podcast")), items, files, notes=["user = author_id; value = rating 1-5; timestamp = created_at"])


def rep_dedupe_items(pods: pd.DataFrame, rep: FileReport) -> pd.DataFrame:
    """Two Kaggle podcast ids sharing one iTunes id become one item (flagged)."""
    dup = pods.duplicated("item")
    rep.flags["podcast_ids_merged_on_itunes_id"] += int(dup.sum())
    return pods[~dup]


def _goodreads_date(s: pd.Series) -> pd.Series:
    return _unix(s.astype(str), fmt="%a %b %d %H:%M:%S %z %Y")


def load_goodreads_interactions(path: Path, book_id_map: Path | None = None, user_id_map: Path | None = None) -> LoadResult:
    """UCSD Goodreads shelves/ratings: value = rating 0-5 (0 = shelved without rating).

    The CSV uses compact integer ids; with ``book_id_map.csv`` (book_id_csv, book_id)
    they are translated to the ids of ``goodreads_books.json.gz`` (``user_id_map.csv``
    likewise for users). The json(.gz) variant already uses those ids and has dates.
    """
    path = Path(path)
    rep = FileReport()
    if path.name.endswith((".json", ".json.gz")):
        recs = [(r.get("user_id"), r.get("book_id"), r.get("rating"), r.get("date_added")) for r in iter_json_lines(path, rep)]
        chunks = [pd.DataFrame(recs, columns=["user", "item", "value", "date"], dtype=object).astype(str)]
    else:
        chunks = iter_tsv_csv(path, rep)
    parts = []
    for df in chunks:  # reduce every chunk to clean, typed rows before concatenating
        df["user"], df["item"] = df["user"].str.strip(), df["item"].str.strip()
        df = rep.drop_mask(df, (df["user"].isin(["", "None"]) | df["item"].isin(["", "None"])).to_numpy(), MISSING)
        df = to_number(df, "value", rep)
        df = rep.drop_mask(df, ~df["value"].between(0, 5).to_numpy(), OUT_OF_RANGE)
        df["timestamp"] = _goodreads_date(df["date"]) if "date" in df else pd.Series(pd.NA, index=df.index, dtype="Int64")
        parts.append(df[["user", "item", "value", "timestamp"]].astype({"value": "float32"}))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["user", "item", "value", "timestamp"])
    for col, mpath in (("item", book_id_map), ("user", user_id_map)):
        if mpath is not None:
            m = pd.read_csv(mpath, dtype=str)
            mapping = dict(zip(m.iloc[:, 0].str.strip(), m.iloc[:, 1].str.strip()))
            df = rep.drop_mask(df, ~df[col].isin(set(mapping)).to_numpy(), UNKNOWN_ID)
            df[col] = df[col].map(mapping)
    df = rep.drop_mask(df, df.duplicated(["user", "item"]).to_numpy(), DUPLICATE)
    rep.rows_kept = len(df)
    rep.flags["rating_0_shelved_kept"] += int((df["value"] == 0).sum())
    items = canonical_items(pd.DataFrame({"item": sorted(df["item"].unique()), "domain": "book"}))
    return LoadResult(canonical_interactions(df.assign(domain="book")), items, {path.name: rep}, notes=["value = rating 0-5; 0 = shelved/read without rating"])


def iter_tsv_csv(path: Path, rep: FileReport) -> Iterator[pd.DataFrame]:
    """goodreads_interactions.csv: comma-separated, header, five integer columns."""
    names = ["user", "item", "is_read", "value", "is_reviewed"]

    def rows() -> Iterator[list[str]]:
        with _open(path) as fh:
            fh.readline()
            for raw in fh:
                if not raw.strip():
                    continue
                rep.rows_read += 1
                parts = raw.decode("ascii", errors="replace").strip().split(",")
                if len(parts) != 5:
                    rep.drop(WRONG_COLUMNS)
                    continue
                yield parts

    return _batched(rows(), names, rep, empty_frame=False)


def is_audiobook_format(fmt: object) -> bool:
    """True for audio editions: "Audiobook", "Audio CD", "Audible Audio", "MP3 CD"..."""
    return bool(AUDIO_FORMAT.search(str(fmt or "")))


def load_goodreads_books(path: Path, authors_path: Path | None = None, top_shelves: int = 10) -> LoadResult:
    """``goodreads_books.json.gz`` -> book items with ``format`` and ``is_audiobook``.

    ``creator`` is author names when ``goodreads_book_authors.json.gz`` is given, else
    author ids; ``tags`` are the most popular shelves. ISBNs are normalised like
    Book-Crossing's so the two can be joined.
    """
    rep = FileReport()
    names: dict[str, str] = {}
    if authors_path is not None:
        for rec in iter_json_lines(Path(authors_path), FileReport()):
            names[str(rec.get("author_id"))] = str(rec.get("name") or "")
    rows, seen = [], set()
    for rec in iter_json_lines(path, rep):
        bid, title = str(rec.get("book_id") or "").strip(), str(rec.get("title") or "").strip()
        if not bid or not title:
            rep.drop(MISSING)
            continue
        if bid in seen:
            rep.drop(DUPLICATE)
            continue
        seen.add(bid)
        authors = [a.get("author_id") for a in rec.get("authors") or [] if isinstance(a, dict)]
        shelves = sorted((s for s in rec.get("popular_shelves") or [] if isinstance(s, dict)), key=lambda s: -int(s.get("count") or 0))
        fmt = str(rec.get("format") or "").strip()
        rows.append(
            {
                "item": bid,
                "title": title,
                "creator": ", ".join(names.get(str(a), str(a)) for a in authors if a is not None),
                "description": str(rec.get("description") or ""),
                "tags": join_tags(s.get("name", "") for s in shelves[:top_shelves]),
                "format": fmt,
                "is_audiobook": is_audiobook_format(fmt),
                "isbn": isbnlib.normalise(rec.get("isbn")),
                "isbn13": isbnlib.clean(rec.get("isbn13")),
                "year": pd.to_numeric(rec.get("publication_year") or np.nan, errors="coerce"),
                "work_id": str(rec.get("work_id") or ""),
            }
        )
    rep.rows_kept = len(rows)
    df = pd.DataFrame(rows, columns=["item", "title", "creator", "description", "tags", "format", "is_audiobook", "isbn", "isbn13", "year", "work_id"])
    df["year"] = pd.to_numeric(df["year"], errors="coerce").round().astype("Int64")
    df["is_audiobook"] = df["is_audiobook"].astype(bool)
    rep.flags["audiobook_editions"] += int(df["is_audiobook"].sum())
    items = canonical_items(df.assign(domain="book"), extra=["format", "is_audiobook", "isbn", "isbn13", "year", "work_id"])
    return LoadResult(empty_interactions(), items, {Path(path).name: rep}, notes=["is_audiobook from the edition format (audio/mp3/audible/cassette)"])
