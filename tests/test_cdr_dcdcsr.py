"""DCDCSR (benchmark/models/cdr/dcdcsr.py): the paper's density rule, its cold-start inference, no leakage.

Fits use a small config on the planted fixture (tests/conftest.py ``planted_fold``), so
the file runs in seconds; the default config is exercised by the model-contract tests.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from benchmark.models.cdr.common import domains
from benchmark.models.cdr.dcdcsr import DCDCSR, Affine, benchmark_factors, density_weights

SMALL = DCDCSR.Config(dim=16, mf_epochs=40, mf_batch_size=256, source_batch_size=256, hidden=32, map_lr=3e-3)


def _fit(view, seed=0, **over):
    return DCDCSR(DCDCSR.Config(**{**SMALL.__dict__, **over}), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def fitted(planted_small):
    view, truth = planted_small.fold()
    return view, truth, _fit(view)


def test_density_weights_follow_the_papers_rule_by_hand():
    # user a: 3 source items, 1 target item -> w_s = 3/4, w_t = 1/4 (the denser source dominates)
    # user b: 0 source, 4 target -> all target; user c: a cold user (2 source, 0 target) -> all source
    # user d: nothing anywhere -> no benchmark (0, 0)
    w_s, w_t = density_weights(np.array([3, 0, 2, 0]), np.array([1, 4, 0, 0]))
    np.testing.assert_allclose(w_s, [0.75, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(w_t, [0.25, 1.0, 0.0, 0.0])
    us = np.array([[4.0, 0.0], [1.0, 1.0], [2.0, 2.0], [5.0, 5.0]])
    ut = np.array([[0.0, 8.0], [3.0, -1.0], [9.0, 9.0], [7.0, 7.0]])
    # B = w_s U^s + w_t U^t: a -> (3, 2); b -> U^t; c -> U^s; d -> 0
    np.testing.assert_allclose(benchmark_factors(us, ut, w_s, w_t), [[3.0, 2.0], [3.0, -1.0], [2.0, 2.0], [0.0, 0.0]])


def test_the_fitted_benchmark_uses_the_users_own_counts(fitted):
    """w_t(u) = n_t(u) / (n_s(u) + n_t(u)) per mapping row, from the fold's binary matrices (not reversed)."""
    view, _, model = fitted
    d = domains(view, seed=model.seed)
    rows = model.mapping_rows_
    n_s = np.asarray(d.source[rows].getnnz(axis=1), dtype=float)
    n_t = np.asarray(d.fit_target()[rows].getnnz(axis=1), dtype=float)
    np.testing.assert_allclose(model.target_weight_, n_t / (n_s + n_t))
    assert model.benchmark_.shape == (len(rows), SMALL.dim)


def test_affine_alignment_recovers_a_map_and_shrinks_to_the_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    a, b = rng.normal(size=(4, 3)).astype(np.float32), np.array([1.0, -2.0, 0.5], dtype=np.float32)
    y = x @ a + b
    np.testing.assert_allclose(Affine.fit(x, y, 1e-9)(x), y, atol=1e-4)
    far = Affine.fit(x, y, 1e6)(x)  # a huge ridge: every input maps to the mean target factor, not to zero
    np.testing.assert_allclose(far, np.tile(y.mean(0), (len(x), 1)), atol=1e-3)


def test_cold_users_are_scored_by_the_mapped_source_factor(fitted):
    """The inference rule: score(u) = f(U^s_u) . V^t, and f maps dim -> dim."""
    view, _, model = fitted
    rows = view.test_users[:7]
    h = model.map_users(rows)
    assert h.shape == (len(rows), SMALL.dim)
    np.testing.assert_allclose(model.score(rows), h @ model._vt.numpy().T, rtol=1e-5, atol=1e-6)


def test_two_cold_users_with_different_histories_rank_differently(fitted, planted_small):
    view, _, model = fitted
    group = planted_small.group_of(view)
    rows = view.test_users
    a = rows[group[rows] == 0][0]
    b = rows[group[rows] == 1][0]
    top = np.argsort(-model.score(np.array([a, b])), axis=1, kind="stable")[:, :5]
    assert tuple(top[0]) != tuple(top[1])
    # and each gets its own group's head book near the top (the planted structure is transferred)
    heads = planted_small.head_cols(view, np.array([a, b]))
    assert all(h in t for h, t in zip(heads, top))


def test_valid_and_test_users_never_train_the_target_side_or_the_mapping(fitted):
    view, _, model = fitted
    cold = np.concatenate([view.valid_users, view.test_users])
    assert len(model.mapping_rows_) == model.fit_info["mapping_users"] > 0
    assert not np.isin(model.mapping_rows_, cold).any()
    assert not np.isin(model.target_rows_, cold).any()
    assert np.isin(model.mapping_rows_, view.train_users).all()
    hold = domains(view, seed=model.seed).holdout_rows  # the early-stopping users are not fitted on either
    assert not np.isin(model.mapping_rows_, hold).any() and not np.isin(model.target_rows_, hold).any()


def test_planted_target_rows_of_test_users_change_nothing(fitted):
    """Book positives written into test users' rows of target_train (a leak) are ignored by the fit."""
    view, _, model = fitted
    leaky = copy.deepcopy(view)
    t = leaky.target_train.tolil()
    for r in view.test_users:
        t[r, :5] = 1.0
    leaky.target_train = t.tocsr()
    other = _fit(leaky)
    np.testing.assert_array_equal(other.mapping_rows_, model.mapping_rows_)
    np.testing.assert_allclose(other.score(view.test_users), model.score(view.test_users), rtol=1e-6, atol=1e-6)


def test_epoch_zero_is_the_mean_benchmark(planted_fold):
    """With no mapping epoch the DNN outputs the mean benchmark factor for everybody (the zero-init rule)."""
    view, _ = planted_fold
    model = _fit(view, map_epochs=0)
    h = model.map_users(view.test_users)
    np.testing.assert_allclose(h, np.tile(model.benchmark_.mean(0), (len(h), 1)), rtol=1e-5, atol=1e-6)
    assert model.fit_info["chosen_epoch"] == 0


def test_aligned_benchmark_is_the_density_mix_of_mapped_source_and_target(planted_fold):
    """B = w_s U^s + w_t U^t (align: false) and B = w_s A(U^s) + w_t U^t (default), same MFs.

    U^t of the mapping rows is recovered from the literal benchmark, then the aligned one is
    rebuilt by hand from the ridge map fitted on (U^s, U^t): the density rule end to end.
    """
    view, _ = planted_fold
    literal = _fit(view, align=False, map_epochs=1)
    aligned = _fit(view, map_epochs=1)
    rows = literal.mapping_rows_
    assert np.array_equal(rows, aligned.mapping_rows_)
    w_t = literal.target_weight_
    assert np.all((w_t > 0) & (w_t < 1))  # every mapping user has both histories
    us = literal._us[rows]
    ut = (literal.benchmark_ - (1 - w_t)[:, None] * us) / w_t[:, None]
    expect = (1 - w_t)[:, None] * Affine.fit(us, ut, SMALL.align_ridge)(us) + w_t[:, None] * ut
    np.testing.assert_allclose(aligned.benchmark_, expect, rtol=1e-3, atol=1e-4)
    assert not np.allclose(aligned.benchmark_, literal.benchmark_, atol=1e-3)
