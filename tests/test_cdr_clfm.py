"""CLFM (benchmark/models/cdr/clfm.py): transfer through the shared patterns, cold users kept out of the book side.

Each test can fail: a model that ignores the source history gives every cold user the
bias ranking; one that learned from a cold user's book rows changes when they are
planted; one that scores with the book-specific block changes when S_book' does.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from benchmark.models.cdr.clfm import CLFM
from benchmark.models.cdr.common import domains
from zoo_checks import assert_own_head_books, assert_target_rows_are_training_only, with_cold_book_rows


def _fit(view, seed=0, **over):
    return CLFM(CLFM.Config(**over), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def contract_model(contract_fold):
    view, _, _ = contract_fold
    return _fit(view)


def test_cold_users_of_different_groups_get_their_own_head_book(contract_fold, contract_model):
    """Two cold test users with different planted source tastes rank their own group's head book first."""
    assert_own_head_books(contract_model, contract_fold)


def test_book_side_is_fitted_on_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    assert_target_rows_are_training_only(m, view)
    assert m.fit_info["mapping_users"] == len(m.target_rows_)
    # cold users are trained through their source rows only (their input)
    assert np.isin(view.test_users, m.source_rows_).all()
    info = m.fit_info
    assert info["chosen_epoch"] >= 0 and info["holdout_curve"] and info["fit_time_s"] > 0


def test_planted_book_rows_of_cold_users_change_nothing(planted_fold):
    """Target rows slipped into the view for valid/test users (a protocol breach) are ignored by the fit."""
    view, _ = planted_fold
    base = _fit(view)
    leaked = with_cold_book_rows(view)
    other = _fit(leaked)
    np.testing.assert_array_equal(other.target_rows_, base.target_rows_)
    rows = np.arange(view.n_users)
    np.testing.assert_allclose(other.score(rows), base.score(rows), rtol=1e-6, atol=1e-7)


def test_one_item_table_per_domain_and_own_domain_columns(contract_fold, contract_model):
    view, _, _ = contract_fold
    net, c = contract_model.net, contract_model.config
    sizes = [len(view.source_items[d]) for d in view.source_domains] + [view.n_catalog]
    assert [e.num_embeddings for e in net.items] == sizes
    assert all(e.embedding_dim == c.shared_dim + c.specific_dim for e in net.items)
    assert tuple(net.s0.shape) == (c.user_dim, c.shared_dim)
    assert [tuple(p.shape) for p in net.spec] == [(c.user_dim, c.specific_dim)] * len(sizes)
    mats, rows = contract_model._matrices(domains(view, seed=0))
    assert [m.shape[1] for m in mats] == sizes
    for d, m in zip(view.source_domains, mats):  # each source block is exactly that domain's matrix
        assert ((m > 0) != (view.source[d] > 0)).nnz == 0


def test_cold_score_is_the_shared_pattern_term_plus_bias(contract_fold, contract_model):
    """Default rule: u S_0 . v_book[:T] + b_book; the book-specific block S_book' does not enter."""
    view, _, _ = contract_fold
    m, rows = contract_model, view.test_users[:20]
    net, T = m.net, m.config.shared_dim
    with torch.no_grad():
        u = torch.from_numpy(m._u[rows])
        expect = (u @ net.s0) @ net.items[-1].weight[:, :T].T + net.bias[-1].weight.squeeze(1)
    np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
    saved = net.spec[-1].detach().clone()
    try:
        with torch.no_grad():
            net.spec[-1].add_(torch.randn_like(saved))
        np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
        full = copy.copy(m)
        full.config = dataclasses.replace(m.config, cold_score="full")
        assert not np.allclose(full.score(rows), expect.numpy(), atol=1e-4)  # the full rule does read it
    finally:
        with torch.no_grad():
            net.spec[-1].copy_(saved)


def test_a_cold_user_without_source_is_ranked_by_the_book_bias(planted_fold):
    view, _ = planted_fold
    view = copy.deepcopy(view)
    u = int(view.test_users[0])
    for d in view.source_domains:
        m = view.source[d].tolil()
        m[u, :] = 0
        view.source[d] = m.tocsr()
        view.source[d].eliminate_zeros()
    model = _fit(view)
    assert model.fit_info["no_source_users"] == 1
    assert not model._u[u].any()
    np.testing.assert_allclose(model.score(np.array([u]))[0], model.net.bias[-1].weight.detach().numpy().ravel(), rtol=1e-6)
    assert np.isfinite(model.score(view.test_users)).all()


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="cold_score"):
        _fit(view, cold_score="specific")
    with pytest.raises(ValueError):
        _fit(view, alpha=1.0)
