"""Shared pieces of the loaders: canonical tables, per-file accounting, tolerant readers.

Every loader turns one raw source into the same two canonical tables, so the scenario
builders never see a source's quirks:

* interactions: ``user`` (str), ``item`` (str, the source's own id, not prefixed),
  ``domain`` ("music" | "podcast" | "book", or a category domain ``cat<N>``: a source
  category no benchmark role is named after, kept for builders that give it a role),
  ``value`` (float32), ``timestamp`` (Int64);
* items: ``item``, ``domain``, ``title``, ``creator``, ``description``, ``tags``
  ("|"-joined), plus optional source-specific columns.

Raw files are messy (latin-1 bytes in UTF-8 files, broken quoting, out-of-range
ratings). The rule is *never drop silently*: every row read is either kept or counted
under a named reason in a :class:`FileReport`, and ``read == kept + dropped`` is
checked before a report is written.

The opposite failure is a file the loader misreads as a whole (another delimiter, an
extra column, UTF-16): every row is dropped and an empty table would replace good
output. So a file is checked before its rows are counted (:mod:`.files`: encoding,
header or first-row shape) and after (:meth:`FileReport.check`: kept share), and each
check fails with a one-line :class:`LoaderError` naming the file.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.config.params import PrepareParams

DOMAINS = ("music", "podcast", "book")
# Prepared tables may also hold rows of other source categories (Epinions / Ciao), each
# as its own domain ``cat<N>`` (N = the source's category id). A scenario builder gives
# such a domain one of DOMAINS' roles or leaves it out; built scenarios hold DOMAINS only.
CATEGORY_DOMAIN = re.compile(r"cat[0-9]+")


def is_prepared_domain(domain: str) -> bool:
    """A domain a prepared table may hold: a benchmark domain or a category domain."""
    return domain in DOMAINS or CATEGORY_DOMAIN.fullmatch(str(domain)) is not None
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
# Drops that are the source's content, not signs of a misread file (repeats, rows of
# categories the benchmark does not use): they do not count against the kept share.
SELECTION_REASONS = (DUPLICATE, OTHER_CATEGORY)
DEFAULT_MIN_KEPT_SHARE: float = PrepareParams().min_kept_share  # the default lives in the params schema


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

    def kept_share(self) -> float:
        """Rows kept / rows read, leaving out the rows dropped by design (SELECTION_REASONS)."""
        considered = self.rows_read - sum(self.dropped[r] for r in SELECTION_REASONS)
        return self.rows_kept / considered if considered > 0 else 0.0

    def check(self, name: str, min_kept_share: float | None = None) -> None:
        """Accounting must add up (else a loader bug: AssertionError). With
        ``min_kept_share``, a file without data rows, without a kept row, or keeping
        less than that share is refused: its table would be empty or partial."""
        total = self.rows_kept + sum(self.dropped.values())
        if total != self.rows_read:
            raise AssertionError(f"{name}: rows read {self.rows_read} != kept {self.rows_kept} + dropped {total - self.rows_kept}")
        if min_kept_share is None:
            return
        if self.rows_read == 0:
            raise LoaderError(f"{name}: no data rows (empty or header-only file)")
        share = self.kept_share()
        if self.rows_kept == 0 or share < min_kept_share:
            lost = Counter({r: n for r, n in self.dropped.items() if r not in SELECTION_REASONS}) or self.dropped
            reason, n = lost.most_common(1)[0]
            selected = sum(self.dropped[r] for r in SELECTION_REASONS)
            of = f" of the {self.rows_read - selected:,} that are not duplicates or unused categories" if selected else ""
            raise LoaderError(
                f"{name}: only {self.rows_kept:,} of {self.rows_read:,} rows kept ({share:.1%}{of}; min_kept_share is "
                f"{min_kept_share:g}); most common drop reason: {reason} ({n:,} row{'s' if n != 1 else ''})"
            )

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


def check_result(res: LoadResult, prefix: str, min_kept_share: float | None) -> LoadResult:
    """:meth:`FileReport.check` on every file of a loader's result, named ``prefix/file``."""
    for name, rep in res.files.items():
        rep.check(f"{prefix}/{name}" if prefix else name, min_kept_share)
    return res


def to_number(df: pd.DataFrame, col: str, report: FileReport, *, integer: bool = False) -> pd.DataFrame:
    """Parse ``col`` as a number; unparsable or empty cells are dropped (``missing_value``
    for blanks, ``not_a_number`` otherwise, including "nan"/"inf", and, for integers,
    fractions and values beyond 2**53, which a float cannot hold exactly)."""
    raw = df[col].astype(str).str.strip()
    num = pd.to_numeric(raw, errors="coerce")
    blank = raw.eq("")
    df = df.assign(**{col: num})
    df = report.drop_mask(df, blank.to_numpy(), MISSING)
    df = report.drop_mask(df, ~np.isfinite(df[col].to_numpy(dtype="float64")), NOT_A_NUMBER)
    if integer:
        df = report.drop_mask(df, ((df[col] != np.round(df[col])) | (df[col].abs() >= 2**53)).to_numpy(), NOT_A_NUMBER)
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
    bad = {d for d in out["domain"].unique() if not is_prepared_domain(d)}
    if bad:
        raise LoaderError(f"unknown domains {sorted(bad)}; expected one of {DOMAINS} or cat<N>")
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
