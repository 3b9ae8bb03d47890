"""Douban (GA-DTCDR release): the same people rating books and music.

Each file is ``user \\t item \\t rating`` with ratings 1-5. User ids are shared across
domains (they are the same Douban accounts) while item ids restart at 1 in each
domain, so ``item`` is only unique within ``domain``; the scenario stage prefixes it.

Which book file: the release has ``douban_book/ratings.dat`` (96k ratings, 2,110
users) and ``ratings_200000.dat`` (227k ratings from a later commit, 2,212 users).
Only the first reproduces the reference overlap of DESIGN section 3 (1,566 users with
both book and music ratings; the larger file gives 1,604) and it is the file the
GA-DTCDR code reads, so it is the one used; the larger file is fetched but unused.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import OUT_OF_RANGE, FileReport, LoadResult, canonical_interactions, canonical_items, dedupe, to_number
from benchmark.data.loaders.files import read_rows, require

SOURCE = "douban-gadtcdr"
FILES = {"music": "music_ratings.dat", "book": "book_ratings.dat"}
RATING_RANGE = (1, 5)
COLUMNS = ("user", "item", "rating")  # headerless; the first row must be three numbers


def _read(path: Path, domain: str, rep: FileReport) -> pd.DataFrame:
    _, rows = read_rows(path, rep, sep="\t", columns=COLUMNS, header=False, kinds="iin", quoting=False)
    df = pd.DataFrame(rows, columns=["user", "item", "value"], dtype=str)
    for col in ("user", "item"):
        df = to_number(df, col, rep, integer=True)
        df[col] = df[col].astype("int64").astype(str)
    df = to_number(df, "value", rep)
    lo, hi = RATING_RANGE
    df = rep.drop_mask(df, ~df["value"].between(lo, hi).to_numpy(), OUT_OF_RANGE)
    df = dedupe(df, ["user", "item"], rep)
    rep.rows_kept = len(df)
    return df.assign(domain=domain, timestamp=pd.NA)


def load(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files: dict[str, FileReport] = {}
    parts = []
    for domain, name in FILES.items():
        files[name] = FileReport()
        parts.append(_read(require(d / name, SOURCE), domain, files[name]))
    inter = canonical_interactions(pd.concat(parts, ignore_index=True))
    items = (
        inter[["domain", "item"]]
        .drop_duplicates()
        .sort_values(["domain", "item"], key=lambda s: s if s.name == "domain" else s.astype("int64"))
    )
    items = canonical_items(items)
    notes = [
        "book file: book_ratings.dat (the GA-DTCDR book file; reproduces 1,566 shared users); book_ratings_200000.dat is not used",
        "item ids restart per domain: (domain, item) is the key; users are shared accounts across domains",
        "no item text or timestamps in this release",
    ]
    return LoadResult(inter, items, files, notes=notes)
