"""PTUPCDR (benchmark/models/cdr/ptupcdr.py): personalised bridges, the paper's inference rule, no cold-user leakage."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from benchmark.models.cdr.common import domains
from benchmark.models.cdr.common import padded_history
from benchmark.models.cdr.ptupcdr import PTUPCDR, MetaNet
from tests.conftest import view_of


def _fit(view, seed=0, **over):
    return PTUPCDR(PTUPCDR.Config(**over), seed=seed).fit(copy.deepcopy(view))


def test_cold_users_with_different_histories_get_different_rankings(planted_fold, planted_small):
    view, _ = planted_fold
    m = _fit(view)
    rows = view.test_users
    groups = planted_small.group_of(view)[rows]
    a, b = rows[groups == groups[0]][0], rows[groups != groups[0]][0]
    s = m.score(np.array([a, b]))
    assert not np.array_equal(np.argsort(-s[0])[:5], np.argsort(-s[1])[:5])
    # and the planted head book of a user's own group is ranked near the top
    heads = planted_small.head_cols(view, rows)
    ranks = (m.score(rows) > m.score(rows)[np.arange(len(rows)), heads][:, None]).sum(1)
    assert np.mean(ranks < 5) > 0.7, ranks


def test_mapping_and_target_side_never_see_valid_or_test_users(planted_small):
    tables = planted_small.tables()
    view, _ = view_of(tables)
    m = _fit(view)
    cold = np.concatenate([view.valid_users, view.test_users])
    train = set(view.train_users.tolist())
    assert len(m.mapping_rows_) and set(m.mapping_rows_.tolist()) <= train
    assert set(m.target_rows_.tolist()) <= train
    assert not np.isin(cold, m.mapping_rows_).any() and not np.isin(cold, m.target_rows_).any()
    hold = domains(view, seed=0).holdout_rows
    assert len(hold) and not np.isin(hold, m.mapping_rows_).any() and not np.isin(hold, m.target_rows_).any()
    assert m.fit_info["mapping_users"] == len(m.mapping_rows_) and m.fit_info["chosen_epoch"] >= 0
    # Give a test user many more book positives (catalog items): nothing a model sees changes.
    user = view.users[view.test_users[0]]
    books = [i for i in view.catalog[:10]]
    extra = pd.DataFrame({"user": user, "item": books, "domain": "book", "value": np.float32(10.0),
                          "timestamp": pd.array([pd.NA] * len(books), dtype="Int64"), "positive": True})
    edited = dict(tables, interactions=pd.concat([tables["interactions"], extra], ignore_index=True)
                  .drop_duplicates(["user", "item"], keep="first"))
    view2, _ = view_of(edited)
    assert list(view2.catalog) == list(view.catalog)
    np.testing.assert_array_equal(_fit(view2).score(view.test_users), m.score(view.test_users))


def test_scores_follow_the_papers_rule_with_a_bridge_per_user(planted_fold):
    view, _ = planted_fold
    m = _fit(view, dim=8)
    rows = view.test_users[:6]
    r = torch.from_numpy(rows.astype(np.int64))
    with torch.no_grad():
        W = m.net.bridge(m.v_src_[m.hist_[r]], m.mask_[r])
        expect = torch.einsum("bd,bde->be", m.u_src_[r], W) @ m.v_tgt_.T
    assert W.shape == (len(rows), 8, 8)
    np.testing.assert_allclose(m.score(rows), expect.numpy(), rtol=1e-5, atol=1e-6)
    # personalised: users with different histories get different bridges (not one shared mapping)
    assert not torch.allclose(W[0], W[1])
    assert m.v_tgt_.shape == (view.n_catalog, 8) and m.u_src_.shape == (view.n_users, 8)


def test_padded_history_keeps_the_largest_values_and_pads_empty_rows():
    raw = sp.csr_matrix(np.array([[1, 5, 0, 3, 2], [0, 0, 0, 0, 0], [0, 4, 0, 0, 0]], dtype=np.float32))
    idx, mask = padded_history(raw, 2)
    assert idx.shape == (3, 2)
    assert set(idx[0].tolist()) == {1, 3} and mask[0].all()
    assert (idx[1] == 5).all() and not mask[1].any()  # padding index = n_items
    assert idx[2, 0] == 1 and mask[2].tolist() == [True, False] and idx[2, 1] == 5
    # an empty history through the encoder stays finite; with u_s = 0 the paper's u_t is 0
    net = MetaNet(4, 8)
    hist = torch.zeros(1, 2, 4)
    out = net(torch.zeros(1, 4), hist, torch.zeros(1, 2, dtype=torch.bool))
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(1, 4))
    aff = MetaNet(4, 8, affine=True)
    assert aff.bridge(hist, torch.zeros(1, 2, dtype=torch.bool)).shape == (1, 5, 4)


def test_users_without_source_get_constant_scores_or_what_the_options_learn(planted_fold):
    view, _ = planted_fold
    no_src = np.flatnonzero(view.source_lengths(np.arange(view.n_users)) == 0)
    assert len(no_src), "the planted fixture has book-only users"
    s = _fit(view).score(no_src[:2])
    assert np.isfinite(s).all() and np.all(s == s[:, :1])
    a = _fit(view, affine=True).score(no_src[:2])
    assert np.isfinite(a).all() and a[0].std() > 0
    np.testing.assert_allclose(a[0], a[1], rtol=1e-5, atol=1e-6)  # same (empty) input, same vector
    m = _fit(view, item_bias=True)  # u_t = 0: the learned target item bias is the ranking
    assert m.b_tgt_.abs().sum() > 0
    np.testing.assert_allclose(m.score(no_src[:2]), np.tile(m.b_tgt_.numpy(), (2, 1)), rtol=1e-6, atol=1e-7)
