"""Prepare stage (DESIGN section 2): raw files of one source -> canonical parquet + report.

``prepare_source`` runs the source's loader (:mod:`benchmark.data.loaders`) and writes
``<out_root>/<source>/``:

* ``interactions.parquet``: user, item (the source's own id), domain, value, timestamp;
* ``items.parquet``: item, domain, title, creator, description, tags (+ extras);
* any extra tables of the loader (``artist_tags``, ``cosubs``, ``users``, ...);
* ``report.json``: per file rows read / kept / dropped by reason, and per domain the
  numbers of rows, users and items, plus users present in both music and book.

Files are written to a temporary folder and renamed into place, so a failed run never
leaves a half-written output that a later stage could mistake for a good one. Output
depends only on the raw bytes (rows are sorted), so a re-run is byte-identical.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmark.config import paths
from benchmark.data.loaders import LoadResult, load_source
from benchmark.data.loaders.common import DOMAINS, PREPARED_INTERACTION_COLUMNS, PREPARED_ITEM_COLUMNS, LoaderError


def _check(res: LoadResult, source: str) -> None:
    inter, items = res.interactions, res.items
    if list(inter.columns) != PREPARED_INTERACTION_COLUMNS:
        raise LoaderError(f"{source}: interactions columns {list(inter.columns)} != {PREPARED_INTERACTION_COLUMNS}")
    if list(items.columns[: len(PREPARED_ITEM_COLUMNS)]) != PREPARED_ITEM_COLUMNS:
        raise LoaderError(f"{source}: items columns start {list(items.columns)}; expected {PREPARED_ITEM_COLUMNS}")
    if str(inter["value"].dtype) != "float32" or str(inter["timestamp"].dtype) != "Int64":
        raise LoaderError(f"{source}: value/timestamp dtypes {inter['value'].dtype}/{inter['timestamp'].dtype}")
    for name, rep in res.files.items():
        rep.check(f"{source}/{name}")
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
    for dom in DOMAINS:
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


def prepare_source(source: str, raw_root: Path = paths.RAW, out_root: Path = paths.PREPARED) -> dict:
    """Load ``source`` from ``raw_root`` and write its canonical tables under ``out_root``."""
    t0 = time.perf_counter()
    res = load_source(source, Path(raw_root))
    _check(res, source)
    report = summarise(res, source)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    final = out_root / source
    tmp = Path(tempfile.mkdtemp(prefix=f".{source}.", dir=out_root))
    try:
        _sorted(res.interactions, ["domain", "user", "item"]).to_parquet(tmp / "interactions.parquet", index=False)
        _sorted(res.items, ["domain", "item"]).to_parquet(tmp / "items.parquet", index=False)
        for name, df in res.extra.items():
            df.reset_index(drop=True).to_parquet(tmp / f"{name}.parquet", index=False)
        stable = {k: v for k, v in report.items() if k != "seconds"}
        (tmp / "report.json").write_text(json.dumps(stable, indent=2, sort_keys=False) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return report


def prepare_all(sources: list[str] | None = None, raw_root: Path = paths.RAW, out_root: Path = paths.PREPARED) -> dict[str, dict]:
    from benchmark.data.loaders import LOADERS

    return {s: prepare_source(s, raw_root, out_root) for s in (sources or sorted(LOADERS))}
