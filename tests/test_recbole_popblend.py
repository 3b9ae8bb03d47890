"""The Popularity blend of the RecBole adapter (``pop_blend``), the weight chosen on hold-out training users.

Not on the leaderboard yet: with per-user rank scaling the chooser picked w = 1 (exactly
Popularity) for ItemKNN and BPR on douban-m2b fold 0 and w = 0.9 for EASE, which scored
below plain EASE on validation; the "+Pop" specs wait for a better scale (issue 15).

Each test can fail: the chooser test fails if a valid or test user is scored while the
weight is chosen, or if the hold-out users' books stay in the fit; the w = 0 / w = 1
tests fail on any rescaling that reorders the model's or Popularity's list; the
direction tests fail for a chooser that ignores the hold-out (a fixed w is either high
on both fixtures or low on both).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.models.popularity import Popularity
from benchmark.models.recbole.adapter import RecBoleConfig, RecBoleModel, _without_target_rows
from conftest import planted_scenario

def _ranking(scores):
    return np.argsort(-scores, axis=1, kind="stable")


@pytest.fixture(scope="module")
def fold(planted_small):
    return planted_small.fold()


@pytest.mark.parametrize("model", ["ItemKNN", "BPR"])
def test_weight_is_chosen_on_holdout_training_users_only(fold, monkeypatch, model):
    view, _ = fold
    seen = []
    original = RecBoleModel._model_scores

    def spy(self, rows):
        seen.append(np.asarray(rows).copy())
        return original(self, rows)

    monkeypatch.setattr(RecBoleModel, "_model_scores", spy)
    kw = dict(k=50) if model == "ItemKNN" else dict(epochs=4, learning_rate=0.02)
    m = RecBoleModel(RecBoleConfig(model=model, pop_blend=True, holdout_share=0.2, **kw), seed=0).fit(view)
    held = set(m.holdout_rows_.tolist())
    assert held and held <= set(view.train_users.tolist())
    assert not held & (set(view.valid_users.tolist()) | set(view.test_users.tolist()))
    assert set(m.blend_rows_.tolist()) == held
    assert seen and set(np.concatenate(seen).tolist()) <= held, "a user outside the hold-out was scored during fit"
    info = m.fit_info
    assert info["pop_blend_holdout_users"] == len(held)
    assert [w for w, _ in info["pop_blend_curve"]] == RecBoleConfig().pop_blend_grid  # the default grid, dense near 1
    assert info["pop_blend_w"] in [w for w, _ in info["pop_blend_curve"]]
    # the hold-out users' book rows are out of the fit (ItemKNN included)
    base = RecBoleModel(RecBoleConfig(model=model, holdout_share=0.2, **kw), seed=0).fit(view)
    lost = view.target_train[m.holdout_rows_].nnz
    assert info["n_interactions"] == base.fit_info["n_interactions"] - (lost if model == "ItemKNN" else 0)


def test_w0_is_the_base_model_and_w1_is_popularity(fold):
    view, _ = fold
    rows = np.concatenate([view.valid_users, view.test_users])
    # BPR: same hold-out as the base model (early stopping), so w = 0 is the base model itself.
    bpr = dict(model="BPR", epochs=4, learning_rate=0.02)
    at0 = RecBoleModel(RecBoleConfig(pop_blend=True, pop_blend_grid=[0.0], **bpr), seed=0).fit(view)
    base = RecBoleModel(RecBoleConfig(**bpr), seed=0).fit(view)
    assert at0.fit_info["pop_blend_w"] == 0.0
    np.testing.assert_array_equal(_ranking(at0.score(rows)), _ranking(base.score(rows)))
    # EASE: the +Pop fit lacks the hold-out users' books, so its base is EASE on that view.
    ease = dict(model="EASE", reg_weight=10.0)
    at0 = RecBoleModel(RecBoleConfig(pop_blend=True, pop_blend_grid=[0.0], **ease), seed=0).fit(view)
    base = RecBoleModel(RecBoleConfig(**ease), seed=0).fit(_without_target_rows(view, at0.holdout_rows_))
    np.testing.assert_array_equal(_ranking(at0.score(rows)), _ranking(base.score(rows)))
    pop = _ranking(Popularity().fit(view).score(rows))
    for kw in (bpr, ease):
        at1 = RecBoleModel(RecBoleConfig(pop_blend=True, pop_blend_grid=[1.0], **kw), seed=0).fit(view)
        assert at1.fit_info["pop_blend_w"] == 1.0
        np.testing.assert_array_equal(_ranking(at1.score(rows)), pop)
        assert not np.array_equal(_ranking(base.score(rows)), pop)  # so the two checks differ


def test_intermediate_weight_mixes_both_lists(fold):
    """w = 0.5 ranks differently from both ends (the blend is not a switch)."""
    view, _ = fold
    rows = view.test_users
    runs = {w: RecBoleModel(RecBoleConfig(model="EASE", reg_weight=10.0, pop_blend=True, pop_blend_grid=[w]), seed=0).fit(view)
            for w in (0.0, 0.5, 1.0)}
    r = {w: _ranking(m.score(rows))[:, :5] for w, m in runs.items()}
    assert not np.array_equal(r[0.5], r[0.0]) and not np.array_equal(r[0.5], r[1.0])


def test_chosen_weight_is_low_on_the_planted_fixture_and_high_where_popularity_is_right(contract_fold):
    """Planted (the contract fixture): source history decides the books, the model wins.
    Null fixture: each user's book group is drawn independently of their source history
    (``planted=False``) and 90% read one of three global books, so Popularity is the right
    answer. (The contract's shuffled twin is no such fixture: it has no strong head, and
    there ItemKNN's hold-out curve is flat within noise, 0.432-0.454.)"""
    cfg = RecBoleConfig(model="ItemKNN", k=400, shrink=100.0, pop_blend=True)
    planted = RecBoleModel(cfg, seed=0).fit(contract_fold[0]).fit_info
    null_view, _ = planted_scenario(n_users=800, n_groups=10, planted=False, n_popular=3, popular_rate=0.9).fold()
    null = RecBoleModel(cfg, seed=0).fit(null_view).fit_info
    print("planted", planted["pop_blend_curve"], "null", null["pop_blend_curve"])
    assert planted["pop_blend_w"] <= 0.2, planted["pop_blend_curve"]
    assert null["pop_blend_w"] >= 0.7, null["pop_blend_curve"]


def test_bad_blend_configs_fail_clearly():
    with pytest.raises(ValueError, match="pop_blend_grid"):
        RecBoleConfig(pop_blend=True, pop_blend_grid=[0.0, 1.5])
    with pytest.raises(ValueError, match="pop_blend_grid"):
        RecBoleConfig(pop_blend=True, pop_blend_grid=[])
    with pytest.raises(ValueError, match="holdout_share"):
        RecBoleConfig(model="EASE", pop_blend=True, holdout_share=0.0)
