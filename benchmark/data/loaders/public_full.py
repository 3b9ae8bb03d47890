"""Readers for the full public datasets that users with a network download themselves.

These are not mirrored (too large, or licensed for download only), so they are not
in ``datasets/sources.tsv``; each reader takes the path of the downloaded file(s) and
returns the same :class:`~.common.LoadResult` as the mirrored loaders:

* Last.fm 1K (``userid-timestamp-artid-artname-traid-traname.tsv``): play events,
  aggregated to user x artist play counts with timestamp = first play;
* Last.fm 360K (``usersha1-artmbid-artname-plays.tsv``): user x artist play counts;
* Kaggle "Podcast Reviews" (``reviews.json``, ``podcasts.json``, ``categories.json``,
  JSON lines);
* UCSD Goodreads interactions (``goodreads_interactions.csv`` with its id maps, or the
  ``goodreads_interactions_dedup.json.gz`` variant) and books
  (``goodreads_books.json.gz``) whose edition ``format`` marks real audiobooks: in
  :mod:`.goodreads`, re-exported here.

Files are streamed line by line (the 1K file has 19M lines) and plain or gzip
(:mod:`.stream`); every reader ends with the accounting and kept-share check of
:meth:`~.common.FileReport.check` (``min_kept_share``), like the mirrored loaders.
Artists are keyed by MusicBrainz id when present, else by ``name:<lower-cased
name>``, since both Last.fm files leave the MBID empty for many artists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import (DEFAULT_MIN_KEPT_SHARE, DUPLICATE, MISSING, OUT_OF_RANGE, UNKNOWN_ID,
    FileReport, LoadResult, canonical_interactions, canonical_items, check_result, join_tags, to_number)
from benchmark.data.loaders.goodreads import (AUDIO_FORMAT, is_audiobook_format, load_goodreads_books,
    load_goodreads_interactions, positive_rule)
from benchmark.data.loaders.stream import iter_json_lines, iter_tsv, unix_seconds

_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
__all__ = ["AUDIO_FORMAT", "is_audiobook_format", "load_goodreads_books", "load_goodreads_interactions", "positive_rule",
    "load_lastfm_1k", "load_lastfm_360k", "load_kaggle_podcast_reviews", "artist_key"]


def artist_key(mbid: pd.Series, name: pd.Series) -> pd.Series:
    mbid = mbid.str.strip().str.lower()
    return mbid.where(mbid.str.match(_MBID), "name:" + name.str.strip().str.lower())


def _artist_items(names: pd.DataFrame) -> pd.DataFrame:
    first = names.drop_duplicates("item")
    return canonical_items(first.assign(domain="music", title=first["name"], creator=first["name"], description="", tags=""))


def load_lastfm_1k(path: Path, *, min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE) -> LoadResult:
    """Last.fm 1K play events -> user x artist play counts (timestamp = first play)."""
    rep = FileReport()
    names = ["user", "ts", "mbid", "name", "track_mbid", "track"]
    agg, artists = [], []
    for df in iter_tsv(path, names, rep):
        df["user"] = df["user"].str.strip()
        df = rep.drop_mask(df, (df["user"].eq("") | (df["mbid"].str.strip().eq("") & df["name"].str.strip().eq(""))).to_numpy(), MISSING)
        ts = pd.to_datetime(df["ts"].str.strip(), errors="coerce", utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        df = rep.drop_mask(df.assign(ts=ts), ts.isna().to_numpy(), "bad_timestamp")
        df["item"] = artist_key(df["mbid"], df["name"])
        df["t"] = df["ts"].astype("int64") // 10**9
        agg.append(df.groupby(["user", "item"]).agg(value=("t", "size"), timestamp=("t", "min")).reset_index())
        artists.append(df[["item", "name"]].drop_duplicates("item"))
        rep.rows_kept += len(df)
    inter = pd.concat(agg).groupby(["user", "item"], as_index=False).agg(value=("value", "sum"), timestamp=("timestamp", "min"))
    rep.notes.append(f"{rep.rows_kept} play events aggregated into {len(inter)} user-artist pairs")
    items = _artist_items(pd.concat(artists))
    res = LoadResult(canonical_interactions(inter.assign(domain="music")), items, {Path(path).name: rep}, notes=["value = number of plays; timestamp = first play (Unix s)"])
    return check_result(res, "", min_kept_share)


def load_lastfm_360k(path: Path, *, min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE) -> LoadResult:
    """Last.fm 360K user x artist play counts; rows of the same user and artist key
    (spelling variants of one MBID) are summed and the extra rows counted as duplicates."""
    rep = FileReport()
    parts, artists = [], []
    for df in iter_tsv(path, ["user", "mbid", "name", "value"], rep, kinds="sssn"):
        df["user"] = df["user"].str.strip()
        df = rep.drop_mask(df, (df["user"].eq("") | (df["mbid"].str.strip().eq("") & df["name"].str.strip().eq(""))).to_numpy(), MISSING)
        df = to_number(df, "value", rep)
        df = rep.drop_mask(df, (df["value"] <= 0).to_numpy(), OUT_OF_RANGE)
        df["item"] = artist_key(df["mbid"], df["name"])
        parts.append(df[["user", "item", "value"]])
        artists.append(df[["item", "name"]].drop_duplicates("item"))
    df = pd.concat(parts, ignore_index=True)
    inter = df.groupby(["user", "item"], as_index=False)["value"].sum()
    rep.drop(DUPLICATE, len(df) - len(inter))
    rep.rows_kept = len(inter)
    items = _artist_items(pd.concat(artists))
    res = LoadResult(canonical_interactions(inter.assign(domain="music", timestamp=pd.NA)), items, {Path(path).name: rep}, notes=["value = plays (summed over rows of one artist key)"])
    return check_result(res, "", min_kept_share)


def load_kaggle_podcast_reviews(folder: Path, *, min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE) -> LoadResult:
    """Kaggle "Podcast Reviews" JSON-lines tables -> podcast interactions and items.

    Items are keyed by iTunes id when ``podcasts.json`` gives one (the same id space
    as the mirrored Apple data), else by Kaggle's ``podcast_id``; tags = categories.
    Repeated (author, podcast) reviews keep the latest.
    """
    folder = Path(folder)
    files = {n: FileReport() for n in ("podcasts.json", "categories.json", "reviews.json")}
    pods = pd.DataFrame(list(iter_json_lines(folder / "podcasts.json", files["podcasts.json"])))
    rep = files["podcasts.json"]
    for col in ("podcast_id", "itunes_id", "title"):
        if col not in pods:
            pods[col] = ""
    pods = pods.fillna("")
    pods["podcast_id"] = pods["podcast_id"].astype(str).str.strip()
    pods = rep.drop_mask(pods, pods["podcast_id"].eq("").to_numpy(), MISSING)
    pods = rep.drop_mask(pods, pods.duplicated("podcast_id").to_numpy(), DUPLICATE)
    rep.rows_kept = len(pods)
    itunes = pods["itunes_id"].astype(str).str.replace(r"\.0$", "", regex=True).str.strip()
    pods["item"] = itunes.where(itunes.str.fullmatch(r"\d+"), pods["podcast_id"])
    rep.flags["no_itunes_id_podcast_id_used"] += int((~itunes.str.fullmatch(r"\d+")).sum())
    item_of = dict(zip(pods["podcast_id"], pods["item"]))

    rep = files["categories.json"]
    cats: dict[str, list[str]] = {}
    for rec in iter_json_lines(folder / "categories.json", rep):
        pid, cat = str(rec.get("podcast_id") or "").strip(), str(rec.get("category") or "").strip()
        if not pid or not cat:
            rep.drop(MISSING)
        elif pid not in item_of:
            rep.drop(UNKNOWN_ID)
        else:
            cats.setdefault(pid, []).append(cat)
            rep.rows_kept += 1

    rep = files["reviews.json"]
    recs = [(str(r.get("author_id") or "").strip(), str(r.get("podcast_id") or "").strip(), r.get("rating"), r.get("created_at")) for r in iter_json_lines(folder / "reviews.json", rep)]
    rv = pd.DataFrame(recs, columns=["user", "podcast_id", "value", "created_at"], dtype=object)
    rv = rep.drop_mask(rv, (rv["user"].eq("") | rv["podcast_id"].eq("")).to_numpy(), MISSING)
    rv = to_number(rv.astype({"value": str}), "value", rep)
    rv = rep.drop_mask(rv, ~rv["value"].between(1, 5).to_numpy(), OUT_OF_RANGE)
    rv = rep.drop_mask(rv, ~rv["podcast_id"].isin(set(item_of)).to_numpy(), UNKNOWN_ID)
    rv["timestamp"] = unix_seconds(rv["created_at"].astype(str))
    rv["item"] = rv["podcast_id"].map(item_of)
    rv = rv.sort_values("timestamp", kind="stable", na_position="first")
    rv = rep.drop_mask(rv, rv.duplicated(["user", "item"], keep="last").to_numpy(), DUPLICATE)
    rep.rows_kept = len(rv)
    rep.flags["no_timestamp"] += int(rv["timestamp"].isna().sum())

    pods = rep_dedupe_items(pods, files["podcasts.json"])
    items = canonical_items(
        pods.assign(domain="podcast", creator="", description="", tags=pods["podcast_id"].map(lambda p: join_tags(cats.get(p, [])))),
        extra=["podcast_id"],
    )
    res = LoadResult(canonical_interactions(rv.assign(domain="podcast")), items, files, notes=["user = author_id; value = rating 1-5; timestamp = created_at"])
    return check_result(res, "", min_kept_share)


def rep_dedupe_items(pods: pd.DataFrame, rep: FileReport) -> pd.DataFrame:
    """Two Kaggle podcast ids sharing one iTunes id become one item (flagged)."""
    dup = pods.duplicated("item")
    rep.flags["podcast_ids_merged_on_itunes_id"] += int(dup.sum())
    return pods[~dup]
