"""LeanItemKNN (benchmark/models/recbole/itemknn.py) against RecBole's ItemKNN: the same W
and the same scores, exactly, on small random binary matrices."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recbole.model.general_recommender.itemknn import ComputeSimilarity

from benchmark.models.recbole.itemknn import LeanItemKNN, item_similarity

N_USERS, N_ITEMS = 300, 200


def _matrix(seed: int, density: float = 0.05) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    x = sp.random(N_USERS, N_ITEMS, density=density, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    x[:, 7] = 0.0  # an item nobody has (zero norm)
    x.eliminate_zeros()
    return x


def _recbole_w(x: sp.csr_matrix, k: int, shrink: float) -> sp.csc_matrix:
    return ComputeSimilarity(x, topk=k, shrink=shrink, method="item").compute_similarity()[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shrink", [0.0, 10.0])
@pytest.mark.parametrize("k", [1, 5, 37, N_ITEMS - 1, N_ITEMS, 3000])
def test_w_and_scores_equal_recboles(seed, shrink, k):
    x = _matrix(seed)
    ref = _recbole_w(x, k, shrink)
    w = item_similarity(x, topk=k, shrink=shrink)
    assert w.dtype == np.float32 and w.shape == (N_ITEMS, N_ITEMS)
    assert np.array_equal(w.toarray(), ref.toarray())
    assert w.nnz == ref.nnz  # no explicit zeros kept, none dropped
    users = np.array([5, 0, 299, 17, 5, 123])
    pred_mat = x.dot(ref).tolil()  # RecBole's ItemKNN.__init__
    assert np.array_equal(x[users].dot(w).toarray(), pred_mat[users, :].toarray())


@pytest.mark.parametrize("block_size", [1, 64, 1000])
def test_block_size_does_not_change_w(block_size):
    x = _matrix(3, density=0.1)
    assert np.array_equal(item_similarity(x, 40, 2.0, block_size=block_size).toarray(), _recbole_w(x, 40, 2.0).toarray())


def test_ties_break_like_recbole():
    # Duplicated item columns give many equal similarities around the k-th place.
    rng = np.random.default_rng(4)
    base = (rng.random((N_USERS, 20)) < 0.2).astype(np.float32)
    x = sp.csr_matrix(np.tile(base, (1, 10)))
    for k in (3, 15, 33):
        assert np.array_equal(item_similarity(x, k).toarray(), _recbole_w(x, k, 0.0).toarray())


class _Dataset:
    def __init__(self, x):
        self.x = x

    def inter_matrix(self, form="csr"):
        return self.x.tocsr() if form == "csr" else self.x


def _model(x, k, shrink):
    """A LeanItemKNN with RecBole's GeneralRecommender plumbing stubbed (no config files)."""
    model = LeanItemKNN.__new__(LeanItemKNN)
    torch.nn.Module.__init__(model)
    model.USER_ID, model.ITEM_ID, model.n_users, model.n_items, model.device = "user_id", "item_id", N_USERS, N_ITEMS, "cpu"
    model.k, model.method, model.shrink = k, "item", shrink
    model.interaction_matrix = x
    model.w = item_similarity(x, k, shrink)
    return model


def test_full_sort_predict_and_predict_match_recbole_pred_mat():
    x = _matrix(5)
    ref = x.dot(_recbole_w(x, 25, 5.0)).tolil()
    model = _model(x, 25, 5.0)
    users = np.array([3, 250, 3, 42])
    full = model.full_sort_predict({"user_id": torch.as_tensor(users)})
    expected = torch.from_numpy(ref[users, :].toarray().flatten())
    assert full.dtype == expected.dtype and torch.equal(full, expected)
    items = np.array([0, 199, 7, 100])
    pointwise = model.predict({"user_id": torch.as_tensor(users), "item_id": torch.as_tensor(items)})
    expected = torch.from_numpy(np.array([ref[u, i] for u, i in zip(users, items)]))
    assert pointwise.dtype == expected.dtype and torch.equal(pointwise, expected)


@pytest.mark.parametrize("kw", [dict(k=10), dict(k=400, shrink=100.0, pop_blend=True)])
def test_adapter_uses_lean_itemknn_and_scores_like_recboles_itemknn(monkeypatch, kw):
    from recbole.model.general_recommender.itemknn import ItemKNN

    import benchmark.models.recbole.adapter as adapter
    from conftest import planted_scenario

    view, _ = planted_scenario(n_users=60).fold()
    rows = np.concatenate([view.valid_users, view.test_users])
    cfg = adapter.RecBoleConfig(model="ItemKNN", **kw)
    lean = adapter.RecBoleModel(cfg, seed=0).fit(view)
    assert type(lean._model) is LeanItemKNN and not hasattr(lean._model, "pred_mat")
    monkeypatch.setattr(adapter, "LeanItemKNN", ItemKNN)  # RecBole's own class, pred_mat and all
    ref = adapter.RecBoleModel(cfg, seed=0).fit(view)
    assert type(ref._model) is ItemKNN
    assert np.array_equal(lean.score(rows), ref.score(rows))
