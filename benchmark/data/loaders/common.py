"""Shared pieces of the loaders: canonical tables, per-file accounting, tolerant readers.

Every loader turns one raw source into the same two canonical tables, so the scenario
builders never see a source's quirks:

* interactions: ``user`` (str), ``item`` (str, the source's own id, not prefixed),
  ``domain`` ("music" | "podcast" | "book"), ``value`` (float32), ``timestamp`` (Int64);
* items: ``item``, ``domain``, ``title``, ``creator``, ``description``, ``tags``
  ("|"-joined), plus optional source-specific columns.

Raw files are messy (latin-1 bytes in UTF-8 files, broken quoting, out-of-range
ratings). The rule is *never drop silently*: every row read is either kept or counted
under a named reason in a :class:`FileReport`, and ``read == kept + dropped`` is
checked before a report is written.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DOMAINS = ("music", "podcast", "book")
# Prepared tables (data/prepared/<source>/); a built scenario's own columns are
# benchmark.scenarios.schema's (items gain ``text``, interactions ``positive``).
PREPARED_INTERACTION_COLUMNS = ["user", "item", "domain", "value", "timestamp"]
PREPARED_ITEM_COLUMNS = ["item", "domain", "title", "creator", "description", "tags"]
TAG_SEP = "|"

# Drop reasons, named once so reports of different sources can be compared.
BAD_ENCODING = "bad_encoding"
WRONG_COLUMNS = "wrong_column_count"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_ID = "unknown_id"
DUPLICATE = "duplicate"
MISSING = "missing_value"
NOT_A_NUMBER = "not_a_number"
BAD_JSON = "bad_json"
OTHER_CATEGORY = "other_category"


class LoaderError(ValueError):
    """A raw file is absent or unusable as a whole (not a row-level problem)."""


@dataclass
class FileReport:
    """Row accounting for one raw file: what was read, kept, dropped (by reason), and
    non-dropping flags (e.g. rows kept although their item has no metadata)."""

    rows_read: int = 0
    rows_kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    flags: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += int(n)

    def drop_mask(self, df: pd.DataFrame, mask, reason: str) -> pd.DataFrame:
        """Count rows where ``mask`` is true under ``reason`` and return the others."""
        mask = np.asarray(mask, dtype=bool)
        self.drop(reason, int(mask.sum()))
        return df[~mask]

    def check(self, name: str) -> None:
        total = self.rows_kept + sum(self.dropped.values())
        if total != self.rows_read:
            raise AssertionError(f"{name}: rows read {self.rows_read} != kept {self.rows_kept} + dropped {total - self.rows_kept}")

    def to_dict(self) -> dict:
        return {
            "rows_read": int(self.rows_read),
            "rows_kept": int(self.rows_kept),
            "dropped": {k: int(v) for k, v in sorted(self.dropped.items())},
            "flags": {k: int(v) for k, v in sorted(self.flags.items())},
            "notes": list(self.notes),
        }


@dataclass
class LoadResult:
    """What a loader returns: the two canonical tables, optional extra tables
    (written as ``<name>.parquet``), per-file reports and source-level notes."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    files: dict[str, FileReport]
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def require(path: Path, source: str) -> Path:
    if not Path(path).is_file():
        raise LoaderError(f"{source}: raw file {path} not found; run the fetch stage (benchmark.data.fetch.fetch_source({source!r}))")
    return Path(path)


