"""Source-history user-kNN (benchmark.models.userknn)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.models.userknn import TIE_BREAK, UserKNN, UserKNNConfig, top_k_dense
from conftest import tables_from_records, view_of


def _random_view(seed: int):
    """Random small histories with repeated values, so similarity ties do occur."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:02d}" for i in range(30)]
    source = {"music": [], "podcast": []}
    target = []
    for u in users:
        for it in rng.choice(12, size=rng.integers(0, 5), replace=False):
            source["music"].append((u, f"m{it}", float(rng.choice([1, 3, 40]))))
        for it in rng.choice(4, size=rng.integers(0, 2), replace=False):
            source["podcast"].append((u, f"p{it}", 1.0))
        for it in rng.choice(8, size=rng.integers(1, 4), replace=False):
            target.append((u, f"b{it}", 5.0))
    view, _ = view_of(tables_from_records(source, target, k=3, seed=seed, valid_share=0.2), seed=seed)
    return view


def _brute_force(view, rows, k, w, tf="log"):
    """The card's formula, one user and one neighbour at a time, dense."""
    x = np.hstack([view.source[d].toarray() for d in view.source_domains]).astype(float)
    x = {"log": np.log1p(np.abs(x)), "binary": (x != 0).astype(float), "raw": np.abs(x)}[tf]
    train = list(view.train_users)
    df = (x[train] > 0).sum(axis=0)
    x = x * (np.log((1 + len(train)) / (1 + df)) + 1)
    norms = np.linalg.norm(x, axis=1)
    x = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    y = (view.target_train.toarray() > 0).astype(float)
    pop = y[train].sum(axis=0)
    pop = pop / pop.max()
    out = []
    for u in rows:
        cands = [(-round(float(x[u] @ x[v]), 12), pos, v) for pos, v in enumerate(train) if v != u]
        cands.sort()  # similarity desc, then training position asc
        votes = np.zeros(view.n_catalog)
        for neg_sim, _, v in cands[:k]:
            if -neg_sim > 0:
                votes += -neg_sim * y[v]
        knn = votes / votes.max() if votes.max() > 0 else votes
        out.append((1 - w) * knn + (w + TIE_BREAK) * pop)
    return np.array(out)


@pytest.mark.parametrize("seed,k,w,tf", [(0, 3, 0.2, "log"), (1, 5, 0.0, "binary"), (2, 1, 0.5, "raw"), (3, 100, 0.1, "log")])
def test_equals_brute_force(seed, k, w, tf):
    view = _random_view(seed)
    rows = np.arange(view.n_users)  # training users too: they must not be their own neighbour
    model = UserKNN(UserKNNConfig(k=k, pop_weight=w, tf=tf, batch_size=7)).fit(view)
    np.testing.assert_allclose(model.score(rows), _brute_force(view, rows, k, w, tf), rtol=1e-10, atol=1e-12)


def test_top_k_dense_keeps_k_largest_positive_with_ties_by_column():
    sim = np.array([[0.5, 0.9, 0.5, 0.5, -1.0, 0.0], [0.0, 0.0, 0.2, 0.0, 0.0, 0.0]])
    out = top_k_dense(sim, 3)
    np.testing.assert_array_equal(out[0], [0.5, 0.9, 0.5, 0, 0, 0])
    np.testing.assert_array_equal(out[1], [0, 0, 0.2, 0, 0, 0])  # zeros are never neighbours
    np.testing.assert_array_equal(top_k_dense(sim, 10)[0], [0.5, 0.9, 0.5, 0.5, 0, 0])


def test_planted_book_in_top_two_and_rankings_depend_on_history(planted_fold, planted_small):
    (view, _), p = planted_fold, planted_small
    rows = np.concatenate([view.valid_users, view.test_users])
    s = UserKNN(UserKNNConfig(k=5, pop_weight=0.2)).fit(view).score(rows)
    assert s.shape == (len(rows), view.n_catalog) and np.isfinite(s).all()
    for row, own in zip(s, p.head_cols(view, rows)):
        assert np.sum(row > row[own]) < 2
    groups = p.group_of(view)[rows]
    other = np.flatnonzero(groups != groups[0])[0]
    assert not np.array_equal(np.argsort(-s[0]), np.argsort(-s[other]))


