"""Hand-made canonical tables and TrainViews for the simple-baseline tests.

Everything goes through :func:`benchmark.protocol.build_fold`, so the tests see
exactly what a model sees in the benchmark (domain-prefixed ids, train-only
catalog, empty target rows for valid/test users) instead of a hand-rolled view
that could drift from the protocol.

Three builders:

* :func:`tables_from_records` turns plain ``(user, item, value)`` lists into the
  four canonical tables plus meta (the schema of :mod:`benchmark.schema`).
* :func:`planted_view` plants groups: training users of group ``g`` listen to
  the music items of ``g`` and read book ``g``; one book is globally popular so
  that popularity alone would rank it first. A cold user of group ``g`` must get
  book ``g`` near the top from a model that uses source history.
* :func:`synthetic_tables` is a realistic-size random scenario (Zipf item
  popularity, latent taste groups) used to measure fit times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.protocol import TrainView, Truth, build_fold, deal_folds
from benchmark.schema import cohort_of


def tables_from_records(
    source: dict[str, list[tuple[str, str, float]]],
    target: list[tuple[str, str, float]],
    evaluable: list[str] | None = None,
    k: int = 3,
    seed: int = 0,
    valid_share: float = 0.2,
    name: str = "tiny",
) -> dict:
    """Canonical tables from raw records; item ids get their domain prefix here.

    ``evaluable`` defaults to every user with history in a source domain and in
    the target; they are dealt into ``k`` folds with :func:`deal_folds`.
    """
    rows = []
    for dom, recs in list(source.items()) + [("book", target)]:
        for u, i, v in recs:
            rows.append((str(u), f"{dom}:{i}", dom, float(v), pd.NA, True))
    inter = pd.DataFrame(rows, columns=["user", "item", "domain", "value", "timestamp", "positive"])
    inter["value"] = inter["value"].astype("float32")
    inter["timestamp"] = inter["timestamp"].astype("Int64")
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    return _finish_tables(inter, list(source), evaluable, k, seed, valid_share, name)


def _finish_tables(inter, source_domains, evaluable, k, seed, valid_share, name) -> dict:
    has = {d: set(inter.loc[inter["domain"] == d, "user"]) for d in [*source_domains, "book"]}
    all_users = np.sort(inter["user"].unique())
    users = pd.DataFrame({"user": all_users})
    users["has_music"] = users["user"].isin(has.get("music", set()))
    users["has_podcast"] = users["user"].isin(has.get("podcast", set()))
    users["has_book"] = users["user"].isin(has["book"])
    users["cohort"] = [cohort_of(m, p) for m, p in zip(users["has_music"], users["has_podcast"])]
    if evaluable is None:
        src = set().union(*(has[d] for d in source_domains))
        evaluable = sorted(src & has["book"])
    users["evaluable"] = users["user"].isin(set(evaluable))
    folds = deal_folds(np.array(sorted(evaluable)), k=k, seeds=[seed], valid_share=valid_share)
    items = pd.DataFrame({"item": np.sort(inter["item"].unique())})
    items["domain"] = items["item"].str.split(":").str[0]
    items["title"] = items["item"]
    items["creator"] = ""
    items["text"] = items["item"]
    meta = {"name": name, "source_domains": list(source_domains), "target_domain": "book", "semi_synthetic": True, "params": {}, "notes": "test fixture"}
    return {"interactions": inter, "users": users, "folds": folds, "items": items, "meta": meta}


def view_of(tables: dict, seed: int = 0, fold: int = 0, min_support: int = 1) -> tuple[TrainView, Truth]:
    t = tables
    return build_fold(t["interactions"], t["users"], t["folds"], t["items"], t["meta"], seed, fold, min_support)


def planted_records(n_groups: int = 4, per_group: int = 8, cold_per_group: int = 3, seed: int = 0):
    """Records with one book per taste group plus a globally popular book ``P``.

    Group ``g`` owns music items ``g{g}a..g{g}d``; its training users play 3 of
    them plus a random noise artist, and read book ``b{g}`` (most also read
    ``P``, some a random other book). Cold users of group ``g`` (names start
    with ``cold``) play 3 of group ``g``'s artists and read only ``b{g}`` (their
    truth). Podcasts mirror the groups weakly so two source domains exist.
    Returns ``(source, target, evaluable, group_of_user)``.
    """
    rng = np.random.default_rng(seed)
    music, podcast, book, group = [], [], [], {}
    noise_artists = [f"n{j}" for j in range(12)]
    for g in range(n_groups):
        own = [f"g{g}{c}" for c in "abcd"]
        for j in range(per_group + cold_per_group):
            cold = j >= per_group
            u = f"{'cold' if cold else 'tr'}{g}_{j}"
            group[u] = g
            for it in rng.choice(own, size=3, replace=False):
                music.append((u, it, float(rng.integers(1, 50))))
            music.append((u, str(rng.choice(noise_artists)), 1.0))
            podcast.append((u, f"p{g}", 1.0))
            book.append((u, f"b{g}", 5.0))
            if not cold:
                if j % 4 != 3:
                    book.append((u, "P", 5.0))
                if j % 3 == 0:
                    book.append((u, f"x{int(rng.integers(0, 6))}", 4.0))
    evaluable = sorted(u for u in group if u.startswith("cold"))
    return {"music": music, "podcast": podcast}, book, evaluable, group


def planted_view(seed: int = 0, **kw) -> tuple[TrainView, Truth, dict]:
    """The planted view (seed 0, fold 0 of a 2-fold deal over the ``cold*`` users).

    Only ``cold*`` users are evaluable, so every valid/test user is one of them;
    the ``cold*`` users dealt to "train" in this fold are ordinary training users
    (their book is their group's book, so they reinforce the planted structure).
    """
    source, target, evaluable, group = planted_records(seed=seed, **kw)
    tables = tables_from_records(source, target, evaluable=evaluable, k=2, seed=0, valid_share=0.3)
    view, truth = view_of(tables)
    return view, truth, group


def synthetic_tables(
    n_users: int = 5000,
    n_source_items: int = 22000,
    n_target_items: int = 6000,
    n_source_inter: int = 100000,
    n_target_inter: int = 30000,
    n_groups: int = 25,
    k: int = 5,
    seed: int = 0,
) -> dict:
    """A realistic-size scenario: Zipf popularity, taste groups, two source domains.

    Users and items belong to latent groups; 70% of a user's interactions are
    drawn (Zipf-weighted) from their own group's items, the rest from all items.
    Sized like the mpa-linked scenario (thousands of users, ~20k items, ~100k
    interactions) so measured fit times are representative.
    """
    rng = np.random.default_rng(seed)
    ugroup = rng.integers(0, n_groups, n_users)

    def draw(n_items: int, n_inter: int, prefix: str) -> pd.DataFrame:
        igroup = rng.integers(0, n_groups, n_items)
        w = 1.0 / np.arange(1, n_items + 1) ** 0.9
        w = w[rng.permutation(n_items)]
        users = rng.choice(n_users, size=n_inter, p=_zipf(n_users, 0.6, rng))
        own = rng.random(n_inter) < 0.7
        items = rng.choice(n_items, size=n_inter, p=w / w.sum())
        for g in range(n_groups):
            sel = own & (ugroup[users] == g)
            pool = np.flatnonzero(igroup == g)
            pw = w[pool] / w[pool].sum()
            items[sel] = rng.choice(pool, size=int(sel.sum()), p=pw)
        return pd.DataFrame({"user": [f"u{x}" for x in users], "item": [f"{prefix}{x}" for x in items]})

    frames = []
    n_pod = n_source_items // 10
    for dom, ni, nn in (("music", n_source_items - n_pod, int(n_source_inter * 0.8)), ("podcast", n_pod, n_source_inter - int(n_source_inter * 0.8)), ("book", n_target_items, n_target_inter)):
        df = draw(ni, nn, f"{dom}:")
        df["domain"] = dom
        df["value"] = rng.integers(1, 10, len(df)).astype("float32")
        frames.append(df)
    inter = pd.concat(frames, ignore_index=True).drop_duplicates(["user", "item"]).reset_index(drop=True)
    inter["timestamp"] = pd.array([pd.NA] * len(inter), dtype="Int64")
    inter["positive"] = True
    return _finish_tables(inter, ["music", "podcast"], None, k, seed, 0.1, "synthetic")


def _zipf(n: int, a: float, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    w = w[rng.permutation(n)]
    return w / w.sum()
