"""A tiny, hand-made scenario with a planted cross-domain structure, for model tests.

Why: model tests need a real :class:`~benchmark.protocol.TrainView` built by the real
``build_fold`` (so the leakage guard and the catalog rule are exercised), but small
enough to fit in a second, and with a structure whose right answer is known.

Planted structure (``planted=True``): every user belongs to one of ``n_groups`` taste
groups. A user listens mostly to the artists (and, for about half of the users, the
podcasts) of their group, and reads books of the *same* group: always the group's
"head" book ``book:b{g}_0``, two more books of the group, and sometimes one of three
globally popular books. So the right first item for a cold user of group ``g`` is
``book:b{g}_0``. With ``planted=False`` the book group is drawn independently of the
source group (the null control: no model can honestly beat popularity there).

Also present, to exercise the protocol: users with books only (never evaluable,
always training users), users with music only (no target, never evaluable), and
sub-threshold ratings (``positive=False``) that must not count as target positives.

Stable API (other engineers import it): ``tiny_frames(...) -> dict`` of canonical
tables and ``tiny_fold(seed=0, n_users=200, planted=True, ...) -> (view, truth)``.
Helper: ``group_of(view) -> np.ndarray`` gives each user row's source group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.protocol import build_fold, deal_folds
from benchmark.schema import cohort_of

ARTISTS_PER_GROUP = 6
PODCASTS_PER_GROUP = 4
BOOKS_PER_GROUP = 5
N_POPULAR_BOOKS = 3


def tiny_frames(seed: int = 0, n_users: int = 200, planted: bool = True, n_groups: int = 4, podcast_share: float = 0.5, k: int = 5) -> dict:
    """Canonical tables (interactions, users, folds, items, meta) of the tiny scenario.

    ``n_users`` evaluable users (music + books), plus ``n_users // 20`` book-only and
    ``n_users // 40`` music-only users. Deterministic for a fixed ``seed``.
    """
    if n_users < 2 * k:
        raise ValueError(f"n_users={n_users} too small for k={k} folds")
    rng = np.random.default_rng([seed, 77])
    rows: list[tuple] = []
    users: list[dict] = []

    def add(user, item, domain, value, positive=True):
        rows.append((user, item, domain, float(value), pd.NA, bool(positive)))

    def books_for(user, tg):
        add(user, f"book:b{tg}_0", "book", rng.integers(8, 11))
        for j in rng.choice(np.arange(1, BOOKS_PER_GROUP), size=2, replace=False):
            add(user, f"book:b{tg}_{j}", "book", rng.integers(7, 11))
        if rng.random() < 0.5:
            add(user, f"book:pop{rng.integers(N_POPULAR_BOOKS)}", "book", rng.integers(7, 11))
        if rng.random() < 0.3:  # a disliked book: not a positive
            add(user, f"book:b{rng.integers(n_groups)}_{rng.integers(BOOKS_PER_GROUP)}", "book", 3, positive=False)

    groups = rng.permutation(np.arange(n_users) % n_groups)
    for u in range(n_users):
        user, g = f"u{u:04d}", int(groups[u])
        for j in rng.choice(ARTISTS_PER_GROUP, size=3, replace=False):
            add(user, f"music:a{g}_{j}", "music", rng.integers(20, 60))
        add(user, f"music:a{rng.integers(n_groups)}_{rng.integers(ARTISTS_PER_GROUP)}", "music", rng.integers(1, 10))
        has_p = bool(rng.random() < podcast_share)
        if has_p:
            for j in rng.choice(PODCASTS_PER_GROUP, size=2, replace=False):
                add(user, f"podcast:p{g}_{j}", "podcast", rng.integers(5, 30))
        books_for(user, g if planted else int(rng.integers(n_groups)))
        users.append(dict(user=user, has_music=True, has_podcast=has_p, has_book=True, cohort=cohort_of(True, has_p), evaluable=True))
    for u in range(n_users // 20):
        user = f"b{u:04d}"
        books_for(user, int(rng.integers(n_groups)))
        users.append(dict(user=user, has_music=False, has_podcast=False, has_book=True, cohort=cohort_of(False, False), evaluable=False))
    for u in range(n_users // 40):
        user = f"m{u:04d}"
        add(user, f"music:a{rng.integers(n_groups)}_{rng.integers(ARTISTS_PER_GROUP)}", "music", rng.integers(1, 50))
        users.append(dict(user=user, has_music=True, has_podcast=False, has_book=False, cohort=cohort_of(True, False), evaluable=False))

    inter = pd.DataFrame(rows, columns=["user", "item", "domain", "value", "timestamp", "positive"])
    inter = inter.drop_duplicates(["user", "item"], keep="first").reset_index(drop=True)
    inter["value"] = inter["value"].astype("float32")
    inter["timestamp"] = inter["timestamp"].astype("Int64")
    users_df = pd.DataFrame(users)
    items = pd.DataFrame({"item": np.sort(inter["item"].unique())})
    items["domain"] = items["item"].str.split(":").str[0]
    items["title"] = "title of " + items["item"]
    items["creator"] = ""
    items["text"] = items["title"]
    evaluable = users_df.loc[users_df["evaluable"], "user"].to_numpy()
    folds = deal_folds(evaluable, k=k, seeds=[seed], valid_share=0.1)
    meta = {
        "name": "tiny-planted" if planted else "tiny-null",
        "source_domains": ["music", "podcast"],
        "target_domain": "book",
        "semi_synthetic": True,
        "params": {"seed": seed, "n_users": n_users, "planted": planted, "n_groups": n_groups},
        "notes": "test fixture with a planted group structure (tests/fixtures_fold.py)",
        "_groups": {f"u{u:04d}": int(groups[u]) for u in range(n_users)},
    }
    return {"interactions": inter, "users": users_df, "folds": folds, "items": items, "meta": meta}


def fold_from_frames(frames: dict, seed: int | None = None, fold: int = 0, min_support: int = 1):
    """``build_fold`` on tables from :func:`tiny_frames` (possibly edited by a test).

    ``seed`` defaults to the seed the frames were dealt with.
    """
    seed = frames["meta"]["params"]["seed"] if seed is None else seed
    return build_fold(frames["interactions"], frames["users"], frames["folds"], frames["items"], frames["meta"], seed, fold, min_support)


def tiny_fold(seed: int = 0, n_users: int = 200, planted: bool = True, fold: int = 0, n_groups: int = 4, min_support: int = 1):
    """(TrainView, Truth) of fold ``fold`` of the tiny scenario; see the module docstring.

    The view carries ``extras["fixture_groups"]``: the planted source group per user row (-1
    for users outside the planted population), so tests can check "right item first".
    """
    frames = tiny_frames(seed=seed, n_users=n_users, planted=planted, n_groups=n_groups)
    view, truth = fold_from_frames(frames, seed=seed, fold=fold, min_support=min_support)
    gmap = frames["meta"]["_groups"]
    view.extras["fixture_groups"] = np.array([gmap.get(u, -1) for u in view.users], dtype=int)
    return view, truth


def group_of(view) -> np.ndarray:
    """Planted source group per user row of a view from :func:`tiny_fold` (-1: none)."""
    return view.extras["fixture_groups"]


def sized_view(n_users: int = 2000, n_items: int = 5000, n_source: int = 8000, per_user: int = 10, dim: int = 64, seed: int = 0):
    """(TrainView, test-truth csr) of realistic size from a low-rank generator, for timing.

    Built directly (not through ``build_fold``, whose pandas work would dominate) with
    80% training, 5% valid, 15% test users; ``extras["source_emb"]`` holds random
    ``dim``-d vectors for a music and a podcast domain (podcast for half of the users).
    """
    import pandas as pd
    import scipy.sparse as sp

    from benchmark.protocol import TrainView

    rng = np.random.default_rng([seed, 5])
    z = rng.normal(size=(n_users, 8))

    def draw(n_cols, k, users):
        w = rng.normal(size=(n_cols, 8))
        rows, cols = [], []
        for u in users:
            logits = 2.0 * (w @ z[u]) / np.sqrt(8)
            p = np.exp(logits - logits.max())
            cols.append(rng.choice(n_cols, size=k, replace=False, p=p / p.sum()))
            rows.append(np.full(k, u))
        r, c = np.concatenate(rows), np.concatenate(cols)
        vals = rng.integers(1, 50, size=len(r)).astype(np.float32)
        return sp.csr_matrix((vals, (r, c)), shape=(n_users, n_cols))

    perm = rng.permutation(n_users)
    n_tr, n_va = int(0.8 * n_users), int(0.05 * n_users)
    train, valid, test = np.sort(perm[:n_tr]), np.sort(perm[n_tr : n_tr + n_va]), np.sort(perm[n_tr + n_va :])
    music = draw(n_source, 30, range(n_users))
    pod_users = np.sort(rng.choice(n_users, size=n_users // 2, replace=False))
    podcast = draw(n_source // 4, 5, pod_users)
    full = draw(n_items, per_user, range(n_users))
    keep = np.zeros(n_users, dtype=np.float32)
    keep[train] = 1.0
    target = sp.csr_matrix(sp.diags(keep) @ full)
    target.eliminate_zeros()
    cohort = np.where(np.isin(np.arange(n_users), pod_users), "m&p", "m-only")
    view = TrainView(
        scenario="sized-synthetic", seed=seed, fold=0,
        users=pd.Index([f"u{i}" for i in range(n_users)]),
        train_users=train, valid_users=valid, test_users=test,
        source_domains=["music", "podcast"], source={"music": music, "podcast": podcast},
        source_items={"music": pd.Index([f"music:{i}" for i in range(n_source)]), "podcast": pd.Index([f"podcast:{i}" for i in range(n_source // 4)])},
        target_train=target, catalog=pd.Index([f"book:{i}" for i in range(n_items)]), cohort=cohort,
        items=pd.DataFrame(index=pd.Index([], name="item")),
    )
    view.extras["source_emb"] = {d: rng.normal(size=(len(view.source_items[d]), dim)).astype(np.float32) for d in ("music", "podcast")}
    return view, full[test]
