"""Last.fm HetRec 2011 (2k users): the music domain of mpa-linked, with artist tags.

Quirks handled here:
* ``tags.dat`` is latin-1 (``tropic\\xe1lia``), the other files UTF-8: rows that are not
  valid UTF-8 are re-decoded as latin-1 and flagged, not dropped.
* ``user_taggedartists.dat`` tags ~390 artists that are absent from ``artists.dat``;
  those assignments are dropped as ``unknown_id``.
* play counts (``weight``) must be positive integers.

Tags become two things: ``artist_tags.parquet`` (item, tag, count = number of users
who gave that tag to that artist) for the linkage stage, and the artist's top tags in
``items.tags``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import (DUPLICATE, OUT_OF_RANGE, UNKNOWN_ID, FileReport, LoadResult,
    canonical_interactions, canonical_items, dedupe, join_tags, to_number)
from benchmark.data.loaders.files import read_rows, require

SOURCE = "lastfm-hetrec2k"
TOP_TAGS = 10
# Header rows of the HetRec files, checked before any row is read.
HEADERS = {
    "artists.dat": ("id", "name", "url", "pictureURL"),
    "tags.dat": ("tagID", "tagValue"),
    "user_artists.dat": ("userID", "artistID", "weight"),
    "user_taggedartists.dat": ("userID", "artistID", "tagID", "day", "month", "year"),
}


def _frame(rows: list[list[str]], cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=cols, dtype=str)


def _read(d: Path, name: str, rep: FileReport, fallback_encoding: str | None = None):
    return read_rows(require(d / name, SOURCE), rep, sep="\t", columns=HEADERS[name], quoting=False, fallback_encoding=fallback_encoding)


def load(raw_root: Path, top_tags: int = TOP_TAGS) -> LoadResult:
    d = Path(raw_root) / SOURCE
    files: dict[str, FileReport] = {}

    rep = files["artists.dat"] = FileReport()
    _, rows = _read(d, "artists.dat", rep, fallback_encoding="latin-1")
    artists = _frame(rows, ["item", "title", "url", "picture"])
    artists["item"] = artists["item"].str.strip()
    artists = to_number(artists, "item", rep, integer=True)
    artists["item"] = artists["item"].astype("int64").astype(str)
    artists = dedupe(artists, ["item"], rep)
    rep.rows_kept = len(artists)

    rep = files["tags.dat"] = FileReport()
    _, rows = _read(d, "tags.dat", rep, fallback_encoding="latin-1")
    tags = _frame(rows, ["tag_id", "tag"])
    tags = to_number(tags, "tag_id", rep, integer=True)
    tags["tag_id"] = tags["tag_id"].astype("int64")
    tags["tag"] = tags["tag"].str.strip()
    tags = dedupe(tags, ["tag_id"], rep)
    rep.rows_kept = len(tags)

    rep = files["user_artists.dat"] = FileReport()
    _, rows = _read(d, "user_artists.dat", rep)
    ua = _frame(rows, ["user", "item", "value"])
    for col in ("user", "item"):
        ua = to_number(ua, col, rep, integer=True)
        ua[col] = ua[col].astype("int64").astype(str)
    ua = to_number(ua, "value", rep)
    ua = rep.drop_mask(ua, (ua["value"] <= 0).to_numpy(), OUT_OF_RANGE)
    ua = rep.drop_mask(ua, (~ua["item"].isin(set(artists["item"]))).to_numpy(), UNKNOWN_ID)
    ua = dedupe(ua, ["user", "item"], rep)
    rep.rows_kept = len(ua)
    inter = canonical_interactions(ua.assign(domain="music", timestamp=pd.NA))

    rep = files["user_taggedartists.dat"] = FileReport()
    _, rows = _read(d, "user_taggedartists.dat", rep)
    ut = _frame(rows, ["user", "item", "tag_id", "day", "month", "year"])
    for col in ("user", "item", "tag_id"):
        ut = to_number(ut, col, rep, integer=True)
    ut["item"] = ut["item"].astype("int64").astype(str)
    ut["tag_id"] = ut["tag_id"].astype("int64")
    ut = rep.drop_mask(ut, (~ut["item"].isin(set(artists["item"]))).to_numpy(), UNKNOWN_ID)
    ut = rep.drop_mask(ut, (~ut["tag_id"].isin(set(tags["tag_id"]))).to_numpy(), UNKNOWN_ID)
    ut = rep.drop_mask(ut, ut.duplicated(["user", "item", "tag_id"]).to_numpy(), DUPLICATE)
    rep.rows_kept = len(ut)

    artist_tags = (
        ut.merge(tags, on="tag_id")
        .groupby(["item", "tag"], as_index=False)
        .size()
        .rename(columns={"size": "count"})
        .sort_values(["item", "count", "tag"], ascending=[True, False, True], kind="stable")
        .reset_index(drop=True)
    )
    artist_tags["count"] = artist_tags["count"].astype("int32")
    top = artist_tags.groupby("item", sort=False).head(top_tags).groupby("item")["tag"].agg(list).map(join_tags)

    items = canonical_items(
        artists.assign(
            domain="music",
            creator=artists["title"],
            description="",
            tags=artists["item"].map(top).fillna(""),
        ),
        extra=["url"],
    )
    notes = [
        f"items.tags: the artist's top {top_tags} tags by number of users who assigned them (ties by name)",
        "value = listening count (weight); no timestamps in user_artists.dat",
    ]
    return LoadResult(inter, items, files, extra={"artist_tags": artist_tags}, notes=notes)
