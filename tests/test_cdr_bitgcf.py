"""BiTGCF (benchmark/models/cdr/bitgcf.py): transfer through the user feature-transfer layer, cold users kept off the book graph.

Each test can fail: a model that ignores the source history gives every cold user the
bias ranking; one whose book graph holds a cold user's rows changes when they are
planted; one that scores a cold user from anything but their transferred source
representation disagrees with the recomputation from the parameters.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.models.cdr.bitgcf import BiTGCF
from benchmark.models.cdr.common import domains
from zoo_checks import assert_own_head_books, assert_target_rows_are_training_only, with_cold_book_rows


def _fit(view, seed=0, **over):
    return BiTGCF(BiTGCF.Config(**over), seed=seed).fit(copy.deepcopy(view))


@pytest.fixture(scope="module")
def contract_model(contract_fold):
    view, _, _ = contract_fold
    return _fit(view)


def test_cold_users_of_different_groups_get_their_own_head_book(contract_fold, contract_model):
    """Two cold test users with different planted source tastes rank their own group's head book in their top 5."""
    assert_own_head_books(contract_model, contract_fold)


def test_book_graph_holds_training_users_only(contract_fold, contract_model):
    view, _, _ = contract_fold
    m = contract_model
    dom, cold = assert_target_rows_are_training_only(m, view)
    # the book graph itself: no edge of a cold or hold-out user (their target degree is 0)
    degree = np.diff(m.net.adj_t.crow_indices().numpy())
    assert degree[m.target_rows_].min() > 0
    assert not degree[cold].any() and not degree[dom.holdout_rows].any()
    assert m.fit_info["target_users"] == len(m.target_rows_)
    # cold users are in the source graph through their own source rows (their input)
    assert np.isin(view.test_users, m.source_rows_).all()
    info = m.fit_info
    assert info["chosen_epoch"] >= 0 and info["holdout_curve"] and info["fit_time_s"] > 0


def test_planted_book_rows_of_cold_users_change_nothing(planted_fold):
    """Target rows slipped into the view for valid/test users (a protocol breach) are ignored by the fit."""
    view, _ = planted_fold
    base = _fit(view, max_epochs=3, warmup_epochs=0)
    leaked = with_cold_book_rows(view)
    other = _fit(leaked, max_epochs=3, warmup_epochs=0)
    np.testing.assert_array_equal(other.target_rows_, base.target_rows_)
    rows = np.arange(view.n_users)
    np.testing.assert_allclose(other.score(rows), base.score(rows), rtol=1e-6, atol=1e-7)


def test_each_source_block_is_its_own_domain(contract_fold, contract_model):
    """Source triples are drawn per source domain (own-domain negatives), at that domain's columns of the graph."""
    view, _, _ = contract_fold
    dom = domains(view, seed=0)
    blocks = contract_model._blocks(dom)
    assert [off for _, off in blocks] == [dom.source_offsets[d] for d in view.source_domains]
    for d, (m, _) in zip(view.source_domains, blocks):
        assert ((m > 0) != (view.source[d] > 0)).nnz == 0
    net = contract_model.net
    assert tuple(net.item_s.shape) == (sum(len(view.source_items[d]) for d in view.source_domains), contract_model.config.dim)
    assert tuple(net.item_t.shape) == (view.n_catalog, contract_model.config.dim)


def _norm(r: sp.csr_matrix) -> sp.csr_matrix:
    du, di = np.asarray(r.sum(1)).ravel(), np.asarray(r.sum(0)).ravel()
    fu = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1)), 0)
    fi = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1)), 0)
    return sp.diags(fu) @ r @ sp.diags(fi)


