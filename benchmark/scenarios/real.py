"""Real shared-user scenarios (douban-m2b, epinions-m2b, ciao-m2b): music -> book.

The same people rated music and books, so nothing is linked: the builder only picks
the two domains, prefixes item ids per domain (Douban restarts ids per domain),
marks book positives, and decides who is evaluable (DESIGN section 3):

* evaluable = >= 1 music interaction and >= 1 book positive (after the time cut);
* users with book history only stay as training users, users with music only stay
  as source-side input (pretraining) -- both are kept in the tables.

With ``time_cut`` (Ciao, the only source with timestamps) an evaluable user's music
interactions at or after their first book rating are dropped, so nothing caused by
reading books can leak into the inputs that predict their books.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.config.params import RealScenario, parse_params_section
from benchmark.scenarios.schema import DOMAINS, TARGET, prefixed
from benchmark.scenarios.export import Built, finalize_interactions, items_table, read_prepared, users_table

def _resolve(name: str, spec: dict) -> dict:
    """The spec through the params schema: defaults filled in one place, typos refused."""
    return parse_params_section(RealScenario, {"builder": "real", **spec}, f"scenarios.{name}").model_dump()


def cut_after_first_book(inter: pd.DataFrame, candidates: set[str], sources: list[str]) -> tuple[pd.DataFrame, pd.Index]:
    """Drop the ``sources`` rows of ``candidates`` with timestamp >= their first book rating.

    The rule shared by every builder with a time cut (real, multi): any book rating
    (positive or not) starts the target history, and every source domain is cut at the
    same instant. Returns the cut frame and the index labels of the dropped rows.
    """
    rel = inter[inter["user"].isin(candidates)]
    books = rel[rel["domain"] == TARGET]
    src = rel[rel["domain"].isin(list(sources))]
    if books["timestamp"].isna().any() or src["timestamp"].isna().any():
        n = int(books["timestamp"].isna().sum() + src["timestamp"].isna().sum())
        raise ValueError(f"time_cut needs timestamps on every {'/'.join(sources)}/book row of evaluable users; {n} rows have none")
    first_book = books.groupby("user")["timestamp"].min()
    cut_at = src["user"].map(first_book)
    drop_idx = src.index[(src["timestamp"] >= cut_at).to_numpy(dtype=bool)]
    return inter.drop(index=drop_idx), drop_idx


def time_cut(inter: pd.DataFrame, candidates: set[str], music: str = "music") -> tuple[pd.DataFrame, dict]:
    """Drop music rows of ``candidates`` with timestamp >= their first book rating.

    ``inter`` has unprefixed domains ``music``/``book`` (``music`` renamed already).
    Any book rating (positive or not) starts the target history. Returns the cut
    frame and counts for the card.
    """
    out, drop_idx = cut_after_first_book(inter, candidates, [music])
    left = set(out.loc[(out["domain"] == music) & out["user"].isin(candidates), "user"])
    lost = sorted(candidates - left)
    return out, {
        "applied": True,
        "rule": "music interactions with timestamp >= the user's first book rating are dropped (users that had music and a book positive)",
        "interactions_removed": int(len(drop_idx)),
        "users_affected": int(inter.loc[drop_idx, "user"].nunique()),
        "users_lost_evaluability": int(len(lost)),
    }


def build_real(name: str, spec: dict, prepared_root: Path) -> Built:
    """Build one real music -> book scenario from ``prepared_root/<source>/``."""
    spec = _resolve(name, spec)
    src = spec["source"]
    music = spec["music_domain"]
    thr = float(spec["positive_threshold"])
    raw = read_prepared(prepared_root, src, "interactions")
    items_raw = read_prepared(prepared_root, src, "items", required=False)

    present = set(raw["domain"].unique())
    if music not in present or TARGET not in present:
        raise ValueError(f"scenario {name}: prepared source {src} has domains {sorted(present)}; needs '{music}' and '{TARGET}'")
    inter = raw[raw["domain"].isin([music, TARGET])].copy()
    # Rows of the benchmark's other domains; category domains (cat<N>: Epinions / Ciao
    # categories other than Music and Books) are left out of the count, as they were left
    # out of the prepared table before it kept them: this recipe's card and hash are
    # unchanged by the loader keeping them (the prepare report counts them per domain).
    other_rows = int((~raw["domain"].isin([music, TARGET]) & raw["domain"].isin(DOMAINS)).sum())
    inter["user"] = inter["user"].astype(str)
    inter["item"] = inter["item"].astype(str)
    inter["timestamp"] = pd.array(inter["timestamp"], dtype="Int64") if "timestamp" in inter else pd.array([pd.NA] * len(inter), dtype="Int64")
    inter = inter.reset_index(drop=True)

    def _eligible(df: pd.DataFrame) -> set[str]:
        has_m = set(df.loc[df["domain"] == music, "user"])
        has_pos = set(df.loc[(df["domain"] == TARGET) & (df["value"] >= thr), "user"])
        return has_m & has_pos

    before = _eligible(inter)
    cut_note = {"applied": False}
    if spec["time_cut"]:
        inter, cut_note = time_cut(inter, before, music)
    evaluable = _eligible(inter)

    inter["positive"] = (inter["domain"] != TARGET) | (inter["value"] >= thr)
    inter["domain"] = inter["domain"].where(inter["domain"] == TARGET, "music")
    inter["item"] = [prefixed(d, i) for d, i in zip(inter["domain"], inter["item"])]
    inter = finalize_interactions(inter)

    meta_by_domain = {}
    if items_raw is not None:
        items_raw = items_raw.assign(item=items_raw["item"].astype(str))
        dom_col = items_raw["domain"] if "domain" in items_raw else pd.Series(TARGET, index=items_raw.index)
        for d_raw, d in ((music, "music"), (TARGET, TARGET)):
            meta_by_domain[d] = items_raw[dom_col == d_raw]
    items = items_table(inter, meta_by_domain)

    notes = {
        "time_cut": cut_note,
        "filters": {
            "evaluable_rule": ">= 1 music interaction and >= 1 book positive (after the time cut)",
            "evaluable_before_time_cut": len(before),
            "rows_of_other_domains_dropped": other_rows,
            "item_text": "title/creator/description of the prepared items table where present (DESIGN: no item text in these sources; item-side inputs are collaborative)",
        },
    }
    return Built(
        interactions=inter,
        items=items,
        users=users_table(inter, evaluable),
        source_domains=["music"],
        semi_synthetic=False,
        sources=[src],
        notes=notes,
    )
