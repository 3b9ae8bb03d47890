"""ColloPop: the formula, the train-only counting, and the planted association."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from benchmark.models.collopop import ColloPop
from benchmark.models.common import top_n_per_row
from benchmark.models.popularity import Popularity
from conftest import planted_scenario, view_of


def brute_force(view, domain, alpha, top_n=None):
    """The paper's formula with explicit loops over users, entities and items."""
    src = view.source[domain].toarray()
    tgt = view.target_train.toarray() > 0
    train = set(view.train_users.tolist())

    def entities(u):
        idx = np.flatnonzero(src[u] > 0)
        if top_n is not None:  # most played first, ties by lower column
            idx = sorted(idx, key=lambda i: (-src[u, i], i))[:top_n]
        return list(idx)

    pop = np.array([sum(tgt[u, a] for u in train) for a in range(view.n_catalog)], dtype=float)
    cooc = np.zeros((src.shape[1], view.n_catalog))
    for u in train:
        for i in entities(u):
            cooc[i] += tgt[u]
    out = np.zeros((view.n_users, view.n_catalog))
    for u in range(view.n_users):
        for i in entities(u):
            out[u] += cooc[i] * pop**alpha
    return out


@pytest.mark.parametrize("domain,alpha,top_n", [("music", 0.7, None), ("podcast", -0.5, None), ("music", 1.0, 2)])
def test_equals_brute_force(domain, alpha, top_n):
    view, _ = planted_scenario(seed=1, n_users=40).fold()
    model = ColloPop(ColloPop.Config(domain=domain, alpha=alpha, top_n=top_n)).fit(view)
    rows = np.arange(view.n_users)
    expected = brute_force(view, domain, alpha, top_n)
    assert np.allclose(model.raw_scores(rows), expected, rtol=1e-10, atol=1e-12)
    assert expected[view.test_users].max() > 0  # the case is not trivially all-zero


def test_score_ranks_like_formula_with_popularity_tiebreak(planted_fold):
    view, _ = planted_fold
    model = ColloPop(ColloPop.Config(alpha=0.5)).fit(view)
    rows = view.test_users
    raw, s = model.raw_scores(rows), model.score(rows)
    pop = view.popularity()
    assert np.isfinite(s).all() and s.shape == (len(rows), view.n_catalog)
    for r in range(len(rows)):
        # lexicographic: raw score, then popularity, then catalog order
        ref = np.lexsort((np.arange(view.n_catalog), -pop, -raw[r]))
        assert np.array_equal(np.argsort(-s[r], kind="stable"), ref)


def test_planted_right_item_first(planted_fold, planted_small):
    (view, _), p = planted_fold, planted_small
    s = ColloPop(ColloPop.Config(domain="music", alpha=0.0)).fit(view).score(view.test_users)
    assert np.array_equal(s.argmax(axis=1), p.head_cols(view, view.test_users))
    # podcast entities carry the same planted group, for users who have podcasts
    with_p = view.test_users[view.source["podcast"][view.test_users].getnnz(axis=1) > 0]
    assert len(with_p) >= 5
    sp_ = ColloPop(ColloPop.Config(domain="podcast", alpha=0.0)).fit(view).score(with_p)
    assert np.array_equal(sp_.argmax(axis=1), p.head_cols(view, with_p))


def test_beats_random_on_planted_and_not_on_null():
    def hit3(view, truth, model):
        s = model.fit(view).score(view.test_users)
        top = np.argsort(-s, axis=1)[:, :3]
        return np.take_along_axis(truth.test.toarray() > 0, top, axis=1).any(axis=1).mean()

    view, truth = planted_scenario(n_users=120).fold()
    rng = np.random.default_rng(0)
    rand = np.mean([np.take_along_axis(truth.test.toarray() > 0, rng.permuted(np.tile(np.arange(view.n_catalog), (len(view.test_users), 1)), axis=1)[:, :3], axis=1).any(axis=1).mean() for _ in range(20)])
    assert hit3(view, truth, ColloPop(ColloPop.Config(alpha=0.0))) > rand + 0.3


