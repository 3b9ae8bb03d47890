"""UCSD Goodreads (Wan & McAuley 2018): shelf events and book metadata, streamed.

A Goodreads interaction is a shelf event with three independent facts: ``is_read``
(the book was read), ``rating`` (1-5; 0 = not rated) and ``is_reviewed``. Folding
them into one number loses the difference between *shelved, not read* (a to-read
intention, not a consumption) and *read, not rated* (consumed, no opinion given),
which share rating 0. So the loader keeps all three:

* interactions: ``value`` = the rating 0-5 as in the file (0 = not rated);
* ``extra["shelves"]``: one row per interaction, in the same order: user, item,
  ``is_read``, ``rating``, ``is_reviewed`` and ``positive``.

The positive rule (:func:`positive_rule`, arguments of :func:`load_goodreads_interactions`):
a book is a positive when it was read **and** either rated at least
``positive_min_rating`` (default 4) or, with ``read_unrated_positive`` (default
True), read without a rating. A shelved-but-unread book is never a positive,
whatever its rating field says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.loaders import isbn as isbnlib
from benchmark.data.loaders.common import (DEFAULT_MIN_KEPT_SHARE, DUPLICATE, MISSING, OUT_OF_RANGE, UNKNOWN_ID,
    WRONG_COLUMNS, FileReport, LoaderError, LoadResult, canonical_interactions, canonical_items, check_result,
    empty_interactions, join_tags, to_number)
from benchmark.data.loaders.files import check_first_row, check_header, fits_kind
from benchmark.data.loaders.stream import batched, iter_json_lines, raw_lines, unix_seconds

AUDIO_FORMAT = re.compile(r"audio|mp3|audible|cassette", re.IGNORECASE)
CSV_HEADER = ("user_id", "book_id", "is_read", "rating", "is_reviewed")
NAMES = ["user", "item", "is_read", "value", "is_reviewed"]
_FLAG = {"1": 1, "0": 0, "true": 1, "false": 0}


def positive_rule(is_read: pd.Series, rating: pd.Series, min_rating: float = 4, read_unrated: bool = True) -> pd.Series:
    """Read and (rated >= ``min_rating``, or unrated when ``read_unrated``)."""
    rated_ok = rating >= min_rating
    return is_read.astype(bool) & (rated_ok | ((rating == 0) & read_unrated))


def load_goodreads_interactions(
    path: Path,
    book_id_map: Path | None = None,
    user_id_map: Path | None = None,
    *,
    positive_min_rating: float = 4,
    read_unrated_positive: bool = True,
    min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE,
) -> LoadResult:
    """UCSD Goodreads shelves: value = rating 0-5; flags and positives in ``extra["shelves"]``.

    The CSV uses compact integer ids; with ``book_id_map.csv`` (book_id_csv, book_id)
    they are translated to the ids of ``goodreads_books.json.gz`` (``user_id_map.csv``
    likewise for users). Its header row is recognised by content, so a headerless
    copy loses no row. The json(.gz) variant already uses those ids and has dates;
    there ``is_reviewed`` means a non-empty ``review_text_incomplete``.
    """
    path = Path(path)
    rep = FileReport()
    if path.name.endswith((".json", ".json.gz")):
        recs = [_json_row(r) for r in iter_json_lines(path, rep)]
        chunks = [pd.DataFrame(recs, columns=NAMES + ["date"], dtype=object).astype(str)]
    else:
        chunks = batched(_csv_rows(path, rep), NAMES, rep, empty_frame=False)
    parts = []
    for df in chunks:  # reduce every chunk to clean, typed rows before concatenating
        df["user"], df["item"] = df["user"].str.strip(), df["item"].str.strip()
        df = rep.drop_mask(df, (df["user"].isin(["", "None"]) | df["item"].isin(["", "None"])).to_numpy(), MISSING)
        df = to_number(df, "value", rep)
        df = rep.drop_mask(df, ~df["value"].between(0, 5).to_numpy(), OUT_OF_RANGE)
        for flag in ("is_read", "is_reviewed"):
            df[flag] = df[flag].str.strip().str.lower().map(_FLAG)
            df = rep.drop_mask(df, df[flag].isna().to_numpy(), OUT_OF_RANGE)
        df["timestamp"] = unix_seconds(df["date"], fmt="%a %b %d %H:%M:%S %z %Y") if "date" in df else pd.Series(pd.NA, index=df.index, dtype="Int64")
        parts.append(df[["user", "item", "value", "timestamp", "is_read", "is_reviewed"]].astype({"value": "float32", "is_read": bool, "is_reviewed": bool}))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["user", "item", "value", "timestamp", "is_read", "is_reviewed"])
    for col, mpath in (("item", book_id_map), ("user", user_id_map)):
        if mpath is not None:
            mapping = _id_map(Path(mpath))
            df = rep.drop_mask(df, ~df[col].isin(set(mapping)).to_numpy(), UNKNOWN_ID)
            df[col] = df[col].map(mapping)
    df = rep.drop_mask(df, df.duplicated(["user", "item"]).to_numpy(), DUPLICATE).reset_index(drop=True)
    rep.rows_kept = len(df)
    df["positive"] = positive_rule(df["is_read"], df["value"], positive_min_rating, read_unrated_positive)
    rep.flags["shelved_not_read"] += int((~df["is_read"].astype(bool)).sum())
    rep.flags["read_not_rated"] += int((df["is_read"].astype(bool) & (df["value"] == 0)).sum())
    rep.flags["positive"] += int(df["positive"].sum())
    items = canonical_items(pd.DataFrame({"item": sorted(df["item"].unique()), "domain": "book"}))
    shelves = df[["user", "item", "is_read", "value", "is_reviewed", "positive"]].rename(columns={"value": "rating"})
    shelves = shelves.astype({"user": str, "item": str, "is_read": bool, "rating": "float32", "is_reviewed": bool, "positive": bool})
    rule = f"positive = is_read and (rating >= {positive_min_rating:g}" + (" or rating == 0)" if read_unrated_positive else ")")
    notes = ["value = rating 0-5 (0 = not rated; shelved-not-read and read-not-rated are told apart by extra shelves.is_read)", rule]
    res = LoadResult(canonical_interactions(df.assign(domain="book")), items, {path.name: rep}, extra={"shelves": shelves}, notes=notes)
    return check_result(res, "", min_kept_share)


def _json_row(r: dict) -> tuple:
    reviewed = r.get("is_reviewed", bool(str(r.get("review_text_incomplete") or "").strip()))
    return (r.get("user_id"), r.get("book_id"), r.get("is_read"), r.get("rating"), reviewed, r.get("date_added"))


def _csv_rows(path: Path, rep: FileReport) -> Iterator[list[str]]:
    """goodreads_interactions.csv: comma-separated, five integer columns. The first line
    is a header only if it is not numeric (then it must be :data:`CSV_HEADER`)."""
    first = True
    for raw in raw_lines(path):
        parts = raw.decode("ascii", errors="replace").strip().split(",")
        if first:
            first = False
            if not all(fits_kind(p.strip(), "i") for p in parts):
                check_header(parts, CSV_HEADER, path.name, ",")
                continue
            check_first_row(parts, CSV_HEADER, "iiiii", path.name, ",")
        rep.rows_read += 1
        if len(parts) != len(NAMES):
            rep.drop(WRONG_COLUMNS)
            continue
        yield parts


def _id_map(path: Path) -> dict[str, str]:
    """``<csv id>,<id>`` rows of a Goodreads id map (its header row skipped)."""
    if not path.is_file():
        raise LoaderError(f"{path}: id map not found; download it with the interactions")
    m = pd.read_csv(path, dtype=str)
    if m.shape[1] < 2:
        raise LoaderError(f"{path.name}: expected two columns (csv id, id); found {list(m.columns)}")
    return dict(zip(m.iloc[:, 0].str.strip(), m.iloc[:, 1].str.strip()))


def is_audiobook_format(fmt: object) -> bool:
    """True for audio editions: "Audiobook", "Audio CD", "Audible Audio", "MP3 CD"..."""
    return bool(AUDIO_FORMAT.search(str(fmt or "")))


def load_goodreads_books(path: Path, authors_path: Path | None = None, top_shelves: int = 10, *, min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE) -> LoadResult:
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
    res = LoadResult(empty_interactions(), items, {Path(path).name: rep}, notes=["is_audiobook from the edition format (audio/mp3/audible/cassette)"])
    return check_result(res, "", min_kept_share)
