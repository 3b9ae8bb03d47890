"""The collapse detector flags Popularity's list for everyone and spares a model that personalises."""

from __future__ import annotations

import numpy as np

from benchmark.evaluation.collapse import collapse_stats
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.models.popularity import Popularity
from benchmark.models.userknn import UserKNN


class _PopularityWithNoise(Popularity):
    """Popularity's ranking for every user, with per-user jitter below any popularity gap."""

    history_free = True

    def score(self, user_rows):
        s = super().score(user_rows)
        return s + 1e-12 * np.random.default_rng(len(user_rows)).random(s.shape)


def _stats(model, view, truth):
    per_user, topk = evaluate_model(model, view.test_users, truth.test, [10], view.popularity())
    return collapse_stats(topk, view.popularity(), per_user.attrs["mean_scores"])


def test_popularity_for_everyone_is_flagged(planted_fold):
    view, truth = planted_fold
    for model in (Popularity(), _PopularityWithNoise()):
        st = _stats(model.fit(view), view, truth)
        assert st["collapsed"], st
        assert st["pop_overlap"] == 1.0 and st["score_pop_spearman"] > 0.99


def test_userknn_on_the_planted_fixture_is_not_flagged(planted_fold):
    view, truth = planted_fold
    model = UserKNN(UserKNN.Config(pop_weight=0.0)).fit(view)
    st = _stats(model, view, truth)
    assert not st["collapsed"], st
    assert st["distinct_lists"] > 1 and st["pop_overlap"] < 0.9


def test_counts_on_a_hand_made_case():
    pop = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    topk = np.array([[0, 1], [0, 1], [4, 3], [0, 4]])
    st = collapse_stats(topk, pop, k=2)
    assert st["distinct_lists"] == 3 and st["n_users"] == 4
    assert st["pop_overlap"] == (2 + 2 + 0 + 1) / 8
    assert st["score_pop_spearman"] is None and st["collapsed"] is False
