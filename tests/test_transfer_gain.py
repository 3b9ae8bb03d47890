"""Transfer gain (benchmark/report/transfer.py) on the planted cross-domain fixture and its null twin.

The contract fixture (tests/conftest.py ``contract_planted``) plants target taste as a
function of source taste; its twin is built by the scenario stage's own permutation
(benchmark/scenarios/twin.py, the same rule as conftest's ``shuffled_twin``: source
histories permuted within cohort, target rows and folds kept). Each model is fitted on
the real fold and on the twin fold with the same config, and its per-user NDCG@10 on
the two goes through the report's function. What must come out, and why each can fail:

* a model that reads the source history (ColloPop-Artist, UserKNN) has a gain
  significantly above zero: the planted link is real and the twin cuts it;
* Popularity's gain is exactly zero, on every user: it ignores source history, and the
  twin keeps every target row (a twin that touched the target side would break this);
* a model that ignores source history but is not Popularity (:class:`RatingMass`) also
  has exactly zero gain: the instrument measures source use, not model identity.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation.evaluate import evaluate_model
from benchmark.experiment import registry
from benchmark.models.base import Recommender
from benchmark.report.transfer import NO_TRANSFER, NO_TWIN, paired_rows, transfer_gains
from benchmark.scenarios import twin as null_twin
from benchmark.scenarios.protocol import TrainView
from conftest import view_of

METRIC = "NDCG@10"
KEYS = ["popularity", "collopop-artist", "userknn"]


class RatingMass(Recommender):
    """Ranks books by the summed rating of training users: history-free, but not Popularity's list."""

    history_free = True

    def fit(self, view: TrainView) -> "RatingMass":
        mass = np.asarray(view.target_train.sum(axis=0)).ravel().astype(np.float64)
        self._scores = mass + 1e-6 * np.arange(len(mass))[::-1]
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._scores, (len(user_rows), len(self._scores))).copy()


def _per_user(name: str, model: Recommender, view, truth) -> pd.DataFrame:
    model.fit(copy.deepcopy(view))
    pu, _ = evaluate_model(model, view.test_users, truth.test, [10], view.popularity())
    return pd.DataFrame({"model": name, "seed": view.seed, "fold": view.fold,
                         "user": view.users[view.test_users].astype(str), METRIC: pu[METRIC].to_numpy()})


@pytest.fixture(scope="module")
def frames(contract_fold):
    _, _, planted = contract_fold
    tables = planted.tables()
    sources = tables["meta"]["source_domains"]
    twin_inter, perm = null_twin.permute_sources(tables["interactions"], sources, null_twin.twin_seed(planted.name))
    assert (perm["user"] != perm["donor"]).mean() > 0.9
    twin_tables = {**tables, "interactions": twin_inter}
    real_view, real_truth = view_of(tables)
    twin_view, twin_truth = view_of(twin_tables)
    real, twin = [], []
    for key in KEYS:
        spec = registry.checked_spec(key)
        real.append(_per_user(key, registry.build(spec, seed=0), real_view, real_truth))
        twin.append(_per_user(key, registry.build(spec, seed=0), twin_view, twin_truth))
    real.append(_per_user("rating-mass", RatingMass(), real_view, real_truth))
    twin.append(_per_user("rating-mass", RatingMass(), twin_view, twin_truth))
    return pd.concat(real, ignore_index=True), pd.concat(twin, ignore_index=True)


@pytest.fixture(scope="module")
def gains(frames) -> pd.DataFrame:
    real, twin = frames
    return transfer_gains(real, twin, METRIC, n_boot=500, alpha=0.05).set_index("model")


@pytest.mark.parametrize("key", ["collopop-artist", "userknn"])
def test_a_transfer_model_has_a_significant_positive_gain(gains, key):
    g = gains.loc[key]
    print(f"{key}: gain {g['gain']:+.4f} [{g['gain_lo']:+.4f}, {g['gain_hi']:+.4f}], Holm p={g['p_holm']:.4g}")
    assert g["gain"] > 0 and g["gain_lo"] > 0, f"{key}: interval {g['gain_lo']:.4f}..{g['gain_hi']:.4f} not above 0"
    assert g["p_holm"] <= 0.05 and bool(g["transfer"]) and g["mark"] == ""


@pytest.mark.parametrize("key", ["popularity", "rating-mass"])
def test_a_history_free_model_has_exactly_zero_gain(gains, frames, key):
    g = gains.loc[key]
    assert g["gain"] == 0.0 and g["gain_lo"] == 0.0 and g["gain_hi"] == 0.0 and g["n_changed"] == 0
    assert g["p"] == 1.0 and not bool(g["transfer"]) and g["mark"] == NO_TRANSFER
    real, twin = frames
    a, b = real[real["model"] == key], twin[twin["model"] == key]
    assert a[METRIC].to_numpy().tolist() == b[METRIC].to_numpy().tolist()
    assert (a[METRIC] > 0).any(), f"{key} scores nothing: a zero gain would then be vacuous"


def test_rating_mass_is_not_popularity(frames):
    """The second history-free model must rank differently, or its test would repeat Popularity's."""
    real, _ = frames
    a = real.loc[real["model"] == "popularity", METRIC].to_numpy()
    b = real.loc[real["model"] == "rating-mass", METRIC].to_numpy()
    assert not np.array_equal(a, b)


def test_twin_runs_must_score_the_real_runs_users(frames):
    real, twin = frames
    r, t = real[real["model"] == "userknn"], twin[twin["model"] == "userknn"]
    with pytest.raises(ValueError, match="scores other users than the real run"):
        paired_rows(r, t.iloc[1:])
    assert len(paired_rows(r, t)) == len(r)


def test_a_model_without_twin_runs_is_marked_and_left_out_of_holm(frames):
    real, twin = frames
    out = transfer_gains(real, twin[twin["model"] != "userknn"], METRIC, n_boot=50).set_index("model")
    assert out.loc["userknn", "mark"] == NO_TWIN and np.isnan(out.loc["userknn", "gain"])
    # Holm over three tested models, not four: the adjusted p of the smallest p is 3 x p (or 1).
    tested = out.dropna(subset=["p"])
    assert len(tested) == 3
    smallest = tested["p"].idxmin()
    assert out.loc[smallest, "p_holm"] == pytest.approx(min(1.0, 3 * tested["p"].min()))