def test_no_source_history_or_full_pop_weight_gives_popularity(planted_small):
    tables = planted_small.tables()
    evaluable = sorted(tables["users"].loc[tables["users"]["evaluable"], "user"]) + ["cold_silent"]
    silent = dataclasses.replace(planted_small, target=planted_small.target + [("cold_silent", "b1_0", 9)],
                                 evaluable=evaluable)  # a cold user with no source history at all
    view = next(v for v, _ in (silent.fold(f) for f in range(silent.k)) if v.users.get_loc("cold_silent") in v.test_users)
    pop_order = np.argsort(-view.popularity(), kind="stable")
    r = view.users.get_loc("cold_silent")
    s = UserKNN(UserKNNConfig(k=5, pop_weight=0.3)).fit(view).score(np.array([r]))[0]
    assert list(np.argsort(-s, kind="stable")) == list(pop_order)
    rows = np.concatenate([view.valid_users, view.test_users])
    s1 = UserKNN(UserKNNConfig(k=5, pop_weight=1.0)).fit(view).score(rows)
    assert all(list(np.argsort(-x, kind="stable")) == list(pop_order) for x in s1)


def test_held_out_target_data_not_used_and_batching_invariant(planted_small):
    view, _ = planted_small.fold()
    cold_rows = np.concatenate([view.valid_users, view.test_users])
    assert view.target_train[cold_rows].nnz == 0
    cold = set(view.users[cold_rows])
    swapped = [(r[0], "b0_0" if r[0] in cold else r[1], *r[2:]) for r in planted_small.target]
    view2, _ = dataclasses.replace(planted_small, target=swapped).fold()
    assert list(view2.catalog) == list(view.catalog) and list(view2.test_users) == list(view.test_users)
    a = UserKNN(UserKNNConfig(k=4, batch_size=1)).fit(view).score(cold_rows)
    b = UserKNN(UserKNNConfig(k=4, batch_size=1000)).fit(view2).score(cold_rows)
    np.testing.assert_array_equal(a, b)


def test_source_domains_option_restricts_the_history(planted_fold):
    view, _ = planted_fold
    rows = np.concatenate([view.valid_users, view.test_users])
    both = UserKNN(UserKNNConfig(k=5)).fit(view).score(rows)
    pod = UserKNN(UserKNNConfig(k=5, source_domains=["podcast"])).fit(view).score(rows)
    assert not np.allclose(both, pod)
    # Podcast-only scores do not depend on the music history at all: erase it, same scores
    # (while the scores over both domains do change).
    silent = dataclasses.replace(view, source={**view.source, "music": sp.csr_matrix(view.source["music"].shape, dtype=np.float32)})
    np.testing.assert_array_equal(UserKNN(UserKNNConfig(k=5, source_domains=["podcast"])).fit(silent).score(rows), pod)
    assert not np.allclose(UserKNN(UserKNNConfig(k=5)).fit(silent).score(rows), both)
    # Users without a podcast history have identical podcast-only scores (popularity).
    no_p = np.flatnonzero(view.source["podcast"][rows].getnnz(axis=1) == 0)
    assert len(no_p) >= 2
    np.testing.assert_allclose(pod[no_p], np.repeat(pod[no_p[:1]], len(no_p), axis=0))


@pytest.mark.parametrize("cfg,msg", [(dict(k=0), "k must be"), (dict(pop_weight=1.5), "pop_weight"), (dict(tf="sqrt"), "tf must be"), (dict(source_domains=["video"]), "not in scenario")])
def test_bad_config_fails_clearly(cfg, msg, planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match=msg):
        UserKNN(UserKNNConfig(**cfg)).fit(view).score(view.test_users)
