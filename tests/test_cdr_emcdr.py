"""Tests of EMCDR (benchmark/models/cdr/emcdr.py) on the planted fixture of tests/conftest.py.

What could break: a cold user's factor not reflecting their own source history, valid or
test users leaking into the book MF or the mapping, the mapping's shape (one factor
block per source domain, the paper's 2K tanh hidden layer), the inference rule
(mapped factor . book item factors and nothing else), and the early-stopping restore.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.models.base import make_config
from benchmark.models.cdr.common import domains, holdout_ndcg
from benchmark.models.cdr.emcdr import EMCDR
from conftest import view_of


def make(seed: int = 0, **kw) -> EMCDR:
    return EMCDR(make_config(EMCDR.Config, kw), seed=seed)


@pytest.fixture(scope="module")
def fitted(planted_small):
    view, truth = planted_small.fold()
    return make().fit(view), view, planted_small


def test_cold_users_of_different_groups_get_their_own_head_book(fitted):
    model, view, p = fitted
    cold = np.concatenate([view.valid_users, view.test_users])
    groups = p.group_of(view)[cold]
    a, b = cold[0], cold[np.flatnonzero(groups != groups[0])[0]]
    s = model.score(np.array([a, b]))
    top = np.argsort(-s, axis=1, kind="stable")[:, :5]
    assert tuple(top[0]) != tuple(top[1]), "two cold users with different source tastes got the same top 5"
    # the planted answer: the user's group head book is in their top 5 (for most cold users)
    heads = p.head_cols(view, cold)
    top_all = np.argsort(-model.score(cold), axis=1, kind="stable")[:, :5]
    assert np.mean([h in t for h, t in zip(heads, top_all)]) >= 0.75


def test_valid_and_test_users_never_train_the_book_side(fitted):
    model, view, _ = fitted
    cold = np.concatenate([view.valid_users, view.test_users])
    for name in ("mapping_rows_", "target_rows_", "holdout_rows_"):
        rows = getattr(model, name)
        assert len(rows) and not np.isin(rows, cold).any(), f"{name} holds a valid/test user"
        assert np.isin(rows, view.train_users).all()
    for name in ("mapping_rows_", "target_rows_"):  # hold-out users are cold to both, their book rows unseen
        assert not np.isin(getattr(model, name), model.holdout_rows_).any(), name
    assert model.fit_info["mapping_users"] == len(model.mapping_rows_)
    # every mapping user has a source and a book history (the paper's "sufficient data")
    d = domains(view, seed=0)
    assert d.has_source[model.mapping_rows_].all()
    assert (d.target[model.mapping_rows_].getnnz(axis=1) > 0).all()
    # the source MFs do read cold users' source rows: that is their input (documented)
    assert np.isin(cold, np.concatenate(list(model.source_rows_.values()))).all()


def test_a_test_users_book_rows_change_nothing(planted_small):
    tables = planted_small.tables()
    view, _ = view_of(tables)
    user = view.users[view.test_users[0]]
    read = set(tables["interactions"].query("user == @user")["item"])
    extra = [b for b in view.catalog if b not in read][:3]
    inter = tables["interactions"]
    new = pd.DataFrame({"user": user, "item": extra, "domain": "book", "value": np.float32(9.0),
                        "timestamp": pd.array([pd.NA] * len(extra), dtype="Int64"), "positive": True})
    edited = dict(tables, interactions=pd.concat([inter, new[inter.columns]], ignore_index=True))
    view2, truth2 = view_of(edited)
    assert truth2.test[0].nnz > 0 and list(view2.catalog) == list(view.catalog)
    rows = np.concatenate([view.valid_users, view.test_users])
    np.testing.assert_array_equal(make().fit(view).score(rows), make().fit(view2).score(rows))


@pytest.mark.parametrize("mapping", ["mlp", "linear"])
def test_mapping_shape_and_inference_rule(planted_small, mapping):
    view, _ = planted_small.fold()
    model = make(mapping=mapping, dim=8).fit(view)
    n_in = 8 * len(view.source_domains)  # one factor block per source domain (music, podcast)
    assert model.source_factors_.shape == (view.n_users, n_in)
    linears = [m for m in model.mapping_.modules() if isinstance(m, nn.Linear)]
    if mapping == "linear":
        assert [(m.in_features, m.out_features) for m in linears] == [(n_in, 8)]
    else:
        assert [(m.in_features, m.out_features) for m in linears] == [(n_in, 16), (16, 8)]
        assert any(isinstance(m, nn.Tanh) for m in model.mapping_.modules())
    rows = np.concatenate([view.test_users, view.valid_users])
    x = model.source_factors_[rows].astype(np.float64)
    for i, m in enumerate(linears):  # the paper's mapping by hand, then . book item factors
        x = x @ m.weight.detach().numpy().T + m.bias.detach().numpy()
        if i < len(linears) - 1:
            x = np.tanh(x)
    expected = x @ model.target_items_.numpy().T.astype(np.float64) + model.target_bias_.numpy()
    np.testing.assert_allclose(model.score(rows), expected, rtol=1e-4, atol=1e-5)


def test_a_domain_block_is_zero_for_a_user_without_it_and_no_source_users_are_counted(planted_small):
    view, _ = planted_small.fold()
    model = make(sources="podcast", dim=8).fit(view)
    d = domains(view, sources="podcast", seed=0)
    cold = np.concatenate([view.valid_users, view.test_users])
    none = cold[~d.has_source[cold]]
    assert len(none) > 1 and model.fit_info["no_source_users"] == len(none)
    assert not model.source_factors_[none].any()
    s = model.score(none)  # the mapping of the zero vector: one shared, finite ranking
    assert np.isfinite(s).all() and np.allclose(s, s[0])
    with torch.no_grad():
        f0 = model.mapping_(torch.zeros(1, 8)) @ model.target_items_.T + model.target_bias_
    np.testing.assert_allclose(s[0], f0.numpy()[0], rtol=1e-5, atol=1e-6)


def test_early_stopping_keeps_the_best_checked_mapping(fitted):
    model, view, _ = fitted
    info = model.fit_info
    curve = dict(info["holdout_curve"])
    assert info["chosen_epoch"] == max(curve, key=curve.get)
    d = domains(view, seed=0)
    now = holdout_ndcg(model.score(model.holdout_rows_), d.target[model.holdout_rows_], model.config.eval_k)
    assert now == pytest.approx(info["best_holdout_ndcg"], abs=1e-6)
    assert info["fit_time_s"] > 0 and info["no_source_users"] == 0


def test_bad_config_is_an_error(planted_small):
    view, _ = planted_small.fold()
    with pytest.raises(ValueError, match="mapping"):
        make(mapping="quadratic").fit(view)
    with pytest.raises(ValueError, match="sources"):
        make(sources="radio").fit(view)
