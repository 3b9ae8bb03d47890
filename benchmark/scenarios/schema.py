"""On-disk schema of a built scenario, shared by every builder and every reader.

A scenario folder (``data/scenarios/<name>/``) holds:

``interactions.parquet``
    user (str), item (str, prefixed by domain: ``music:51``, ``book:0439``), domain
    (str), value (float32: rating or play count), timestamp (Int64, nullable),
    positive (bool: counts as a target positive / consumed source item).
``items.parquet``
    item, domain, title, creator, text (what the text encoder sees; may be empty).
``users.parquet``
    user, has_music, has_podcast, has_book (bool), cohort (str), evaluable (bool).
``folds.parquet``
    seed, fold, user, role in {train, valid, test}: one row per evaluable user per
    (seed, fold). Non-evaluable users are training users in every fold.
``meta.json``
    name, source_domains, target_domain, semi_synthetic, params, notes.

Prefixing item ids by domain is what lets RecBole atomic files hold all domains in
one item vocabulary without collisions (Douban restarts ids per domain).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import DOMAINS  # noqa: F401  (one list of domains, from the data stage)

TARGET = "book"
ROLES = ("train", "valid", "test")

INTERACTION_COLUMNS = ["user", "item", "domain", "value", "timestamp", "positive"]
ITEM_COLUMNS = ["item", "domain", "title", "creator", "text"]
USER_COLUMNS = ["user", "has_music", "has_podcast", "has_book", "cohort", "evaluable"]
FOLD_COLUMNS = ["seed", "fold", "user", "role"]

# Cohort labels of DESIGN section 5, as plain ASCII so they survive CSV and shells.
COHORT_MP = "m&p"  # music and podcast history
COHORT_M_ONLY = "m-only"  # music only, podcast imputed
COHORT_P_ONLY = "p-only"
COHORT_NONE = "none"

SCENARIO_FILES = ("interactions.parquet", "items.parquet", "users.parquet", "folds.parquet", "meta.json")


def prefixed(domain: str, raw_id: object) -> str:
    return f"{domain}:{raw_id}"


def cohort_of(has_music: bool, has_podcast: bool) -> str:
    if has_music and has_podcast:
        return COHORT_MP
    if has_music:
        return COHORT_M_ONLY
    if has_podcast:
        return COHORT_P_ONLY
    return COHORT_NONE


class SchemaError(ValueError):
    """A scenario folder or table does not follow this schema."""


def check_columns(df: pd.DataFrame, expected: list[str], what: str) -> None:
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise SchemaError(f"{what}: missing columns {missing}; has {list(df.columns)}")


def scenario_hash(folder: Path) -> str:
    """Content hash of a built scenario: sha256 over its files, in a fixed order.

    Results, submissions and the leaderboard carry it, so a number can always be
    traced to the exact data it was computed on.
    """
    h = hashlib.sha256()
    for name in SCENARIO_FILES:
        p = Path(folder) / name
        if not p.exists():
            raise SchemaError(f"scenario {folder} lacks {name}; run `dvc repro` (stage scenario)")
        h.update(name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text())
