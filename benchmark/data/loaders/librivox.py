"""LibriVox catalog: public-domain audiobooks (items only, domain "book").

``db_catalog.json`` is ``{"books": {"id_<n>": {...}}, "authors": {"a<n>": {...}}, ...}``.
A book's ``authors`` is an author id (a string; comma-separated lists are accepted),
``genres`` one LibriVox genre, ``downloads`` present for a fifth of the books only.
``db_authors.json`` repeats the author table and is used when the catalog lacks it.
There is no description text in this export.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import (BAD_JSON, DUPLICATE, MISSING, FileReport, LoaderError, LoadResult,
    canonical_items, empty_interactions, join_tags)
from benchmark.data.loaders.files import read_json

SOURCE = "librivox-catalog"


def _seconds(hms: object) -> float:
    try:
        parts = [float(p) for p in str(hms).split(":")]
    except ValueError:
        return float("nan")
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total if parts else float("nan")


def load(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files = {"db_catalog.json": FileReport()}
    rep = files["db_catalog.json"]
    cat = read_json(d / "db_catalog.json", SOURCE)
    books = cat.get("books") if isinstance(cat, dict) else None
    if not isinstance(books, dict):
        raise LoaderError(f"{SOURCE}: db_catalog.json has no 'books' object")
    authors = cat.get("authors") or {}
    if not authors and (d / "db_authors.json").exists():
        authors = read_json(d / "db_authors.json", SOURCE)
        files["db_authors.json"] = FileReport(rows_read=len(authors), rows_kept=len(authors))
    if not isinstance(authors, dict):
        raise LoaderError(f"{SOURCE}: the author table should be a JSON object of 'a<id>' keys, got {type(authors).__name__}")
    rows, seen = [], set()
    for key, b in books.items():
        rep.rows_read += 1
        if not isinstance(b, dict):
            rep.drop(BAD_JSON)
            continue
        title = str(b.get("title") or "").strip()
        if not title:
            rep.drop(MISSING)
            continue
        item = str(key).removeprefix("id_")
        if item in seen:
            rep.drop(DUPLICATE)
            continue
        seen.add(item)
        names = []
        for aid in str(b.get("authors") or "").split(","):
            aid = aid.strip()
            if not aid:
                continue
            a = authors.get(f"a{aid}") or authors.get(aid)
            if not isinstance(a, dict):
                rep.flags["unknown_author_id"] += 1
                continue
            names.append(" ".join(x for x in (str(a.get("first_name") or "").strip(), str(a.get("last_name") or "").strip()) if x))
        if not names:
            rep.flags["no_author"] += 1
        genre = str(b.get("genres") or "").strip()
        if not genre:
            rep.flags["no_genre"] += 1
        downloads = b.get("downloads")
        rows.append(
            {
                "item": item,
                "title": title,
                "creator": ", ".join(n for n in names if n),
                "tags": join_tags([genre]),
                "language": str(b.get("language") or "").strip(),
                "downloads": downloads if isinstance(downloads, int) else None,
                "duration_s": _seconds(b.get("totaltime")),
                "url": str(b.get("url_librivox") or ""),
            }
        )
    rep.rows_kept = len(rows)
    df = pd.DataFrame(rows)
    df["downloads"] = pd.array(df["downloads"].tolist(), dtype="Int64")
    items = canonical_items(df.assign(domain="book", description=""), extra=["language", "downloads", "duration_s", "url"])
    notes = ["items only; tags = the LibriVox genre; no description in this export; downloads known for some books only"]
    return LoadResult(empty_interactions(), items, files, notes=notes)
