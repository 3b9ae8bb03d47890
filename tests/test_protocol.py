"""The k-fold cold-start protocol: fold invariants and the train-only catalog rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.scenarios.protocol import build_fold, deal_folds
from conftest import tables_from_records


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
    users = [f"u{i}" for i in range(6)]
    music = [(u, f"m{i % 2}", 5.0) for i, u in enumerate(users)]
    books = [r for i, u in enumerate(users) for r in ((u, "b_common", 5.0), (u, f"b{i % 3}", 4.0))]
    # A target item that only the test users u4, u5 rated, and an item only below support.
    books += [("u4", "only_test", 5.0), ("u5", "only_test", 5.0), ("u0", "rare", 5.0)]
    roles = dict(zip(users, ["train", "train", "train", "valid", "test", "test"]))
    t = tables_from_records({"music": music}, books, roles=roles, name="fx")
    assert (t["users"]["cohort"] == "m-only").all() and t["users"]["evaluable"].all()
    return t["interactions"], t["users"], t["folds"], t["items"], t["meta"]


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

    from benchmark.features.factorize import item_embeddings

    m = sp.random(60, 30, density=0.2, random_state=1, format="csc")
    m = m.tolil()
    m[:, 7] = 0
    e = item_embeddings(m.tocsr(), 8, seed=0)
    assert np.all(e[7] == 0)
    assert np.allclose(np.linalg.norm(e[np.asarray(m.tocsr().getnnz(axis=0)) > 0], axis=1), 1.0, atol=1e-5)


def test_restrict_training_keeps_the_cohort_and_every_source_row(planted_fold):
    from benchmark.scenarios.protocol import restrict_training

    view, _ = planted_fold
    assert restrict_training(view, None) is view
    mp = restrict_training(view, "m&p")
    assert set(mp.train_users) == set(view.train_users[view.cohort[view.train_users] == "m&p"])
    assert 0 < len(mp.train_users) < len(view.train_users)
    dropped = np.setdiff1d(view.train_users, mp.train_users)
    assert mp.target_train[dropped].nnz == 0 and view.target_train[dropped].nnz > 0
    assert (mp.target_train[mp.train_users] != view.target_train[mp.train_users]).nnz == 0
    for d in view.source_domains:  # inputs stay: the other users' histories are not training targets
        assert (mp.source[d] != view.source[d]).nnz == 0
    np.testing.assert_array_equal(mp.valid_users, view.valid_users)
    np.testing.assert_array_equal(mp.test_users, view.test_users)


def test_source_lengths_count_items_over_every_source_domain(planted_fold):
    view, _ = planted_fold
    rows = np.concatenate([view.test_users[:5], view.train_users[:5]])
    expected = [sum(view.source[d][r].nnz for d in view.source_domains) for r in rows]
    np.testing.assert_array_equal(view.source_lengths(rows), expected)
    assert view.source_lengths(np.array([], dtype=int)).shape == (0,)
