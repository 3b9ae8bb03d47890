"""The k-fold cold-start protocol: fold invariants and the train-only catalog rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.protocol import build_fold, deal_folds


@settings(max_examples=40, deadline=None)
@given(n=st.integers(5, 60), k=st.integers(2, 5), seeds=st.lists(st.integers(0, 99), min_size=1, max_size=3, unique=True))
def test_each_user_tested_exactly_once_per_seed(n, k, seeds):
    if n < k:
        return
    users = np.array([f"u{i}" for i in range(n)])
    folds = deal_folds(users, k, seeds, valid_share=0.1)
    for seed in seeds:
        tests = folds[(folds.seed == seed) & (folds.role == "test")]
        assert sorted(tests.user) == sorted(users)  # complete and disjoint across folds
        for f in range(k):
            one = folds[(folds.seed == seed) & (folds.fold == f)]
            assert sorted(one.user) == sorted(users)  # every user has one role per fold
            valid = set(one[one.role == "valid"].user)
            test = set(one[one.role == "test"].user)
            assert valid and not (valid & test)


def test_deal_is_deterministic_and_order_free():
    users = np.array([f"u{i}" for i in range(37)])
    a = deal_folds(users, 5, [0, 1], 0.1)
    b = deal_folds(users[::-1].copy(), 5, [0, 1], 0.1)
    pd.testing.assert_frame_equal(a, b)
    c = deal_folds(users, 5, [2], 0.1)
    assert not a[a.seed == 0].role.reset_index(drop=True).equals(c.role.reset_index(drop=True))


def test_deal_rejects_bad_input():
    with pytest.raises(ValueError, match="k must be"):
        deal_folds(np.array(["a", "b"]), 1, [0], 0.1)
    with pytest.raises(ValueError, match="valid_share"):
        deal_folds(np.array(["a", "b", "c"]), 2, [0], 1.5)


def _fixture():
    """Six evaluable users; book:only_test is rated (positively) by test users only."""
    rows = []
    for i in range(6):
        u = f"u{i}"
        rows.append((u, f"music:m{i % 2}", "music", 5.0, True))
        rows.append((u, "book:b_common", "book", 5.0, True))
        rows.append((u, f"book:b{i % 3}", "book", 4.0, True))
    inter = pd.DataFrame(rows, columns=["user", "item", "domain", "value", "positive"])
    inter["timestamp"] = pd.array([None] * len(inter), dtype="Int64")
    users = pd.DataFrame({"user": [f"u{i}" for i in range(6)]})
    users["has_music"] = True
    users["has_podcast"] = False
    users["has_book"] = True
    users["cohort"] = "m-only"
    users["evaluable"] = True
    folds = pd.DataFrame({
        "seed": 0, "fold": 0,
        "user": [f"u{i}" for i in range(6)],
        "role": ["train", "train", "train", "valid", "test", "test"],
    })
    # A target item that only the test users u4, u5 rated, and an item only below support.
    extra = pd.DataFrame({
        "user": ["u4", "u5", "u0"], "item": ["book:only_test", "book:only_test", "book:rare"],
        "domain": "book", "value": 5.0, "positive": True,
    })
    extra["timestamp"] = pd.array([None] * 3, dtype="Int64")
    inter = pd.concat([inter, extra], ignore_index=True)
    items = pd.DataFrame({"item": sorted(inter.item.unique())})
    for c in ("domain", "title", "creator", "text"):
        items[c] = ""
    meta = {"name": "fx", "source_domains": ["music"], "target_domain": "book"}
    return inter, users, folds, items, meta


def test_catalog_and_popularity_come_from_training_users_only():
    inter, users, folds, items, meta = _fixture()
    view, truth = build_fold(inter, users, folds, items, meta, 0, 0, min_support=1)
    assert "book:only_test" not in view.catalog
    assert "book:rare" in view.catalog  # one training positive is enough at min_support=1
    view2, _ = build_fold(inter, users, folds, items, meta, 0, 0, min_support=2)
    assert "book:rare" not in view2.catalog
    pop = dict(zip(view.catalog, view.popularity()))
    assert pop["book:b_common"] == 3  # u0..u2 only: valid/test users do not count


def test_eval_users_have_no_target_rows_in_training_inputs():
    inter, users, folds, items, meta = _fixture()
    view, truth = build_fold(inter, users, folds, items, meta, 0, 0)
    held_out = np.concatenate([view.valid_users, view.test_users])
    assert view.target_train[held_out].nnz == 0
    assert set(view.train_users).isdisjoint(held_out)
    assert set(view.valid_users).isdisjoint(view.test_users)
    # Their source history stays: it is the input of a cold-start model.
    assert all(view.source["music"][r].nnz > 0 for r in held_out)
    assert truth.test.shape == (2, view.n_catalog)
    assert (np.asarray(truth.test.getnnz(axis=1)) > 0).all()


def test_test_user_without_catalog_positive_is_dropped_and_counted():
    inter, users, folds, items, meta = _fixture()
    # u5 keeps only the item no training user has.
    inter = inter[~((inter.user == "u5") & (inter.item != "book:only_test") & (inter.domain == "book"))]
    view, truth = build_fold(inter, users, folds, items, meta, 0, 0)
    assert truth.dropped["test"] == 1
    assert list(view.users[view.test_users]) == ["u4"]


def test_item_embeddings_zero_for_items_without_interactions():
    import scipy.sparse as sp

    from benchmark.factorize import item_embeddings

    m = sp.random(60, 30, density=0.2, random_state=1, format="csc")
    m = m.tolil()
    m[:, 7] = 0
    e = item_embeddings(m.tocsr(), 8, seed=0)
    assert np.all(e[7] == 0)
    assert np.allclose(np.linalg.norm(e[np.asarray(m.tocsr().getnnz(axis=0)) > 0], axis=1), 1.0, atol=1e-5)
