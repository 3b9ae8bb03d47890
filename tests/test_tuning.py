"""The Ray Tune harness: same budget for every model, seeded draws, best-on-validation choice.

Runs a real local Ray with two workers (the CI machine's cores) on the tiny planted fold.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.config.specs import load_spec
from benchmark.experiment.tuning import Budget, draw_configs, tune_models, validation_score
from conftest import planted_scenario


def test_draws_are_seeded_per_model_and_inside_the_space():
    spec = load_spec("collopop-artist")
    a = draw_configs(spec, 5, seed=0, fold=1)
    assert a == draw_configs(spec, 5, seed=0, fold=1)
    assert a != draw_configs(spec, 5, seed=0, fold=2)
    lo, hi = spec.search_space["alpha"]["low"], spec.search_space["alpha"]["high"]
    assert all(lo <= c["alpha"] <= hi for c in a)
    mv = load_spec("map2t-full")
    for c in draw_configs(mv, 4, 0, 0):
        assert c["top_k"] in mv.search_space["top_k"]["values"]


@pytest.fixture(scope="module")
def folds():
    p = planted_scenario(seed=0, n_users=160)
    return {(0, f): p.fold(f) for f in (0, 1)}


def test_sweep_gives_every_model_the_same_budget_and_picks_the_best(folds):
    import ray

    specs = [load_spec(k) for k in ("popularity", "collopop-artist", "userknn", "map2t-music-book")]
    budget = Budget(n_trials=3, time_budget_s=120, metric="NDCG@10", tune_folds=1)
    try:
        out = tune_models(specs, folds, budget, desc="test sweep")
    finally:
        ray.shutdown()
    for key in ("collopop-artist", "userknn"):
        rec = out[(key, 0, 0)]
        assert rec["n_trials"] == 3 and len(rec["trials"]) == 3
        assert rec["best_value"] == max(t["value"] for t in rec["trials"])
        assert all(t["seconds"] > 0 for t in rec["trials"])  # the profile reads trial times from the records
        assert rec["chosen_config"] == max(rec["trials"], key=lambda t: t["value"])["config"]
        assert [t["config"] for t in rec["trials"]] == draw_configs(load_spec(key), 3, 0, 0)
        # fold 1 is outside tune_folds: it reuses fold 0's choice and says so
        assert out[(key, 0, 1)]["tuned_on"] == [0, 0]
        # the value Ray reported is the evaluator's validation score for that config
        view, truth = folds[(0, 0)]
        again = validation_score(load_spec(key), rec["chosen_config"], view, truth, "NDCG@10", 0)
        assert np.isclose(again, rec["best_value"])
    assert out[("popularity", 0, 0)]["n_trials"] == 0
    # tune_from specs are not swept here; the runner resolves them from their target
    assert out[("map2t-music-book", 0, 0)]["n_trials"] == 0


def test_trial_zero_is_every_models_card_default_inside_its_space():
    """Every tuned spec: the card default is a legal point of its space and the first trial."""
    from benchmark.config import paths
    from benchmark.experiment.tuning import default_config

    keys = sorted(p.stem for p in paths.MODEL_CARDS.glob("*.yaml"))
    tuned = [load_spec(k) for k in keys]
    tuned = [s for s in tuned if s.search_space and not s.tune_from]
    assert len(tuned) >= 15
    for spec in tuned:
        first = draw_configs(spec, 3, seed=1, fold=2)[0]
        assert first == default_config(spec)
        assert set(first) == set(spec.search_space)


def test_a_default_outside_the_space_is_a_spec_error():
    import dataclasses

    from benchmark.experiment.tuning import default_config

    spec = load_spec("itemknn")
    bad = dataclasses.replace(spec, config={**spec.config, "k": 7})
    with pytest.raises(ValueError, match="outside its search_space"):
        default_config(bad)
