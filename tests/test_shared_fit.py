"""One fit serving two leaderboard rows, and configurations reused across folds.

Shared fits: a trained RecBole model and its "+Pop" row hold out the same seeded
training users and train identically, so the runner fits once and derives the blend
(``Recommender.shares_fit`` / ``derive``). The first test fails if the derived row
differs from a separate "+Pop" fit in any score or in the chosen weight; the second if
a pair whose fits differ (ItemKNN: only the "+Pop" fit holds users out) is shared.

Reused tuning: a fold that reuses another fold's configurations must not score the users
they were chosen on. The last tests fail if ``tuning_source`` maps a fold to the wrong
source or if those users stay among the test users.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.experiment.tuning import Budget, tuning_source
from benchmark.models.recbole.adapter import RecBoleConfig, RecBoleModel
from benchmark.scenarios.protocol import without_test_users


@pytest.fixture(scope="module")
def fold(planted_small):
    return planted_small.fold()


@pytest.mark.parametrize("model", ["BPR", "MultiVAE"])
def test_derived_pop_row_equals_its_own_fit(fold, model):
    view, _ = fold
    kw = dict(epochs=4, learning_rate=0.02, holdout_share=0.2, eval_every=1)
    base_cfg, pop_cfg = RecBoleConfig(model=model, **kw), RecBoleConfig(model=model, pop_blend=True, **kw)
    assert RecBoleModel.shares_fit(base_cfg, pop_cfg)
    base = RecBoleModel(base_cfg, seed=3).fit(view)
    rows = np.concatenate([view.test_users, view.valid_users])
    plain = base.score(rows)
    derived = base.derive(pop_cfg)
    alone = RecBoleModel(pop_cfg, seed=3).fit(view)
    assert derived.fit_info["pop_blend_w"] == alone.fit_info["pop_blend_w"]
    assert derived.fit_info["pop_blend_curve"] == alone.fit_info["pop_blend_curve"]
    np.testing.assert_array_equal(derived.score(rows), alone.score(rows))
    np.testing.assert_array_equal(base.score(rows), plain)  # deriving leaves the base row as it was


def test_only_fits_that_are_the_same_are_shared():
    assert not RecBoleModel.shares_fit(RecBoleConfig(model="ItemKNN"), RecBoleConfig(model="ItemKNN", pop_blend=True))
    assert not RecBoleModel.shares_fit(RecBoleConfig(model="BPR", epochs=4), RecBoleConfig(model="BPR", epochs=5, pop_blend=True))
    assert not RecBoleModel.shares_fit(RecBoleConfig(model="BPR"), RecBoleConfig(model="BPR"))


def test_tuning_source_of_every_fold():
    b = Budget(n_trials=8, time_budget_s=60, tune_folds=1, tune_seeds=1)
    assert tuning_source(0, 0, [0, 1], b) == (0, 0)
    assert tuning_source(0, 3, [0, 1], b) == (0, 0)
    assert tuning_source(1, 0, [0, 1], b) == (0, 0)
    assert tuning_source(1, 4, [1, 0], b) == (0, 0)  # the first seed by value, not by list order
    every = Budget(n_trials=8, time_budget_s=60)
    assert tuning_source(1, 4, [0, 1], every) == (1, 4)
    per_seed = Budget(n_trials=8, time_budget_s=60, tune_folds=1)
    assert tuning_source(1, 4, [0, 1], per_seed) == (1, 0)


def test_tuning_users_are_removed_from_the_test_users(planted_small):
    view0, _ = planted_small.fold(0)
    view1, truth1 = planted_small.fold(1)
    tuned_on = view0.users[view0.valid_users]
    overlap = np.isin(view1.users[view1.test_users], tuned_on)
    assert overlap.any()  # fold 0's validation users are fold 1's test users: the case guarded
    v, t = without_test_users(view1, truth1, tuned_on)
    assert not np.isin(v.users[v.test_users], tuned_on).any()
    assert len(v.test_users) == len(view1.test_users) - overlap.sum() == t.test.shape[0]
    assert t.dropped["tuning"] == overlap.sum()
    kept = np.flatnonzero(~overlap)
    assert (t.test != truth1.test[kept]).nnz == 0  # each remaining user keeps their own truth row