def test_counts_only_training_users():
    frames = planted_scenario(seed=2, n_users=60).tables()
    folds = frames["folds"]
    test_users = folds[(folds["fold"] == 0) & (folds["role"] == "test")]["user"].tolist()
    extra = pd.DataFrame(
        [(u, "music:secret", "music", 40.0, pd.NA, True) for u in test_users[:3]]
        + [(u, "book:only-test", "book", 9.0, pd.NA, True) for u in test_users[:3]],
        columns=frames["interactions"].columns,
    )
    edited = dict(frames, interactions=pd.concat([frames["interactions"], extra], ignore_index=True))
    view, _ = view_of(edited)
    assert "book:only-test" not in view.catalog  # rated by test users only: not in this fold
    model = ColloPop(ColloPop.Config(alpha=0.5)).fit(view)
    secret = view.source_items["music"].get_loc("music:secret")
    assert model._cooc[secret].nnz == 0  # co-occurs only with test users' targets
    # Dropping every valid/test user's target rows changes nothing a model can see.
    inter = edited["interactions"]
    cold = set(folds[(folds["fold"] == 0) & (folds["role"] != "train")]["user"])
    no_cold_target = inter[~(inter["user"].isin(cold) & (inter["domain"] == "book"))]
    view2, _ = view_of(dict(edited, interactions=no_cold_target))
    assert view2.catalog.equals(view.catalog)
    model2 = ColloPop(ColloPop.Config(alpha=0.5)).fit(view2)
    rows = np.arange(view.n_users)
    assert np.array_equal(model.raw_scores(rows), model2.raw_scores(rows))


def test_user_without_entities_gets_popularity_ranking(planted_fold):
    view, _ = planted_fold
    no_p = view.test_users[view.source["podcast"][view.test_users].getnnz(axis=1) == 0]
    assert len(no_p) > 0
    s = ColloPop(ColloPop.Config(domain="podcast")).fit(view).score(no_p)
    ref = Popularity().fit(view).score(no_p)
    assert np.array_equal(np.argsort(-s, axis=1, kind="stable"), np.argsort(-ref, axis=1, kind="stable"))


def test_different_histories_different_rankings(planted_fold, planted_small):
    (view, _), p = planted_fold, planted_small
    groups = p.group_of(view)
    a = view.test_users[groups[view.test_users] == 0][0]
    b = view.test_users[groups[view.test_users] == 1][0]
    s = ColloPop().fit(view).score(np.array([a, b]))
    assert not np.array_equal(np.argsort(-s[0]), np.argsort(-s[1]))


def test_unknown_domain_is_a_clear_error(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="absent"):
        ColloPop(ColloPop.Config(domain="video")).fit(view)


def test_top_n_per_row():
    m = sp.csr_matrix(np.array([[5, 0, 3, 3, 1], [0, 0, 0, 0, 0], [2, 7, 0, 0, 0]], dtype=float))
    out = top_n_per_row(m, 2).toarray()
    assert np.array_equal(out, [[5, 0, 3, 0, 0], [0, 0, 0, 0, 0], [2, 7, 0, 0, 0]])
    assert np.array_equal(top_n_per_row(m, None).toarray(), m.toarray())
    with pytest.raises(ValueError):
        top_n_per_row(m, 0)


def test_ignores_target_rows_of_non_training_users(planted_fold):
    """Defence in depth: even a view that wrongly carried a test user's target row
    (a contract breach) must not feed that row into the counts."""
    import dataclasses

    view, truth = planted_fold
    leaky = view.target_train.tolil()
    leaky[view.test_users] = truth.test.tolil()  # plant the held-out truth
    bad = dataclasses.replace(view, target_train=leaky.tocsr())
    rows = np.arange(view.n_users)
    clean = ColloPop(ColloPop.Config(alpha=0.5)).fit(view).raw_scores(rows)
    assert np.array_equal(ColloPop(ColloPop.Config(alpha=0.5)).fit(bad).raw_scores(rows), clean)
