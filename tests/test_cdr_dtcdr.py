"""DTCDR (benchmark/models/cdr/dtcdr.py): shared user representation, cold users read the learned missing book slot.

Each test can fail: a model that ignores the source history gives every cold user the
same ranking; one that learned from a cold user's book rows changes when they are
planted; one that scores a cold user through their (untrained) book-table row changes
when that row does; a combination operator that is not the card's gives other numbers.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmark.models.cdr.dtcdr import DTCDR, DTCDRNet
from zoo_checks import assert_own_head_books, assert_target_rows_are_training_only, with_cold_book_rows


def _fit(view, seed=0, **over):
    return DTCDR(DTCDR.Config(**over), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def contract_model(contract_fold):
    view, _, _ = contract_fold
    return _fit(view)


def test_cold_users_of_different_groups_get_their_own_head_book(contract_fold, contract_model):
    """Two cold test users with different planted source tastes rank their own group's head book in their top 5."""
    assert_own_head_books(contract_model, contract_fold)


def test_book_side_is_fitted_on_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    assert_target_rows_are_training_only(m, view)
    assert m.fit_info["mapping_users"] == len(m.target_rows_)
    # the book slot is "present" exactly for the fitted rows; cold and hold-out users read m_t
    present = m.present_[:, -1].numpy()
    np.testing.assert_array_equal(np.flatnonzero(present), np.sort(m.target_rows_))
    # cold users are trained through their source rows only (their input)
    assert np.isin(view.test_users, m.source_rows_).all()
    info = m.fit_info
    assert info["chosen_epoch"] >= 0 and info["holdout_curve"] and info["fit_time_s"] > 0
    # the adaptation ran: each epoch about `absence` of the fitted users trained with m_t
    assert info["absent_share"] and all(abs(s - m.config.absence) < 0.1 for s in info["absent_share"])


def test_planted_book_rows_of_cold_users_change_nothing(planted_fold):
    """Target rows slipped into the view for valid/test users (a protocol breach) are ignored by the fit."""
    view, _ = planted_fold
    base = _fit(view)
    leaked = with_cold_book_rows(view)
    other = _fit(leaked)
    np.testing.assert_array_equal(other.target_rows_, base.target_rows_)
    rows = np.arange(view.n_users)
    np.testing.assert_allclose(other.score(rows), base.score(rows), rtol=1e-6, atol=1e-7)


def test_cold_score_is_the_book_tower_on_source_parts_and_the_missing_book_vector(contract_fold, contract_model):
    """Card rule: z = [U_music[u] | U_podcast[u] or m_podcast | m_book]; score = g_book(z) . V_book + b_book."""
    view, _, _ = contract_fold
    m, net = contract_model, contract_model.net
    rows = view.test_users[:20]
    assert view.source_domains == ["music", "podcast"]
    has = {d: np.asarray(view.source[d][rows].getnnz(axis=1)) > 0 for d in view.source_domains}
    assert has["music"].all() and (~has["podcast"]).any() and has["podcast"].any()
    r = torch.from_numpy(rows.astype(np.int64))
    with torch.no_grad():
        parts = []
        for d, name in enumerate(view.source_domains):
            mask = torch.from_numpy(has[name])[:, None]
            parts.append(torch.where(mask, net.users[d].weight[r], net.missing[d].expand(len(rows), -1)))
        parts.append(net.missing[-1].expand(len(rows), -1))
        expect = net.towers[-1](torch.cat(parts, dim=1)) @ net.items[-1].weight.T + net.bias[-1].weight.squeeze(1)
    np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
    saved_u, saved_m = net.users[-1].weight.detach().clone(), net.missing.detach().clone()
    try:
        with torch.no_grad():  # a cold user's own book-table row is never read ...
            net.users[-1].weight[r] += torch.randn(len(rows), net.users[-1].embedding_dim)
        np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
        with torch.no_grad():  # ... the learned missing book vector is
            net.missing[-1] += 1.0
        assert not np.allclose(m.score(rows), expect.numpy(), atol=1e-4)
    finally:
        with torch.no_grad():
            net.users[-1].weight.copy_(saved_u)
            net.missing.copy_(saved_m)


@pytest.mark.parametrize("combine", ["concat", "max", "mean"])
def test_the_combination_operators(combine):
    """concat / element-wise max / mean of the domain parts, absent parts replaced by that domain's m_d."""
    net = DTCDRNet(4, [3, 5], dim=2, combine=combine, predictor="dot", hidden=4, dropout=0.0,
                   gen=torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.users[0].weight.copy_(torch.arange(8, dtype=torch.float32).view(4, 2))
        net.users[1].weight.copy_(-torch.arange(8, dtype=torch.float32).view(4, 2))
        net.missing.copy_(torch.tensor([[10.0, -10.0], [0.5, 0.5]]))
    present = torch.tensor([[True, True], [True, False], [False, True]])
    z = net.represent(torch.tensor([1, 2, 3]), present).detach()
    a = torch.tensor([[2.0, 3.0], [4.0, 5.0], [10.0, -10.0]])  # domain 0 part: row, row, m_0
    b = torch.tensor([[-2.0, -3.0], [0.5, 0.5], [-6.0, -7.0]])  # domain 1 part: row, m_1, row
    expect = {"concat": torch.cat([a, b], 1), "max": torch.maximum(a, b), "mean": (a + b) / 2}[combine]
    torch.testing.assert_close(z, expect)
    assert net.items[1].embedding_dim == z.shape[1]  # "dot": items live in z's space


def test_a_user_without_any_history_gets_the_learned_constant_ranking(planted_fold):
    view, _ = planted_fold
    view = copy.deepcopy(view)
    users = [int(u) for u in view.test_users[:2]]
    for d in view.source_domains:
        m = view.source[d].tolil()
        m[users, :] = 0
        view.source[d] = m.tocsr()
        view.source[d].eliminate_zeros()
    model = _fit(view)
    assert model.fit_info["no_source_users"] == 2
    assert not model.present_[users].any()
    s = model.score(np.array(users))
    np.testing.assert_allclose(s[0], s[1], rtol=1e-6)  # same (empty) input, same ranking
    assert np.isfinite(s).all() and s[0].std() > 0  # learned, not ties


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="combine"):
        _fit(view, combine="sum")
    with pytest.raises(ValueError, match="predictor"):
        _fit(view, predictor="neumf")
    with pytest.raises(ValueError):
        _fit(view, absence=0.0)
    with pytest.raises(ValueError):
        _fit(view, alpha=1.0)
    with pytest.raises(ValueError):
        _fit(view, dim=0)