def read_rows(
    path: Path,
    report: FileReport,
    *,
    sep: str = ",",
    n_cols: int,
    header: bool = True,
    quoting: bool = True,
    fallback_encoding: str | None = None,
    lenient_tail: bool = False,
) -> tuple[list[str] | None, list[list[str]]]:
    """Parse a delimited text file into rows of exactly ``n_cols`` string fields.

    Bytes are decoded as UTF-8 with ``surrogateescape`` so one bad byte spoils only its
    own row: such a row is re-decoded with ``fallback_encoding`` when one is given
    (flagged ``decoded_<enc>``), else dropped as ``bad_encoding``. Rows with another
    field count are dropped as ``wrong_column_count``; blank lines are ignored. With
    ``lenient_tail`` extra trailing fields that are all empty are tolerated.
    """
    text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=sep,
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        strict=False,
    )
    any_bad = _SURROGATE.search(text) is not None
    head: list[str] | None = None
    rows: list[list[str]] = []
    for rec in reader:
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue
        if header and head is None:
            head = [h.strip() for h in rec]
            continue
        report.rows_read += 1
        if any_bad and any(_SURROGATE.search(f) for f in rec):
            if fallback_encoding is None:
                report.drop(BAD_ENCODING)
                continue
            rec = [f.encode("utf-8", errors="surrogateescape").decode(fallback_encoding) for f in rec]
            report.flags[f"decoded_{fallback_encoding}"] += 1
        if len(rec) != n_cols:
            if lenient_tail and len(rec) > n_cols and not any(f.strip() for f in rec[n_cols:]):
                rec = rec[:n_cols]
            else:
                report.drop(WRONG_COLUMNS)
                continue
        rows.append(rec)
    return head, rows


_SURROGATE = re.compile("[\udc80-\udcff]")


def to_number(df: pd.DataFrame, col: str, report: FileReport, *, integer: bool = False) -> pd.DataFrame:
    """Parse ``col`` as a number; unparsable or empty cells are dropped (``missing_value``
    for blanks, ``not_a_number`` otherwise, including "nan"/"inf")."""
    raw = df[col].astype(str).str.strip()
    num = pd.to_numeric(raw, errors="coerce")
    blank = raw.eq("")
    df = df.assign(**{col: num})
    df = report.drop_mask(df, blank.to_numpy(), MISSING)
    df = report.drop_mask(df, ~np.isfinite(df[col].to_numpy(dtype="float64")), NOT_A_NUMBER)
    if integer:
        df = report.drop_mask(df, (df[col] != np.round(df[col])).to_numpy(), NOT_A_NUMBER)
    return df


def dedupe(df: pd.DataFrame, keys: list[str], report: FileReport, keep: str = "first") -> pd.DataFrame:
    dup = df.duplicated(keys, keep=keep).to_numpy()
    return report.drop_mask(df, dup, DUPLICATE)


def clean_str(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.replace(r"\s+", " ", regex=True).str.strip()


def canonical_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce to the canonical interaction columns and dtypes (and check domains)."""
    out = pd.DataFrame(
        {
            "user": df["user"].astype(str).to_numpy(),
            "item": df["item"].astype(str).to_numpy(),
            "domain": df["domain"].astype(str).to_numpy(),
            "value": pd.to_numeric(df["value"]).astype("float32").to_numpy(),
            "timestamp": (df["timestamp"] if "timestamp" in df else pd.Series(pd.NA, index=df.index)).astype("Int64").to_numpy(),
        }
    )
    out["timestamp"] = out["timestamp"].astype("Int64")
    bad = set(out["domain"].unique()) - set(DOMAINS)
    if bad:
        raise LoaderError(f"unknown domains {sorted(bad)}; expected one of {DOMAINS}")
    return out


def empty_interactions() -> pd.DataFrame:
    """Interactions table of a catalog-only source."""
    return canonical_interactions(pd.DataFrame({c: [] for c in PREPARED_INTERACTION_COLUMNS}).assign(domain=pd.Series([], dtype=str)))


def canonical_items(df: pd.DataFrame, extra: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """Canonical item columns (text cells never null) plus the requested extra columns."""
    out = pd.DataFrame({"item": df["item"].astype(str).to_numpy(), "domain": df["domain"].astype(str).to_numpy()})
    for col in PREPARED_ITEM_COLUMNS[2:]:
        out[col] = clean_str(df[col]).to_numpy() if col in df else ""
    for col in extra:
        out[col] = df[col].to_numpy()
    dup = out.duplicated(["domain", "item"])
    if dup.any():
        raise LoaderError(f"items table has {int(dup.sum())} duplicate (domain, item) keys, e.g. {out[dup].iloc[0].tolist()[:2]}")
    return out.reset_index(drop=True)


def join_tags(tags) -> str:
    """Join tag names with ``|``; a tag may not contain the separator."""
    seen: list[str] = []
    for t in tags:
        t = str(t).replace(TAG_SEP, "/").strip()
        if t and t not in seen:
            seen.append(t)
    return TAG_SEP.join(seen)
