"""Book-Crossing (explicit-rating subset): the audiobook-proxy interactions of mpa-linked.

Quirks handled here:
* ISBN variants (``039592720x`` vs ``039592720X``, hyphens, ISBN-13 forms) are
  normalised to one id (:mod:`.isbn`); ratings that collide after normalisation are
  counted as duplicates, keeping the first.
* Ratings are 0-10 where 0 means an implicit interaction: kept as value 0 (the
  scenario decides what counts as a positive); anything else is ``out_of_range``.
* ``BX-Users.csv`` was produced by splitting a quoted "city, state, country" field on
  commas, which left stray quotes (a country cell ``" canada"`` followed by a doubled
  quote, or the quote glued to the age when the country is empty). Quotes are stripped from every field; ages outside 5-100 become
  missing (flagged, the user row is kept).
* Ratings of ISBNs absent from ``BX-Books.csv`` are dropped as ``unknown_id``: without
  a title such a book has no text and cannot be matched to the catalogs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.data.loaders import isbn as isbnlib
from benchmark.data.loaders.common import (MISSING, OUT_OF_RANGE, UNKNOWN_ID, FileReport, LoadResult,
    canonical_interactions, canonical_items, clean_str, dedupe, to_number)
from benchmark.data.loaders.files import read_rows, require

SOURCE = "bookcrossing-subset"
RATING_RANGE = (0, 10)
AGE_RANGE = (5, 100)
# Header rows of the subset's comma-separated files (the original Book-Crossing dump is
# ';'-separated with other column names: refused by the header check, not misread).
BOOK_COLS = ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Book-Publisher")
RATING_COLS = ("User-ID", "ISBN", "Book-Rating")
USER_COLS = ("User-ID", "User-City", "User-State", "User-Country", "User-Age")


def _isbn_column(df: pd.DataFrame, rep: FileReport) -> pd.DataFrame:
    raw = df["isbn_raw"]
    norm = raw.map(isbnlib.normalise)
    changed = (norm != raw.str.strip()) & norm.ne("")
    rep.flags["isbn_normalised"] += int(changed.sum())
    df = df.assign(item=norm)
    return rep.drop_mask(df, df["item"].eq("").to_numpy(), MISSING)


def read_books(path: Path, rep: FileReport) -> pd.DataFrame:
    _, rows = read_rows(path, rep, columns=BOOK_COLS, fallback_encoding="latin-1")
    df = pd.DataFrame(rows, columns=["isbn_raw", "title", "creator", "year", "publisher"], dtype=str)
    df = _isbn_column(df, rep)
    df = dedupe(df, ["item"], rep)
    rep.rows_kept = len(df)
    year = pd.to_numeric(df["year"].str.strip(), errors="coerce")
    rep.flags["year_missing_or_invalid"] += int((~year.between(1000, 2030)).sum())
    df["year"] = year.where(year.between(1000, 2030)).astype("Int64")
    df["isbn13"] = df["item"].map(lambda s: isbnlib.to_isbn13(s) if isbnlib.is_valid10(s) else (s if isbnlib.is_valid13(s) else ""))
    df["publisher"] = clean_str(df["publisher"])
    return df


def read_ratings(path: Path, rep: FileReport, known: set[str]) -> pd.DataFrame:
    _, rows = read_rows(path, rep, columns=RATING_COLS)
    df = pd.DataFrame(rows, columns=["user", "isbn_raw", "value"], dtype=str)
    df = to_number(df, "user", rep, integer=True)
    df["user"] = df["user"].astype("int64").astype(str)
    df = _isbn_column(df, rep)
    df = to_number(df, "value", rep)
    lo, hi = RATING_RANGE
    df = rep.drop_mask(df, ~df["value"].between(lo, hi).to_numpy(), OUT_OF_RANGE)
    df = rep.drop_mask(df, ~df["item"].isin(known).to_numpy(), UNKNOWN_ID)
    df = dedupe(df, ["user", "item"], rep)
    rep.rows_kept = len(df)
    rep.flags["implicit_rating_0_kept"] += int((df["value"] == 0).sum())
    return df


def read_users(path: Path, rep: FileReport) -> pd.DataFrame:
    _, rows = read_rows(path, rep, columns=USER_COLS, fallback_encoding="latin-1")
    df = pd.DataFrame(rows, columns=["user", "city", "state", "country", "age"], dtype=str)
    quoted = df.apply(lambda c: c.str.contains('"', regex=False)).any(axis=1)
    rep.flags["stray_quotes_repaired"] += int(quoted.sum())
    for col in df.columns:
        df[col] = df[col].str.replace('"', "", regex=False).str.strip()
    df = to_number(df, "user", rep, integer=True)
    df["user"] = df["user"].astype("int64").astype(str)
    df = dedupe(df, ["user"], rep)
    age = pd.to_numeric(df["age"], errors="coerce")
    lo, hi = AGE_RANGE
    bad_age = age.notna() & ~age.between(lo, hi)
    rep.flags["age_out_of_range_set_missing"] += int(bad_age.sum())
    rep.flags["age_missing"] += int(age.isna().sum())
    df["age"] = age.where(~bad_age).astype("Int64")
    rep.rows_kept = len(df)
    return df.reset_index(drop=True)


def load(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files = {n: FileReport() for n in ("BX-Books.csv", "BX-Ratings.csv", "BX-Users.csv")}
    books = read_books(require(d / "BX-Books.csv", SOURCE), files["BX-Books.csv"])
    ratings = read_ratings(require(d / "BX-Ratings.csv", SOURCE), files["BX-Ratings.csv"], set(books["item"]))
    extra = {}
    if (d / "BX-Users.csv").exists():
        extra["users"] = read_users(require(d / "BX-Users.csv", SOURCE), files["BX-Users.csv"])
    else:
        files.pop("BX-Users.csv")
    inter = canonical_interactions(ratings.assign(domain="book", timestamp=pd.NA))
    items = canonical_items(books.assign(domain="book", description="", tags=""), extra=["isbn13", "year", "publisher"])
    notes = [
        "item = normalised ISBN (ISBN-10 where one exists, upper-case check digit, no separators)",
        "value = Book-Crossing rating 0-10; 0 = implicit interaction, kept",
    ]
    return LoadResult(inter, items, files, extra=extra, notes=notes)
