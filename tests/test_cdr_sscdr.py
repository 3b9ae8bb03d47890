"""SSCDR (benchmark/models/cdr/sscdr.py): cold-start rules, own-domain negatives, the multi-hop inference rule.

The contract files check shapes, determinism, the planted oracle and the shuffled twin;
these tests pin what is specific to SSCDR: what the mapping and the target side learn
from, that a negative never crosses domains in the joint source space, that the
paper's multi-hop inference (f(u_s) averaged with the mean of the mapped source items)
is what is scored, and that the semi-supervised term and the flag actually act.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.experiment import registry
from benchmark.models.cdr.sscdr import SSCDR, domain_triples
from tests.conftest import view_of

FAST = {"dim": 16, "emb_epochs": 15, "map_epochs": 15}


def _fit(view, seed=0, **over):
    return registry.build(registry.checked_spec("sscdr"), overrides={**FAST, **over}, seed=seed).fit(view)


@pytest.fixture(scope="module")
def fitted(planted_small):
    view, truth = planted_small.fold()
    return view, truth, _fit(view)


def test_cold_users_with_different_histories_get_different_rankings(fitted, planted_small):
    view, _, model = fitted
    groups = planted_small.group_of(view)[view.test_users]
    a, b = (view.test_users[groups == g][0] for g in (0, 1))
    assert (view.source["music"][a] != view.source["music"][b]).nnz > 0
    top = np.argsort(-model.score(np.array([a, b])), axis=1)[:, :5]
    assert not np.array_equal(top[0], top[1])
    # and the transfer is right: each test user's planted head book is in their top 5 for most users
    s = model.score(view.test_users)
    heads = planted_small.head_cols(view, view.test_users)
    hit = (np.argsort(-s, axis=1)[:, :5] == heads[:, None]).any(axis=1)
    assert hit.mean() >= 0.7, hit.mean()


def test_mapping_and_target_side_learn_from_training_users_only(fitted):
    view, _, model = fitted
    cold = np.concatenate([view.valid_users, view.test_users])
    train = set(view.train_users.tolist())
    for rows in (model.mapping_rows_, model.target_rows_):
        assert len(rows) and set(rows.tolist()) <= train
        assert not np.isin(rows, cold).any()
    assert not np.isin(model.mapping_rows_, model._hold_rows).any(), "hold-out users must not train the mapping"
    assert model.fit_info["mapping_users"] == len(model.mapping_rows_)
    # cold users have no trained target vector (zeros), but do have a source vector (source data only)
    assert np.abs(model._tgt_user[cold]).sum() == 0
    assert (np.abs(model._src_user[cold]).sum(axis=1) > 0).all()
    assert "chosen_epoch" in model.fit_info and "holdout_curve" in model.fit_info


def test_a_test_users_target_rows_change_nothing(planted_small):
    tables = planted_small.tables()
    view, _ = view_of(tables)
    base = _fit(view).score(view.test_users)
    # give a test user many more books (present in the catalog): only the evaluator could see them
    u = view.users[view.test_users[0]]
    extra = pd.DataFrame({"user": u, "item": list(view.catalog[:8]), "domain": "book", "value": np.float32(10.0),
                          "timestamp": pd.array([pd.NA] * 8, dtype="Int64"), "positive": True})
    inter = tables["interactions"]
    inter = inter[~((inter["user"] == u) & (inter["domain"] == "book"))]
    tables = {**tables, "interactions": pd.concat([inter, extra[inter.columns]], ignore_index=True)}
    view2, _ = view_of(tables)
    assert list(view2.catalog) == list(view.catalog) and np.array_equal(view2.test_users, view.test_users)
    np.testing.assert_allclose(_fit(view2).score(view2.test_users), base, rtol=1e-6, atol=1e-6)


def test_negatives_stay_in_their_domain(planted_fold):
    """Music and podcasts share the source space, yet each positive's negative is from its own block."""
    view, _ = planted_fold
    model = _fit(view)
    blocks = model._blocks
    assert len(blocks) == 2 and blocks[0][1] == blocks[1][0] == len(view.source_items["music"])
    u, p, n = domain_triples(model._src, blocks, model.source_rows_, np.random.default_rng(0))
    assert len(u) == model._src[model.source_rows_].nnz  # every source positive once
    block_of = lambda x: np.searchsorted([b[1] for b in blocks], x, side="right")  # noqa: E731
    assert np.array_equal(block_of(p), block_of(n))
    assert model._src[u, n].sum() == 0, "a negative is never one of the user's positives"


def test_multi_hop_is_the_mean_rule_and_differs_from_single_hop(fitted):
    view, _, model = fitted
    assert model.config.multi_hop is True
    rows = view.test_users[:4]
    v = model._tgt_item.astype(np.float64)
    with torch.no_grad():
        f = lambda x: model.net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64)  # noqa: E731
        for r in rows:
            items = model._src[r].indices
            fu = f(model._src_user[r][None])[0]
            t = 0.5 * (fu + f(model._src_item[items]).mean(axis=0))  # the paper's multi-hop inference
            expect = -((t[None, :] - v) ** 2).sum(axis=1)
            np.testing.assert_allclose(model.score(np.array([r]))[0], expect, rtol=1e-4, atol=1e-4)
            single = -((fu[None, :] - v) ** 2).sum(axis=1)
            np.testing.assert_allclose(model._scores(np.array([r]), multi_hop=False)[0], single, rtol=1e-4, atol=1e-4)
    multi, single = model._scores(rows, multi_hop=True), model._scores(rows, multi_hop=False)
    assert np.abs(multi - single).max() > 1e-3
    assert any(not np.array_equal(np.argsort(-a)[:10], np.argsort(-b)[:10]) for a, b in zip(multi, single))


def test_mapping_shape_and_a_user_without_source_items(fitted):
    view, _, model = fitted
    dim = model.config.dim
    assert model._src_user.shape == (view.n_users, dim) and model._tgt_item.shape == (view.n_catalog, dim)
    no_src = np.flatnonzero(~model._d.has_source)
    assert len(no_src), "the planted fixture has book-only users"
    t = model.target_vectors(no_src[:2])
    assert t.shape == (2, dim)
    with torch.no_grad():
        np.testing.assert_allclose(t.numpy(), model.net(torch.zeros(2, dim)).numpy(), atol=1e-6)  # f(0): no hop to take
    assert np.isfinite(model.score(no_src[:2])).all()
    assert model.fit_info["no_source_users"] == 0


def test_the_flags_act(planted_fold):
    """lam switches the semi-supervised term, multi_hop the inference: each changes the scores."""
    view, _ = planted_fold
    rows = view.test_users
    base = _fit(view, map_epochs=3, patience=10)
    assert not np.allclose(base.score(rows), _fit(view, map_epochs=3, patience=10, lam=0.0).score(rows))
    assert not np.allclose(base.score(rows), _fit(view, map_epochs=3, patience=10, multi_hop=False).score(rows))
    with pytest.raises(ValueError):
        SSCDR(SSCDR.Config(margin=0.0)).fit(view)
