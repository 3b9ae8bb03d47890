"""Prepare stage (DESIGN section 2): raw files of one source -> canonical parquet + report.

``prepare_source`` runs the source's loader (:mod:`benchmark.data.loaders`) and writes
``<out_root>/<source>/``:

* ``interactions.parquet``: user, item (the source's own id), domain, value, timestamp;
* ``items.parquet``: item, domain, title, creator, description, tags (+ extras);
* any extra tables of the loader (``artist_tags``, ``cosubs``, ``users``, ...);
* ``report.json``: per file rows read / kept / dropped by reason, and per domain (the
  benchmark domains, then any category domain ``cat<N>`` by N) the numbers of rows,
  users and items, plus users present in both music and book.

Bad input never replaces good output: before anything is parsed, every raw file of
the source (and of the sources its loader also reads) is checked against the sha256 of
``datasets/sources.tsv``; the loaders refuse files they cannot read (header, encoding,
kept share ``prepare.min_kept_share``); and files are written to a temporary folder
renamed into place only when complete (:mod:`benchmark.data.atomic`). Each refusal is
one line naming the file. Output depends only on the raw bytes (rows are sorted), so a
re-run is byte-identical.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from benchmark.config import paths
from benchmark.config.atomic import atomic_dir
from benchmark.data.fetch import FetchError, verify_source
from benchmark.data.loaders import DEFAULT_MIN_KEPT_SHARE, RAW_DEPENDENCIES, LoadResult, check_source, load_source
from benchmark.data.loaders.common import DOMAINS, PREPARED_INTERACTION_COLUMNS, PREPARED_ITEM_COLUMNS, LoaderError, is_prepared_domain


def verify_inputs(source: str, raw_root: Path, sources_tsv: Path) -> None:
    """The pinned checksums of the source's raw files and of those its loader borrows."""
    for sid in [source, *RAW_DEPENDENCIES.get(source, [])]:
        try:
            verify_source(sid, raw_root, sources_tsv)
        except FetchError as e:
            raise LoaderError(f"{source}: {e}") from None


def _check(res: LoadResult, source: str, min_kept_share: float | None) -> None:
    inter, items = res.interactions, res.items
    if list(inter.columns) != PREPARED_INTERACTION_COLUMNS:
        raise LoaderError(f"{source}: interactions columns {list(inter.columns)} != {PREPARED_INTERACTION_COLUMNS}")
    if list(items.columns[: len(PREPARED_ITEM_COLUMNS)]) != PREPARED_ITEM_COLUMNS:
        raise LoaderError(f"{source}: items columns start {list(items.columns)}; expected {PREPARED_ITEM_COLUMNS}")
    if str(inter["value"].dtype) != "float32" or str(inter["timestamp"].dtype) != "Int64":
        raise LoaderError(f"{source}: value/timestamp dtypes {inter['value'].dtype}/{inter['timestamp'].dtype}")
    for name, rep in res.files.items():
        rep.check(f"{source}/{name}", min_kept_share)
    if len(inter):
        dup = inter.duplicated(["user", "item", "domain"])
        if dup.any():
            raise LoaderError(f"{source}: {int(dup.sum())} duplicate (user, item, domain) interactions")
        known = set(zip(items["domain"], items["item"]))
        missing = [k for k in set(zip(inter["domain"], inter["item"])) if k not in known]
        if missing:
            raise LoaderError(f"{source}: {len(missing)} interaction items lack an items row, e.g. {missing[:3]}")


def summarise(res: LoadResult, source: str) -> dict:
    """The report: per-file accounting and per-domain sizes."""
    inter = res.interactions
    per_domain = {}
    present = set(inter["domain"].unique()) | set(res.items["domain"].unique())
    categories = sorted((d for d in present if d not in DOMAINS and is_prepared_domain(d)), key=lambda d: int(d[3:]))
    for dom in [*DOMAINS, *categories]:
        part = inter[inter["domain"] == dom]
        n_items = int((res.items["domain"] == dom).sum())
        if len(part) or n_items:
            per_domain[dom] = {
                "rows": int(len(part)),
                "users": int(part["user"].nunique()),
                "items_interacted": int(part["item"].nunique()),
                "items_catalog": n_items,
                "value_min": float(part["value"].min()) if len(part) else None,
                "value_max": float(part["value"].max()) if len(part) else None,
                "with_timestamp": int(part["timestamp"].notna().sum()),
            }
    users_of = {dom: set(inter.loc[inter["domain"] == dom, "user"]) for dom in DOMAINS}
    return {
        "source": source,
        "files": {name: rep.to_dict() for name, rep in sorted(res.files.items())},
        "rows_read": int(sum(r.rows_read for r in res.files.values())),
        "rows_kept": int(sum(r.rows_kept for r in res.files.values())),
        "interactions": int(len(inter)),
        "items": int(len(res.items)),
        "domains": per_domain,
        "users_music_and_book": len(users_of["music"] & users_of["book"]),
        "users_music_and_podcast": len(users_of["music"] & users_of["podcast"]),
        "extra_tables": {k: int(len(v)) for k, v in sorted(res.extra.items())},
        "notes": list(res.notes),
    }


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in df.columns]
    return df.sort_values(keys, kind="stable").reset_index(drop=True) if keys else df.reset_index(drop=True)


def prepare_source(
    source: str,
    raw_root: Path = paths.RAW,
    out_root: Path = paths.PREPARED,
    *,
    sources_tsv: Path | None = paths.SOURCES_TSV,
    min_kept_share: float = DEFAULT_MIN_KEPT_SHARE,
) -> dict:
    """Load ``source`` from ``raw_root`` and write its canonical tables under ``out_root``.

    ``sources_tsv=None`` skips the checksum check (hand-made fixtures, which no table
    pins); the pipeline always verifies. Any refusal raises :class:`LoaderError`
    before ``out_root/<source>`` is touched.
    """
    t0 = time.perf_counter()
    check_source(source)
    if sources_tsv is not None:
        verify_inputs(source, Path(raw_root), Path(sources_tsv))
    res = load_source(source, Path(raw_root), min_kept_share)
    _check(res, source, min_kept_share)
    report = summarise(res, source)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    with atomic_dir(Path(out_root) / source) as tmp:
        _sorted(res.interactions, ["domain", "user", "item"]).to_parquet(tmp / "interactions.parquet", index=False)
        _sorted(res.items, ["domain", "item"]).to_parquet(tmp / "items.parquet", index=False)
        for name, df in res.extra.items():
            df.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
        stable = {k: v for k, v in report.items() if k != "seconds"}
        (tmp / "report.json").write_text(json.dumps(stable, indent=2, sort_keys=False) + "\n")
    return report


def prepare_all(sources: list[str] | None = None, raw_root: Path = paths.RAW, out_root: Path = paths.PREPARED, **kwargs) -> dict[str, dict]:
    from benchmark.data.loaders import LOADERS

    return {s: prepare_source(s, raw_root, out_root, **kwargs) for s in (sources or sorted(LOADERS))}
