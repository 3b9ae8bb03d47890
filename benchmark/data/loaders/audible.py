"""Audible catalog scrape: audiobook titles with description and genre ranks (items only).

Two CSVs: ``Audible_Catlog.csv`` (title, author, rating, reviews, price) and
``Audible_Catlog_Advanced_Features.csv`` (the same plus description, listening time and
a "Ranks and Genre" string such as ``,#1 in Audible Audiobooks & Originals (See Top
100 ...),#1 in Personal Success,#2 in Society & Culture (Books)``).

Neither has an id, and the same (title, author) appears several times (re-scrapes).
The item id is a short hash of the normalised (title, author), so it is stable across
runs; the advanced file is read first (it has the text) and later repeats are counted
as duplicates. Genres are the rank labels without the store-wide "Audible Audiobooks &
Originals" rank and without the "(Books)"-style qualifiers.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import DUPLICATE, MISSING, FileReport, LoadResult, canonical_items, clean_str, empty_interactions, join_tags
from benchmark.data.loaders.files import read_rows, require

SOURCE = "audible-catalog"
BASIC = ("Book Name", "Author", "Rating", "Number of Reviews", "Price")
# file -> header row; the advanced file first (its rows carry the text)
FILES = {
    "Audible_Catlog_Advanced_Features.csv": BASIC + ("Description", "Listening Time", "Ranks and Genre"),
    "Audible_Catlog.csv": BASIC,
}
_RANK = re.compile(r"#\d[\d,]*\s+(?:Free\s+)?in\s+")
_QUALIFIER = re.compile(r"\s*\((?:See Top|Books|Audible Audiobooks|Kindle)[^)]*\)\s*")
STORE_WIDE = {"audible audiobooks & originals", "audible books & originals"}


def item_id(title: str, author: str) -> str:
    key = f"{_norm(title)}\x1f{_norm(author)}"
    return "aud" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", str(s).lower()).strip()


def genres(ranks: str) -> list[str]:
    """Genre labels of a "Ranks and Genre" string, in rank order."""
    out = []
    for part in _RANK.split(str(ranks or ""))[1:]:
        label = _QUALIFIER.sub(" ", part).strip().strip(",").strip()
        if label and label.lower() not in STORE_WIDE:
            out.append(label)
    return out


def _minutes(text: str) -> float:
    h = re.search(r"(\d+)\s*hour", str(text))
    m = re.search(r"(\d+)\s*minute", str(text))
    if not h and not m:
        return float("nan")
    return (int(h.group(1)) if h else 0) * 60 + (int(m.group(1)) if m else 0)


def _read(path: Path, rep: FileReport) -> pd.DataFrame:
    columns = FILES[path.name]
    _, rows = read_rows(path, rep, columns=columns, fallback_encoding="cp1252")
    df = pd.DataFrame(rows, columns=list(columns), dtype=str)
    df = df.rename(columns={"Book Name": "title", "Author": "creator", "Description": "description", "Ranks and Genre": "ranks"})
    for col in ("description", "ranks", "Listening Time"):
        if col not in df:
            df[col] = ""
    df["title"] = clean_str(df["title"])
    df["creator"] = clean_str(df["creator"])
    return rep.drop_mask(df, df["title"].eq("").to_numpy(), MISSING)


def load(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files: dict[str, FileReport] = {}
    seen: set[str] = set()
    kept = []
    for name in FILES:  # the advanced file first: its rows carry the text
        if name != next(iter(FILES)) and not (d / name).exists():
            continue
        rep = files[name] = FileReport()
        df = _read(require(d / name, SOURCE), rep)
        df["item"] = [item_id(t, a) for t, a in zip(df["title"], df["creator"])]
        df["file"] = name
        df = rep.drop_mask(df, (df["item"].duplicated() | df["item"].isin(seen)).to_numpy(), DUPLICATE)
        rep.rows_kept = len(df)
        seen |= set(df["item"])
        kept.append(df)
    df = pd.concat(kept, ignore_index=True)
    df["tags"] = df["ranks"].map(lambda r: join_tags(genres(r)))
    df["rating"] = pd.to_numeric(df.get("Rating"), errors="coerce")
    df["n_reviews"] = pd.to_numeric(df.get("Number of Reviews"), errors="coerce").astype("Int64")
    df["minutes"] = df["Listening Time"].map(_minutes)
    items = canonical_items(df.assign(domain="book"), extra=["rating", "n_reviews", "minutes", "file"])
    notes = [
        "item = 'aud' + sha1(normalised title, author)[:12]; advanced-features rows first, repeats counted as duplicates",
        "tags = genre labels from 'Ranks and Genre' (store-wide rank and qualifiers removed)",
    ]
    return LoadResult(empty_interactions(), items, files, notes=notes)
