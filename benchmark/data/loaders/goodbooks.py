"""goodbooks-10k metadata: book text and ISBN links (no ratings offline).

Only ``books.csv`` and ``tags.csv`` are mirrored; ``book_tags.csv`` (which book has
which tag) is not, so per-book tags cannot be derived: ``items.tags`` is empty and the
tag vocabulary is written as ``tag_vocab.parquet``. When ``book_tags.csv`` of the full
release is present beside them, the top tags per book are filled in.

ISBN quirks: ``isbn`` was stored as a number, losing leading zeros (``439023483``),
and ``isbn13`` as a float in scientific notation, losing its check digit
(``9.78043902348e+12``). The ISBN-10 is zero-padded and validated; the ISBN-13 is
derived from it when valid, else reconstructed from the float when unambiguous.
``isbn_key`` is the id Book-Crossing uses (:func:`.isbn.normalise`), for joins.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.data.loaders import isbn as isbnlib
from benchmark.data.loaders.common import (UNKNOWN_ID, FileReport, LoadResult, canonical_items, clean_str, dedupe,
    empty_interactions, join_tags, to_number)
from benchmark.data.loaders.files import read_rows, require

SOURCE = "goodbooks-10k"
TOP_TAGS = 10
BOOK_COLS = [
    "book_id", "goodreads_book_id", "best_book_id", "work_id", "books_count", "isbn", "isbn13", "authors",
    "original_publication_year", "original_title", "title", "language_code", "average_rating", "ratings_count",
    "work_ratings_count", "work_text_reviews_count", "ratings_1", "ratings_2", "ratings_3", "ratings_4", "ratings_5",
    "image_url", "small_image_url",
]


def _isbns(df: pd.DataFrame, rep: FileReport) -> pd.DataFrame:
    ten = df["isbn"].map(lambda s: isbnlib.normalise(s, pad_numeric=True))
    valid10 = ten.map(isbnlib.is_valid10)
    rep.flags["isbn10_missing"] += int(ten.eq("").sum())
    rep.flags["isbn10_invalid_checksum"] += int((ten.ne("") & ~valid10).sum())
    from_float = df["isbn13"].map(isbnlib.from_scientific13)
    thirteen = ten.where(valid10, "").map(lambda s: isbnlib.to_isbn13(s) if s else "")
    thirteen = thirteen.where(thirteen.ne(""), from_float)
    rep.flags["isbn13_reconstructed_from_float"] += int((~valid10 & from_float.ne("")).sum())
    key = ten.where(valid10, thirteen.map(lambda s: isbnlib.normalise(s) if s else ""))
    return df.assign(isbn10=ten.where(valid10, ""), isbn13=thirteen, isbn_key=key)


def load(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files = {"books.csv": FileReport(), "tags.csv": FileReport()}
    rep = files["books.csv"]
    _, rows = read_rows(require(d / "books.csv", SOURCE), rep, columns=BOOK_COLS, fallback_encoding="latin-1")
    books = pd.DataFrame(rows, columns=BOOK_COLS, dtype=str)
    books = to_number(books, "book_id", rep, integer=True)
    books["book_id"] = books["book_id"].astype("int64").astype(str)
    books = dedupe(books, ["book_id"], rep)
    rep.rows_kept = len(books)
    books = _isbns(books, rep)
    year = pd.to_numeric(books["original_publication_year"], errors="coerce")
    items = canonical_items(
        books.assign(
            item=books["book_id"],
            domain="book",
            title=clean_str(books["title"]).where(clean_str(books["title"]).ne(""), books["original_title"]),
            creator=books["authors"],
            description="",
            tags="",
            year=year.round().astype("Int64"),
            goodreads_book_id=books["goodreads_book_id"].str.strip(),
            language=books["language_code"].str.strip(),
            ratings_count=pd.to_numeric(books["ratings_count"], errors="coerce").astype("Int64"),
        ),
        extra=["isbn10", "isbn13", "isbn_key", "goodreads_book_id", "year", "language", "ratings_count"],
    )

    rep = files["tags.csv"]
    extra = {}
    if (d / "tags.csv").exists():
        _, rows = read_rows(require(d / "tags.csv", SOURCE), rep, columns=("tag_id", "tag_name"), fallback_encoding="latin-1")
        tags = pd.DataFrame(rows, columns=["tag_id", "tag"], dtype=str)
        tags = to_number(tags, "tag_id", rep, integer=True)
        tags["tag_id"] = tags["tag_id"].astype("int64")
        tags = dedupe(tags, ["tag_id"], rep)
        rep.rows_kept = len(tags)
        extra["tag_vocab"] = tags.reset_index(drop=True)
    else:
        files.pop("tags.csv")
    notes = []
    if (d / "book_tags.csv").exists() and "tag_vocab" in extra:
        items["tags"] = _book_tags(d / "book_tags.csv", files, books, extra["tag_vocab"])
        notes.append(f"items.tags: top {TOP_TAGS} tags per book from book_tags.csv (by count)")
    else:
        notes.append("book_tags.csv is not mirrored: per-book tags are not derivable, items.tags is empty")
    return LoadResult(empty_interactions(), items, files, extra=extra, notes=notes)


def _book_tags(path: Path, files: dict, books: pd.DataFrame, vocab: pd.DataFrame) -> list[str]:
    """Top tags per book from the full release's book_tags.csv (goodreads_book_id, tag_id, count)."""
    rep = files["book_tags.csv"] = FileReport()
    _, rows = read_rows(require(path, SOURCE), rep, columns=("goodreads_book_id", "tag_id", "count"))
    bt = pd.DataFrame(rows, columns=["goodreads_book_id", "tag_id", "count"], dtype=str)
    for col in ("goodreads_book_id", "tag_id", "count"):
        bt = to_number(bt, col, rep, integer=True)
    bt["goodreads_book_id"] = bt["goodreads_book_id"].astype("int64").astype(str)
    gr = books["goodreads_book_id"].str.strip()
    bt = rep.drop_mask(bt, ~bt["goodreads_book_id"].isin(set(gr)).to_numpy(), UNKNOWN_ID)
    bt = rep.drop_mask(bt, ~bt["tag_id"].isin(set(vocab["tag_id"])).to_numpy(), UNKNOWN_ID)
    rep.rows_kept = len(bt)
    bt = bt.merge(vocab, on="tag_id").sort_values(["goodreads_book_id", "count", "tag"], ascending=[True, False, True])
    top = bt.groupby("goodreads_book_id").head(TOP_TAGS).groupby("goodreads_book_id")["tag"].agg(join_tags)
    return gr.map(top).fillna("").tolist()
