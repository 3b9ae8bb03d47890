"""CoNet (benchmark/models/cdr/conet.py): transfer through the cross units, cold users kept out of the book side.

Each test can fail: a model that ignores the source history gives every cold user the
same ranking; one that learned from a cold user's book rows changes when they are
planted; one that scored cold users by another rule than the card's (target tower on
(u, j) beside the source tower on the user's source context pair) misses the explicit
recomputation below; a sampler drawing negatives across domains fails the block check.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.models.cdr.common import domains
from benchmark.models.cdr.conet import CoNet
from zoo_checks import assert_own_head_books, assert_target_rows_are_training_only, with_cold_book_rows


def _fit(view, seed=0, **over):
    return CoNet(CoNet.Config(**over), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def contract_model(contract_fold):
    view, _, _ = contract_fold
    return _fit(view)


def _expected_scores(model, view, rows: np.ndarray) -> np.ndarray:
    """The card's cold-user rule, recomputed layer by layer from the fitted parameters.

    p_u (zero if no loss touched the user), ctx_u = mean source-item embedding of the
    user's ``hist_len`` highest-valued source items; a_s^0 = [p_u, ctx_u],
    a_t^0 = [p_u, q_j]; a_s^{l+1} = relu(W_s a_s + a_t H^l), the same for a_t
    with the roles swapped; score = out_t(a_t^L) + b_j.
    """
    net, tab, c = model.net, model.tables, model.config
    raw = sp.hstack([sp.csr_matrix(view.source[d], dtype=np.float32) for d in view.source_domains], format="csr")
    out = []
    with torch.no_grad():
        for r in rows:
            row = raw.getrow(int(r))
            items = [i for v, i in sorted(zip(-row.data, row.indices)) if v < 0][:c.hist_len]
            trained = np.isin(r, model.source_rows_) or np.isin(r, model.target_rows_)
            pu = tab["user"][int(r)] * float(trained)
            ctx = tab["src"][items].mean(0) if items else torch.zeros(c.dim)
            q = tab["tgt"]
            a_s = torch.cat([pu, ctx]).expand(len(q), -1)
            a_t = torch.cat([pu.expand(len(q), -1), q], dim=1)
            for ws, wt, h in zip(net.w_s, net.w_t, net.h):
                a_s, a_t = torch.relu(ws(a_s) + a_t @ h), torch.relu(wt(a_t) + a_s @ h)
            out.append((net.out_t(a_t).squeeze(1) + tab["tgt_bias"][:, 0]).numpy())
    return np.array(out)


def test_cold_users_of_different_groups_get_their_own_head_book(contract_fold, contract_model):
    """Two cold test users with different planted source tastes rank their own group's head book in their top 5."""
    assert_own_head_books(contract_model, contract_fold)


def test_book_side_is_fitted_on_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    dom, cold = assert_target_rows_are_training_only(m, view)
    assert m.fit_info["mapping_users"] == len(m.target_rows_)
    # cold users are trained through their source rows only (their input)
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


def test_cold_score_is_the_target_tower_beside_the_source_context_pair(contract_fold, contract_model):
    view, _, _ = contract_fold
    m, rows = contract_model, view.test_users[:12]
    expect = _expected_scores(m, view, rows)
    np.testing.assert_allclose(m.score(rows), expect, rtol=1e-4, atol=1e-5)
    h0 = m.net.h[-1].detach().clone()
    head = m.net.out_s.weight.detach().clone()
    try:
        with torch.no_grad():  # the source tower's own output head plays no part in a book score
            m.net.out_s.weight.add_(torch.randn_like(head))
        np.testing.assert_allclose(m.score(rows), expect, rtol=1e-4, atol=1e-5)
        with torch.no_grad():  # the cross units do
            m.net.h[-1].add_(torch.randn_like(h0))
        assert not np.allclose(m.score(rows), expect, atol=1e-3)
    finally:
        with torch.no_grad():
            m.net.h[-1].copy_(h0)
            m.net.out_s.weight.copy_(head)


def test_a_cold_user_without_source_reads_zero_inputs(planted_fold):
    """No source item: p_u = 0 and an empty context, the towers still run (no Popularity fall-back)."""
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
    assert u not in model.source_rows_ and u not in model.target_rows_
    s = model.score(np.array([u]))
    np.testing.assert_allclose(s, _expected_scores(model, view, np.array([u])), rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # zero inputs: the user's own (untrained) table row does not matter
        model.tables["user"][u] += 1.0
    np.testing.assert_allclose(model.score(np.array([u])), s, rtol=1e-6)
    assert np.isfinite(model.score(view.test_users)).all()


def test_source_negatives_come_from_the_positives_own_domain(contract_fold, contract_model):
    view, _, _ = contract_fold
    dom = domains(view, seed=0)
    source, rows, bounds, _, _ = contract_model._inputs(view, dom)
    u, p, n = CoNet._source_triples(source, rows, bounds, np.random.default_rng(0))
    assert len(u) == source[rows].nnz  # every source positive once, every domain
    block = np.searchsorted(bounds, p, side="right")
    assert np.array_equal(block, np.searchsorted(bounds, n, side="right"))
    assert len(set(block.tolist())) == len(view.source_domains) > 1
    assert not np.asarray(source[u, n]).ravel().any()


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="loss"):
        _fit(view, loss="mse")
    with pytest.raises(ValueError, match="alpha"):
        _fit(view, alpha=1.0)
    with pytest.raises(ValueError, match="depth"):
        _fit(view, depth=0)
    with pytest.raises(ValueError, match="lr"):
        _fit(view, lr=0.0)
