"""NATR (benchmark/models/cdr/natr.py): attention over transferred source-item embeddings, cold users kept out.

Each test can fail: a model that ignores the source history gives every cold user the
same ranking; one that learned from a cold user's book rows changes when they are
planted; one whose scores are not the card's rule (item-level attention per domain,
domain-level attention, predictor MLP, u . q + b) differs from the recomputation.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.models.cdr.common import domains
from benchmark.models.cdr.natr import NATR
from zoo_checks import with_cold_book_rows


def _fit(view, seed=0, **over):
    return NATR(NATR.Config(**over), seed=seed).fit(copy.deepcopy(view))


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
    heads = planted.head_cols(view, np.array([a, b]))
    assert heads[0] in top[0] and heads[1] in top[1]
    assert heads[0] not in top[1] and heads[1] not in top[0]


def test_target_side_is_fitted_on_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m, dom = contract_model, domains(view, seed=0)
    cold = np.concatenate([view.valid_users, view.test_users])
    assert len(m.target_rows_) > 0
    assert not np.isin(m.target_rows_, cold).any()
    assert not np.isin(m.target_rows_, dom.holdout_rows).any()  # early-stopping users stay cold too
    np.testing.assert_array_equal(m.target_rows_, dom.overlap_rows)
    assert m.fit_info["mapping_users"] == len(m.target_rows_)
    # the transferred source-item embeddings are learned on every user's source rows (their input)
    assert np.isin(view.test_users, m.source_rows_).all()
    info = m.fit_info
    assert info["chosen_epoch"] >= 0 and info["holdout_curve"] and info["fit_time_s"] > 0
    assert info["holdout_users"] == len(dom.holdout_rows) > 0


def test_planted_book_rows_of_cold_users_change_nothing(planted_fold):
    """Target rows slipped into the view for valid/test users (a protocol breach) are ignored by the fit."""
    view, _ = planted_fold
    base = _fit(view)
    leaked = with_cold_book_rows(view)
    other = _fit(leaked)
    np.testing.assert_array_equal(other.target_rows_, base.target_rows_)
    rows = np.arange(view.n_users)
    np.testing.assert_allclose(other.score(rows), base.score(rows), rtol=1e-6, atol=1e-7)


def _mlp(module: nn.Module, x: np.ndarray, act) -> np.ndarray:
    """A recbole MLPLayers by hand: its Linear layers in order, ``act`` between them, none after the last."""
    lins = [m for m in module.modules() if isinstance(m, nn.Linear)]
    for k, lin in enumerate(lins):
        x = x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
        if k < len(lins) - 1:
            x = act(x)
    return x


def _softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = z - np.where(mask.any(-1, keepdims=True), z.max(-1, keepdims=True), 0)
    e = np.where(mask, np.exp(z), 0.0)
    return e / np.maximum(e.sum(-1, keepdims=True), 1e-30)


def test_cold_score_is_attention_over_source_items_then_domains(contract_fold, contract_model):
    """Recompute the card's rule from the parameters: item level per domain, domain level, MLP, u . q + b."""
    view, _, _ = contract_fold
    m = contract_model
    net, relu = m.net, lambda x: np.maximum(x, 0)
    rows = view.test_users[:25]
    reps, has = [], []
    for d, name in enumerate(m.fit_info["source_domains"]):
        # the history is the user's own source items in this domain, highest values first, capped
        raw = view.source[name][rows].toarray()
        emb = m.src_emb_[d].numpy()
        hist, mask = m.hist_[d][rows].numpy(), m.mask_[d][rows].numpy()
        for i in range(len(rows)):
            assert set(hist[i][mask[i]]) <= set(np.flatnonzero(raw[i] > 0))
            assert mask[i].sum() == min((raw[i] > 0).sum(), m.config.hist_len)
        e = emb[hist]  # B x L x dim (padding row = 0)
        w = _softmax(_mlp(net.item_attn[d], e, relu)[..., 0], mask)
        reps.append((w[..., None] * e).sum(1) @ net.transfer[d].weight.detach().numpy().T)
        has.append(mask.any(1))
    reps, has = np.stack(reps, 1), np.stack(has, 1)
    wd = _softmax(_mlp(net.domain_attn, reps, np.tanh)[..., 0], has)
    u = _mlp(net.predict, (wd[..., None] * reps).sum(1), relu)
    expect = u @ net.items.weight.detach().numpy().T + net.bias.detach().numpy()
    np.testing.assert_allclose(m.score(rows), expect, rtol=1e-4, atol=1e-5)
    # the domain weights sum to one over the domains a user has (m&p users: both, music only: one)
    with torch.no_grad():
        _, w = m._users(rows)
    np.testing.assert_allclose(w.numpy(), wd, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w.numpy().sum(1), has.any(1).astype(float), atol=1e-6)
    assert (w.numpy()[~has] == 0).all()


def test_users_without_source_share_one_learned_ranking(planted_fold):
    view, _ = planted_fold
    view = copy.deepcopy(view)
    cold = view.test_users[:2]
    for d in view.source_domains:
        lil = view.source[d].tolil()
        lil[cold, :] = 0
        view.source[d] = lil.tocsr()
        view.source[d].eliminate_zeros()
    m = _fit(view)
    assert m.fit_info["no_source_users"] == 2
    s = m.score(cold)
    np.testing.assert_allclose(s[0], s[1], rtol=1e-6)  # the same (empty) input: u = MLP(0) for both
    with torch.no_grad():
        u0 = m.net.predict(torch.zeros(1, m.config.dim))
        expect = (u0 @ m.net.items.weight.T + m.net.bias).numpy()[0]
    np.testing.assert_allclose(s[0], expect, rtol=1e-5, atol=1e-6)
    assert np.isfinite(m.score(view.test_users)).all()


def test_transferred_embeddings_stay_frozen_and_one_attention_per_domain(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    assert [e.shape[0] - 1 for e in m.src_emb_] == [len(view.source_items[d]) for d in view.source_domains]
    assert all(not e.requires_grad and not e[-1].any() for e in m.src_emb_)  # pad row is zero
    assert len(m.net.item_attn) == len(m.net.transfer) == len(view.source_domains)
    assert not any(p is e for p in m.net.parameters() for e in m.src_emb_)


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="dim"):
        _fit(view, dim=0)
    with pytest.raises(ValueError, match="lr"):
        _fit(view, lr=0.0)
    with pytest.raises(ValueError, match="holdout_share"):
        _fit(view, holdout_share=1.0)
    with pytest.raises(ValueError, match="sources"):
        _fit(view, sources="video")