def _expected_scores(model, view, rows, transfer="degree"):
    """The card's rule recomputed in numpy from the fitted tables and the fold (not from the model's graph)."""
    c, net = model.config, model.net
    dom = domains(view, seed=model.seed)
    src = sp.hstack([(view.source[d] > 0).astype(np.float64) for d in view.source_domains]).tocsr()
    tgt = dom.fit_target().astype(np.float64)
    rs, rt = _norm(src), _norm(tgt)
    ns, nt = np.asarray(src.getnnz(1), float), np.asarray(tgt.getnnz(1), float)
    ws = np.divide(ns, ns + nt, out=np.zeros_like(ns), where=ns + nt > 0)[:, None]
    wt = 1 - ws
    wt[ns + nt == 0] = 0

    def mix(us, ut):
        common = ws * us + wt * ut
        fs = c.lambda_source * us + (1 - c.lambda_source) * ut
        ft = c.lambda_target * ut + (1 - c.lambda_target) * us
        return {"degree": (common, common), "fixed": (fs, ft), "both": ((fs + common) / 2, (ft + common) / 2)}[transfer]

    p = {k: getattr(net, k).detach().numpy().astype(np.float64) for k in ("user_s", "item_s", "user_t", "item_t", "bias_t")}
    us, ut = mix(p["user_s"], p["user_t"])
    vs, vt = p["item_s"], p["item_t"]
    acc_u, acc_v = ut.copy(), vt.copy()
    for _ in range(c.n_layers):
        us, vs, ut, vt = rs @ vs, rs.T @ us, rt @ vt, rt.T @ ut
        us, ut = mix(us, ut)
        acc_u, acc_v = acc_u + ut, acc_v + vt
    k = c.n_layers + 1
    return (acc_u[rows] / k) @ (acc_v / k).T + p["bias_t"], (ws, wt)


def test_cold_score_is_the_transferred_source_representation(contract_fold, contract_model):
    """Default rule (degree lambda): a cold user's book representation is entirely their source side, at every layer."""
    view, _, _ = contract_fold
    m, rows = contract_model, view.test_users[:30]
    expect, (ws, wt) = _expected_scores(m, view, rows)
    assert (wt[rows] == 0).all() and (ws[rows] == 1).all()  # zero book degree: all weight on the source part
    np.testing.assert_allclose(m.score(rows), expect, rtol=1e-4, atol=1e-4)
    saved = m.net.user_t.detach().clone()
    try:
        # The cold users' own book-side embeddings play no part: scramble them, scores stay.
        with torch.no_grad():
            m.net.user_t[torch.from_numpy(rows)] += torch.randn(len(rows), saved.shape[1])
        u, v, b = m._target_tables()
        np.testing.assert_allclose(m._scores(u[rows], v, b), expect, rtol=1e-4, atol=1e-4)
        # ... while the fixed-lambda rule does read them (the check above can fail)
        m.net.transfer_mode = "fixed"
        u, v, b = m._target_tables()
        fixed, _ = _expected_scores(m, view, rows, transfer="fixed")
        np.testing.assert_allclose(m._scores(u[rows], v, b), fixed, rtol=1e-4, atol=1e-4)
        assert not np.allclose(fixed, expect, atol=1e-3)
    finally:
        m.net.transfer_mode = m.config.transfer
        with torch.no_grad():
            m.net.user_t.copy_(saved)


def test_a_cold_user_without_source_is_ranked_by_the_book_bias(planted_fold):
    view, _ = planted_fold
    view = copy.deepcopy(view)
    u = int(view.test_users[0])
    for d in view.source_domains:
        m = view.source[d].tolil()
        m[u, :] = 0
        view.source[d] = m.tocsr()
        view.source[d].eliminate_zeros()
    model = _fit(view, max_epochs=2, warmup_epochs=0)
    assert model.fit_info["no_source_users"] == 1
    assert not model._u[u].any()
    np.testing.assert_allclose(model.score(np.array([u]))[0], model.net.bias_t.detach().numpy(), rtol=1e-6)
    assert np.isfinite(model.score(view.test_users)).all()


def test_config_is_checked(planted_fold):
    view, _ = planted_fold
    with pytest.raises(ValueError, match="transfer"):
        _fit(view, transfer="laplace")
    with pytest.raises(ValueError, match="lambdas"):
        _fit(view, lambda_target=1.5)
    with pytest.raises(ValueError):
        _fit(view, n_layers=-1)
    with pytest.raises(ValueError):
        _fit(view, lr=0.0)
    with pytest.raises(ValueError, match="unknown config keys"):
        from benchmark.models.base import make_config
        make_config(BiTGCF.Config, {"lambda": 0.5})
    assert dataclasses.asdict(BiTGCF.Config())["transfer"] == "degree"
