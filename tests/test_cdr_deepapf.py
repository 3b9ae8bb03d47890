"""DeepAPF (benchmark/models/cdr/deepapf.py): transfer through the shared interest, cold users kept out of the book side.

Each test can fail: a model that ignores the source history gives every cold user the
bias ranking; one that learned from a cold user's book rows changes when they are
planted; one that reads the (untrained) book-specific vector of a cold user changes
when that vector does; one that fuses instead of masking differs from p_u w . q + b.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmark.models.cdr.common import domains
from benchmark.models.cdr.deepapf import DeepAPF, initial_tables
from zoo_checks import assert_target_rows_are_training_only, with_cold_book_rows


def _fit(view, seed=0, **over):
    return DeepAPF(DeepAPF.Config(**over), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def contract_model(contract_fold):
    view, _, _ = contract_fold
    return _fit(view)


def test_cold_users_of_different_groups_get_their_own_head_book(contract_fold, contract_model):
    """Two cold test users with different planted source tastes rank their own group's head book in their top 5."""
    view, _, planted = contract_fold
    rows = view.test_users[view.cohort[view.test_users] == "m&p"]
    groups = planted.group_of(view)[rows]
    a, b = rows[groups == 1][0], rows[groups == 2][0]
    s = contract_model.score(np.array([a, b]))
    top = np.argsort(-s, axis=1, kind="stable")[:, :5]
    assert tuple(top[0]) != tuple(top[1])
    heads = planted.head_cols(view, np.array([a, b]))
    assert heads[0] in top[0] and heads[1] in top[1]
    assert heads[0] not in top[1] and heads[1] not in top[0]


def test_book_side_is_fitted_on_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    dom, cold = assert_target_rows_are_training_only(m, view)
    assert m.fit_info["mapping_users"] == len(m.target_rows_)
    # cold users are trained through their source rows only (their input) and are scored by the cold rule
    assert np.isin(view.test_users, m.source_rows_).all()
    assert not m._warm[cold].any() and not m._warm[dom.holdout_rows].any()
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


def test_cold_score_is_the_shared_interest_with_the_book_specific_part_masked(contract_fold, contract_model):
    """Cold rule: w . (p_u * q_i) + b_i, i.e. the attention with the book-specific logit masked; s^book not read."""
    view, _, _ = contract_fold
    m, rows = contract_model, view.test_users[:20]
    t, tgt = m.tables, m._tgt
    r = torch.from_numpy(rows)
    with torch.no_grad():
        p, q, b = t["shared"][r], t[f"item{tgt}"], t[f"bias{tgt}"].squeeze(1)
        expect = (p * m.net.w) @ q.T + b
        # the same numbers through the architecture's own masking (weight 0 on the absent part)
        z, share = m.net.fuse(p[:, None, :], t[f"spec{tgt}"][r][:, None, :], q[None],
                              torch.zeros(len(rows), q.shape[0], dtype=torch.bool))
        masked = m.net.pair(z, q[None]) + b
    assert torch.equal(share, torch.ones_like(share))
    np.testing.assert_allclose(masked.numpy(), expect.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
    assert p.abs().sum() > 0  # the shared interest of a cold user was learned from their source rows
    saved = t[f"spec{tgt}"].clone()
    try:
        t[f"spec{tgt}"][r] += torch.randn(len(rows), saved.shape[1])
        np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
        warm = m.target_rows_[:5]  # training users with book rows: the paper's fusion does read s^book
        before = m.score(warm)
        t[f"spec{tgt}"][torch.from_numpy(warm)] += 1.0
        assert not np.allclose(m.score(warm), before, atol=1e-4)
    finally:
        t[f"spec{tgt}"].copy_(saved)


def test_training_users_get_the_papers_fused_rule(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    rows = m.target_rows_[:4]
    t, tgt, q = m.tables, m._tgt, m.tables[f"item{m._tgt}"]
    with torch.no_grad():
        expect = np.zeros((len(rows), q.shape[0]))
        for i, u in enumerate(rows):  # pair by pair: softmax over the two item-aware logits
            p, s = t["shared"][u], t[f"spec{tgt}"][u]
            a = torch.softmax(torch.cat([m.net.attn(p * q), m.net.attn(s * q)], dim=1), dim=1)
            expect[i] = (((a[:, :1] * p + a[:, 1:] * s) * q * m.net.w).sum(1) + t[f"bias{tgt}"][:, 0]).numpy()
    np.testing.assert_allclose(m.score(rows), expect, rtol=1e-5, atol=1e-5)


def test_full_mask_rate_never_moves_the_book_specific_table(planted_fold):
    """cold_mask_rate 1: every book triple is scored as a cold user's, so s^book keeps its initial draw."""
    view, _ = planted_fold
    m = _fit(view, cold_mask_rate=1.0)
    mats, _ = m._matrices(domains(view, seed=0))
    start = initial_tables(mats, m.config.dim, m.config.init_std, True, 0)
    tgt = m._tgt
    assert torch.equal(m.tables[f"spec{tgt}"], start[f"spec{tgt}"])
    assert not torch.equal(m.tables["spec0"], start["spec0"])  # the source-specific part does learn
    assert all(s is None for s in m.fit_info["book_shared_weight"])
    default = _fit(view)
    assert not torch.equal(default.tables[f"spec{tgt}"], start[f"spec{tgt}"])


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
    assert not model._trained[u]
    bias = model.tables[f"bias{model._tgt}"].numpy().ravel()
    np.testing.assert_allclose(model.score(np.array([u]))[0], bias, rtol=1e-6)
    assert np.isfinite(model.score(view.test_users)).all()


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    for bad in ({"alpha": 1.0}, {"alpha": -0.1}, {"cold_mask_rate": 1.5}, {"dim": 0}, {"lr": 0.0},
                {"init_std": 0.0}, {"max_epochs": 0}):
        with pytest.raises(ValueError):
            _fit(view, **bad)
    with pytest.raises(RuntimeError):
        DeepAPF().score(np.array([0]))
