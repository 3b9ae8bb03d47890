"""Tests of CMF, collective matrix factorisation (benchmark/models/cdr/cmf.py).

The fixture is the shared planted scenario (tests/conftest.py, four taste groups):
a user's books follow their music and podcast group. CMF shares one user factor
matrix between the source and the book factorisation; a cold user's row of U is
learned from their source rows only and scored as U_u . V_t + b_t. The tests pin that
rule, that only fitting training users' book rows enter the loss, and that the cold
user's ranking follows their own source history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from benchmark.experiment import registry
from benchmark.models.base import make_config
from benchmark.models.cdr.cmf import CMF
from benchmark.models.cdr.common import domains
from conftest import view_of


def make(seed: int = 0, **kw) -> CMF:
    return CMF(make_config(CMF.Config, kw), seed=seed)


@pytest.fixture(scope="module")
def fitted(planted_small):
    view, truth = planted_small.fold()
    return make().fit(view), view, planted_small


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_cold_users_of_different_groups_get_different_rankings_led_by_their_group(fitted):
    model, view, p = fitted
    rows = view.test_users
    groups = p.group_of(view)[rows]
    a, b = rows[groups == groups[0]][0], rows[groups != groups[0]][0]
    s = model.score(np.array([a, b]))
    assert tuple(_top(s, 5)[0]) != tuple(_top(s, 5)[1])
    # transfer, not popularity: most cold users have their own group's head book in the top 3
    top3 = _top(model.score(rows), 3)
    hit = (top3 == p.head_cols(view, rows)[:, None]).any(axis=1)
    assert hit.mean() >= 0.8, hit.mean()


def test_book_rows_of_valid_test_and_holdout_users_never_enter_the_loss(fitted):
    model, view, _ = fitted
    d = domains(view, seed=model.seed)
    assert len(model.target_rows_) > 0 and len(d.holdout_rows) > 0
    assert set(model.target_rows_) <= set(d.fit_rows)
    for rows in (view.valid_users, view.test_users, d.holdout_rows):
        assert not set(model.target_rows_) & set(rows)
    # the paper's cold user: their source rows do enter the (source) loss
    has_src = view.test_users[view.source_lengths(view.test_users) > 0]
    assert set(has_src) <= set(model.source_rows_)
    assert model.fit_info["mapping_users"] == len(model.target_rows_)


def test_leaked_book_rows_of_cold_users_change_nothing(planted_fold):
    view, _ = planted_fold
    rows = np.concatenate([view.valid_users, view.test_users])
    clean = make().fit(view).score(rows)
    leak = sp.lil_matrix(view.target_train)
    leak[rows, 0] = 1.0  # as if the fold had handed the cold users' truth to the model
    leak[rows, view.n_catalog - 1] = 1.0
    view.target_train = leak.tocsr()
    np.testing.assert_array_equal(make().fit(view).score(rows), clean)


def test_a_test_users_book_rows_in_the_tables_change_nothing(planted_small):
    tables = planted_small.tables()
    view, _ = view_of(tables)
    u = view.users[view.test_users[0]]
    books = [i for i in view.catalog if not ((tables["interactions"]["user"] == u) & (tables["interactions"]["item"] == i)).any()][:3]
    extra = pd.DataFrame({"user": u, "item": books, "domain": "book", "value": np.float32(10), "timestamp": pd.NA, "positive": True})
    edited = dict(tables, interactions=pd.concat([tables["interactions"], extra.astype(tables["interactions"].dtypes)], ignore_index=True))
    view2, _ = view_of(edited)
    assert list(view2.catalog) == list(view.catalog)
    rows = np.concatenate([view.valid_users, view.test_users])
    np.testing.assert_array_equal(make().fit(view2).score(rows), make().fit(view).score(rows))


def test_scores_are_the_shared_user_factor_times_the_book_factors(fitted):
    model, view, _ = fitted
    rows = np.concatenate([view.test_users, view.train_users[:5]])
    f = model.factors
    u = f["user"][torch.from_numpy(rows)]
    expect = (u @ f["target"].T + f["bias"].T).numpy()
    np.testing.assert_allclose(model.score(rows), expect, rtol=1e-5, atol=1e-6)
    assert f["user"].shape[1] == f["source"].shape[1] == f["target"].shape[1] == model.config.dim
    assert f["target"].shape[0] == view.n_catalog and f["source"].shape[0] == sum(len(v) for v in view.source_items.values())


def test_a_cold_user_without_source_items_gets_the_learned_book_offsets(planted_fold):
    view, _ = planted_fold
    u = view.test_users[0]
    for d in view.source_domains:
        m = sp.lil_matrix(view.source[d])
        m[u, :] = 0
        view.source[d] = sp.csr_matrix(m)
        view.source[d].eliminate_zeros()
    model = make().fit(view)
    assert u not in set(model.source_rows_)
    assert model.fit_info["no_source_users"] >= 1
    np.testing.assert_allclose(model.score(np.array([u]))[0], model.factors["bias"][:, 0].numpy(), atol=1e-7)
    assert np.ptp(model.score(np.array([u]))) > 0  # a learned ranking, not ties


def test_a_cold_users_ranking_follows_the_source_history_they_are_given(planted_fold, planted_small):
    view, _ = planted_fold
    p = planted_small
    groups = p.group_of(view)
    cold = view.test_users
    a = cold[0]
    donor = cold[groups[cold] != groups[a]][0]  # another cold user, of another group
    for d in view.source_domains:
        m = sp.lil_matrix(view.source[d])
        m[a, :] = m[donor, :]
        view.source[d] = sp.csr_matrix(m)
    top3 = _top(make().fit(view).score(np.array([a])), 3)[0]
    assert view.catalog.get_loc(f"book:b{groups[donor]}_0") in top3
    assert view.catalog.get_loc(f"book:b{groups[a]}_0") not in top3


@pytest.mark.parametrize("bad", [{"alpha": 0.0}, {"alpha": 1.0}, {"dim": 0}, {"lr": 0.0}])
def test_bad_config_is_a_clear_error(planted_fold, bad):
    with pytest.raises(ValueError, match="CMF"):
        make(**bad).fit(planted_fold[0])


def test_spec_loads_with_the_papers_knobs():
    spec = registry.checked_spec("cmf")
    assert spec.family == "shared-factors" and spec.display_name == "CMF" and spec.applies_to == ()
    assert {"dim", "alpha", "lr", "reg"} <= set(spec.search_space)
    a = spec.search_space["alpha"]
    assert 0 < a["low"] < a["high"] < 1
    assert isinstance(registry.build(spec), CMF)
