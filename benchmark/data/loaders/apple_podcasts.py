"""Apple Podcasts: reviews (the podcast domain of mpa-linked) and "also subscribe to" lists.

apple-podcast-reviews
    ``ratings.csv`` (itunes_id, user nickname, rating 1-5, review title, review text)
    becomes podcast interactions; ``podcasts.csv`` (title, producer, genre,
    description, ..., itunes_id) the items, with ``tags`` = the Apple genre. About 9%
    of the reviews are of podcasts missing from ``podcasts.csv``: they are kept (the
    review is real) with a text-less stub item and flagged ``item_without_metadata``.
    Reviewer nicknames are the only user key Apple exposes; two people sharing a
    nickname cannot be told apart (a documented limitation).

apple-podcast-subs
    ``podcast_subs.json`` lists, per podcast *title*, the titles Apple shows under
    "listeners also subscribe to"; ``podcast_info.json`` has metadata and a link whose
    ``/id<n>`` is the iTunes id. Titles are mapped to iTunes ids through
    ``apple-podcast-reviews/podcasts.csv`` first (the podcast-domain vocabulary) and
    ``podcast_info.json`` second; titles that stay unmapped (or map to several ids)
    keep the title itself as id. Output: ``cosubs.parquet`` (directed pairs with rank).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import (BAD_JSON, MISSING, OUT_OF_RANGE, FileReport, LoaderError, LoadResult,
    canonical_interactions, canonical_items, clean_str, dedupe, empty_interactions, join_tags, to_number)
from benchmark.data.loaders.files import read_json, read_rows, require

REVIEWS = "apple-podcast-reviews"
SUBS = "apple-podcast-subs"
RATING_RANGE = (1, 5)
RATING_COLS = ("itunes_id", "user", "rating", "title", "review")
PODCAST_COLS = ["title", "producer", "genre", "description", "num_episodes", "rating", "num_reviews", "link", "itunes_id"]
_ID_IN_LINK = re.compile(r"/id(\d+)")


def _ids(df: pd.DataFrame, col: str, rep: FileReport) -> pd.DataFrame:
    df = to_number(df, col, rep, integer=True)
    df[col] = df[col].astype("int64").astype(str)
    return df


def read_podcasts(path: Path, rep: FileReport) -> pd.DataFrame:
    _, rows = read_rows(path, rep, columns=PODCAST_COLS, fallback_encoding="cp1252")
    df = _ids(pd.DataFrame(rows, columns=PODCAST_COLS, dtype=str), "itunes_id", rep)
    df = dedupe(df, ["itunes_id"], rep)
    rep.rows_kept = len(df)
    return df.reset_index(drop=True)


def load_reviews(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / REVIEWS
    files = {"podcasts.csv": FileReport(), "ratings.csv": FileReport()}
    pods = read_podcasts(require(d / "podcasts.csv", REVIEWS), files["podcasts.csv"])

    rep = files["ratings.csv"]
    _, rows = read_rows(require(d / "ratings.csv", REVIEWS), rep, columns=RATING_COLS, fallback_encoding="cp1252")
    r = pd.DataFrame(rows, columns=["item", "user", "value", "review_title", "review"], dtype=str)
    r = _ids(r, "item", rep)
    r["user"] = clean_str(r["user"])
    r = rep.drop_mask(r, r["user"].eq("").to_numpy(), MISSING)
    r = to_number(r, "value", rep)
    lo, hi = RATING_RANGE
    r = rep.drop_mask(r, ~r["value"].between(lo, hi).to_numpy(), OUT_OF_RANGE)
    r = dedupe(r, ["user", "item"], rep)
    rep.rows_kept = len(r)
    known = set(pods["itunes_id"])
    unknown = ~r["item"].isin(known)
    rep.flags["item_without_metadata"] += int(unknown.sum())

    stubs = pd.DataFrame({"itunes_id": sorted(set(r.loc[unknown, "item"]))})
    items_src = pd.concat([pods, stubs], ignore_index=True).fillna("")
    items_src["has_metadata"] = items_src["itunes_id"].isin(known)
    items = canonical_items(
        items_src.assign(
            item=items_src["itunes_id"],
            domain="podcast",
            creator=items_src["producer"],
            tags=items_src["genre"].map(lambda g: join_tags([g])),
            num_episodes=pd.to_numeric(items_src["num_episodes"], errors="coerce").astype("Int64"),
            num_reviews=pd.to_numeric(items_src["num_reviews"], errors="coerce").astype("Int64"),
            rating=pd.to_numeric(items_src["rating"], errors="coerce"),
        ),
        extra=["num_episodes", "num_reviews", "rating", "link", "has_metadata"],
    )
    inter = canonical_interactions(r.assign(domain="podcast", timestamp=pd.NA))
    reviews = r[["user", "item", "review_title", "review"]].reset_index(drop=True)
    notes = [
        "user = reviewer nickname; value = star rating 1-5; no timestamps",
        f"{len(stubs)} reviewed podcasts lack metadata in podcasts.csv: stub items (has_metadata=False)",
    ]
    return LoadResult(inter, items, files, extra={"reviews": reviews}, notes=notes)


def _title_key(s: str) -> str:
    return re.sub(r"\s+", " ", str(s)).strip().casefold()


def _title_map(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """title key -> id for titles with exactly one id; also the ambiguous keys."""
    by_key: dict[str, set[str]] = {}
    for title, pid in pairs:
        by_key.setdefault(_title_key(title), set()).add(pid)
    return {k: next(iter(v)) for k, v in by_key.items() if len(v) == 1}, {k for k, v in by_key.items() if len(v) > 1}


def _read_json_list(path: Path) -> list:
    data = read_json(path, SUBS)
    if not isinstance(data, list):
        raise LoaderError(f"{SUBS}: {path.name} should hold a JSON list, got {type(data).__name__}")
    return data


def _titled(path: Path, rep: FileReport, well_formed):
    """(record, cleaned title) of each JSON record that is a well-formed dict with a title;
    the others are counted as dropped (bad JSON / missing title) in ``rep``."""
    for rec in _read_json_list(path):
        rep.rows_read += 1
        if not isinstance(rec, dict) or not well_formed(rec):
            rep.drop(BAD_JSON)
            continue
        title = re.sub(r"\s+", " ", str(rec.get("title") or "")).strip()
        if not title:
            rep.drop(MISSING)
            continue
        yield rec, title


def load_subs(raw_root: Path) -> LoadResult:
    d = Path(raw_root) / SUBS
    pods_path = Path(raw_root) / REVIEWS / "podcasts.csv"
    if not pods_path.exists():
        raise LoaderError(f"{SUBS} maps titles to the ids of {REVIEWS}: fetch that source first ({pods_path} missing)")
    files = {"podcast_info.json": FileReport(), "podcast_subs.json": FileReport()}
    pods = read_podcasts(require(pods_path, REVIEWS), FileReport())

    rep = files["podcast_info.json"]
    info_rows = []
    for rec, title in _titled(d / "podcast_info.json", rep, lambda r: True):
        m = _ID_IN_LINK.search(str(rec.get("link") or ""))
        if m is None:
            rep.flags["no_id_in_link_title_used"] += 1
        info_rows.append({**{k: rec.get(k) for k in ("producer", "genre", "description", "link")}, "title": title, "item": m.group(1) if m else title})
    info = pd.DataFrame(info_rows, columns=["item", "title", "producer", "genre", "description", "link"])
    info = dedupe(info, ["item"], rep)
    rep.rows_kept = len(info)

    primary, amb1 = _title_map(list(zip(pods["title"], pods["itunes_id"])))
    secondary, amb2 = _title_map([(t, i) for t, i in zip(info["title"], info["item"]) if i != t])

    def to_id(title: str) -> tuple[str, bool]:
        k = _title_key(title)
        if k in primary:
            return primary[k], True
        if k in secondary and k not in amb1:
            return secondary[k], True
        return title, False

    rep = files["podcast_subs.json"]
    pairs = []
    for rec, title in _titled(d / "podcast_subs.json", rep, lambda r: isinstance(r.get("subs", []), list)):
        rep.rows_kept += 1
        a, a_ok = to_id(title)
        if not rec.get("subs"):
            rep.flags["empty_subs_list"] += 1
        for rank, other in enumerate(rec.get("subs") or [], start=1):
            other = re.sub(r"\s+", " ", str(other or "")).strip()
            if not other:
                rep.flags["pair_blank_title_dropped"] += 1
                continue
            b, b_ok = to_id(other)
            pairs.append((a, b, rank, title, other, a_ok, b_ok))
    cos = pd.DataFrame(pairs, columns=["podcast_a", "podcast_b", "rank", "title_a", "title_b", "a_mapped", "b_mapped"])
    self_pair = cos["podcast_a"] == cos["podcast_b"]
    rep.flags["pair_self_dropped"] += int(self_pair.sum())
    cos = cos[~self_pair]
    dup = cos.duplicated(["podcast_a", "podcast_b"])
    rep.flags["pair_duplicate_dropped"] += int(dup.sum())
    cos = cos[~dup].reset_index(drop=True)
    cos["rank"] = cos["rank"].astype("int16")
    rep.flags["pairs_kept"] += len(cos)
    rep.flags["ambiguous_titles"] += len(amb1 | amb2)

    items = canonical_items(
        info.assign(domain="podcast", creator=info["producer"], tags=info["genre"].map(lambda g: join_tags([g or ""]))),
        extra=["link"],
    )
    mapped = pd.concat([cos["a_mapped"], cos["b_mapped"]])
    notes = [
        "cosubs: directed pairs (podcast_a lists podcast_b at position rank); ids are iTunes ids where the title maps "
        f"(via {REVIEWS}/podcasts.csv, then podcast_info.json links), else the title",
        f"share of pair endpoints mapped to an iTunes id: {mapped.mean():.3f}" if len(mapped) else "no pairs",
    ]
    return LoadResult(empty_interactions(), items, files, extra={"cosubs": cos}, notes=notes)
