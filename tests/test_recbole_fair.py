"""Fair RecBole baselines: own-domain negatives and early stopping on held-out training users.

Each test can fail: the sampler test fails with RecBole's own uniform sampler (about
half of its negatives are books for a music positive on this fixture), and the
early-stopping test fails if a valid or test user's rows are among those it scored.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.models.recbole.adapter import RecBoleConfig, RecBoleModel


@pytest.fixture(scope="module")
def fold(planted_small):
    return planted_small.fold()




def test_own_domain_negatives_match_the_positive_domain_and_avoid_positives(fold):
    view, _ = fold
    model = RecBoleModel(RecBoleConfig(model="BPR", epochs=1, holdout_share=0.0), seed=0).fit(view)
    s = model.sampler_
    ds_users, ds_items = s._keys // s.n_items, s._keys % s.n_items
    np.random.seed(0)
    neg = s.sample_by_user_ids(ds_users, ds_items, 4).numpy()
    same = s.item_domain[neg] == np.tile(s.item_domain[ds_items], 4)
    assert same.all(), f"{(~same).sum()} negatives from another domain than their positive"
    assert not s._is_positive(np.tile(ds_users, 4), neg).any(), "a negative is one of the user's positives"
    assert set(np.unique(s.item_domain[ds_items])) >= {0, 1}, "the fixture must have book and music positives"
    assert model.fit_info["negatives"] == "own-domain"


def test_recbole_uniform_sampler_would_fail_the_domain_check(fold):
    """The control: RecBole's own sampler (own_domain_negatives off) crosses domains often."""
    view, _ = fold
    own = RecBoleModel(RecBoleConfig(model="BPR", epochs=1, holdout_share=0.0), seed=0).fit(view).sampler_
    uniform = RecBoleModel(RecBoleConfig(model="BPR", epochs=1, holdout_share=0.0, own_domain_negatives=False), seed=0).fit(view)
    users, items = own._keys // own.n_items, own._keys % own.n_items
    np.random.seed(0)
    neg = uniform.sampler_.sample_by_user_ids(users, items, 4).numpy()
    same = own.item_domain[neg] == np.tile(own.item_domain[items], 4)
    assert same.mean() < 0.9, same.mean()
    assert uniform.fit_info["negatives"] == "uniform over all items"


def test_early_stopping_sees_training_users_only_and_records_the_epoch(fold):
    view, _ = fold
    model = RecBoleModel(RecBoleConfig(model="BPR", epochs=6, eval_every=2, holdout_share=0.2), seed=0).fit(view)
    held = set(model.holdout_rows_.tolist())
    assert held and held <= set(view.train_users.tolist())
    assert not held & (set(view.valid_users.tolist()) | set(view.test_users.tolist()))
    info = model.fit_info
    assert info["holdout_users"] == len(held)
    assert 0 <= info["chosen_epoch"] < 6 and [e for e, _ in info["holdout_curve"]] == [1, 3, 5][: len(info["holdout_curve"])]
    assert info["chosen_epoch"] in [e for e, _ in info["holdout_curve"]]


def test_cold_bpr_scores_follow_the_planted_book_taste(planted_small, fold):
    """A cold user's book scores rank their group's head book above other groups' heads."""
    view, _ = fold
    model = RecBoleModel(RecBoleConfig(model="BPR", epochs=30, learning_rate=0.01, embedding_size=16), seed=0).fit(view)
    rows = view.test_users
    s = model.score(rows)
    groups = planted_small.group_of(view)[rows]
    heads = np.array([view.catalog.get_loc(f"book:b{g}_0") for g in range(4)])
    own = s[np.arange(len(rows)), heads[groups]]
    other = np.array([np.delete(s[i, heads], groups[i]).mean() for i in range(len(rows))])
    assert np.mean(own > other) >= 0.75, np.mean(own > other)
