"""Checks on the run records under results/runs (marker ``built``).

Run with ``pytest -m built`` after ``dvc repro``; a missing output is a failure. For every
scenario of params.yaml: each applicable model of ``models`` has one complete record per
(seed, fold), carrying the provenance the report relies on (the required keys, the spec's
display name, the setting, a config hash that matches its config, the hash of the
scenario it ran on); and each record scores exactly the fold's test users (minus the
dropped ones), never a valid or training user of that fold. Scored submissions under
results/external are held to the same per-user rule.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import paths
from benchmark.scenarios.twin import REAL_BUILDERS
from benchmark.config.params import load_params
from benchmark.config.specs import discover, load_spec
from benchmark.evaluation.records import REQUIRED_KEYS, config_hash
from benchmark.experiment.tuning import Budget, tuning_source
from benchmark.scenarios.schema import scenario_hash
from conftest import load_built

pytestmark = pytest.mark.built

PARAMS = load_params(paths.PARAMS)
SCENARIOS = list(PARAMS.scenarios)
RECORD_KEYS = set(REQUIRED_KEYS) | {"display_name", "setting"}
BUDGET = Budget.from_params(PARAMS.tuning)


def records_of(root: Path, name: str) -> dict[Path, dict]:
    return {p.parent: json.loads(p.read_text()) for p in sorted((Path(root) / name).glob("*/s*_f*/record.json"))}


def runs_of(name: str) -> dict[Path, dict]:
    folder = paths.RUNS / name
    assert folder.is_dir(), f"no run records of {name} under {folder}; run `dvc repro` (stage run)"
    recs = records_of(paths.RUNS, name)
    assert recs, f"{folder} holds no run record"
    return recs


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_applicable_model_has_one_record_per_fold(name):
    t = load_built(name)
    recs = runs_of(name)
    keys = PARAMS.model_keys(discover())
    applicable = [k for k in keys if load_spec(k).applicable(t["meta"]["source_domains"])]
    evaluated = range(min(PARAMS.protocol.k, PARAMS.evaluation.folds or PARAMS.protocol.k))  # CI: fold 0 only
    expected = set(itertools.product(applicable, PARAMS.protocol.seeds, evaluated))
    got = {(r["model"], r["seed"], r["fold"]) for r in recs.values()}
    assert got == expected, f"{name}: missing {sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}"
    for folder, r in recs.items():
        assert folder.name == f"s{r['seed']}_f{r['fold']}" and folder.parent.name == r["model"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_records_carry_their_provenance(name):
    t = load_built(name)
    recs = runs_of(name)
    built_hash = scenario_hash(paths.SCENARIOS / name)
    for folder, r in recs.items():
        missing = sorted(RECORD_KEYS - set(r))
        assert not missing, f"{folder}/record.json lacks {missing}"
        assert isinstance(r["config_hash"], str) and r["config_hash"], f"{folder}: empty config_hash"
        assert r["config_hash"] == config_hash(r["config"]), f"{folder}: config_hash does not match its config"
        spec = load_spec(r["model"])
        assert r["display_name"] == spec.display_name and r["class"] == spec.cls and r["family"] == spec.family
        assert r["setting"] == PARAMS.setting, f"{folder}: run in setting {r['setting']!r}, params say {PARAMS.setting!r}"
        assert r["scenario"] == name and r["scenario_hash"] == built_hash, f"{folder}: ran on another build of {name}"
        assert r["n_folds"] == PARAMS.protocol.k and r["seeds_setting"] == list(PARAMS.protocol.seeds)
        assert r["min_support"] == PARAMS.scenario(name).min_support
        assert r["external"] is False
        assert r["semi_synthetic"] == bool(t["meta"]["semi_synthetic"])


def tuning_population(t: dict, seed: int, fold: int, min_support: int) -> set[str]:
    """The validation users of (seed, fold) that a configuration tuned there was scored on.

    Why not every user with role "valid": a validation user without a positive in that
    fold's target catalog (the items at least ``min_support`` of its training users hold as
    positives) is dropped from validation and never scored while tuning. Under another
    fold's catalog the same user can be a test user, and scoring them there uses nothing
    they contributed to the choice. Computed here from the tables, apart from the protocol
    code; ``check_users`` cross-checks the count against the tuning fold's own records.
    """
    roles = t["folds"][(t["folds"].seed == seed) & (t["folds"].fold == fold)]
    role_of = dict(zip(roles.user.astype(str), roles.role))
    inter = t["interactions"]
    pos = inter[(inter.domain == t["meta"].get("target_domain", "book")) & inter.positive]
    role = pos.user.astype(str).map(role_of).fillna("train")
    support = pos[role == "train"].groupby("item").user.nunique()
    catalog = set(support[support >= min_support].index)
    return set(pos[(role == "valid") & pos.item.isin(catalog)].user.astype(str))


def check_users(name: str, folds: pd.DataFrame, recs: dict[Path, dict], t: dict | None = None) -> int:
    """Per record: scored users == the fold's test users minus the dropped; return records checked.

    With the scenario's tables ``t``, a record whose fold reused another fold's tuning must
    not score the users that tuning was scored on (:func:`tuning_population`).
    """
    tested, populations = {}, {}
    by_slot = {(r["model"], r["seed"], r["fold"]): r for r in recs.values()}
    for folder, r in recs.items():
        f = folds[(folds.seed == r["seed"]) & (folds.fold == r["fold"])]
        where = f"{folder} (seed {r['seed']}, fold {r['fold']})"
        assert len(f), f"{where}: no such fold in data/scenarios/{name}/folds.parquet"
        test_users = set(f[f.role == "test"].user)
        others = set(f[f.role != "test"].user)
        per_user = pd.read_parquet(folder / "per_user.parquet", columns=["user"]).user
        users = set(per_user)
        assert per_user.is_unique, f"{where}: a user scored twice"
        assert not users & others, f"{where}: scores valid/train users of that fold, e.g. {sorted(users & others)[:3]}"
        assert users <= test_users, f"{where}: scores users that are not test users of that fold"
        excluded = r.get("n_excluded_tuning_users", 0)
        assert len(users) == r["n_test_users"] == len(test_users) - r["n_dropped_test"] - excluded
        src = tuning_source(r["seed"], r["fold"], PARAMS.protocol.seeds, BUDGET)
        if not r["external"] and t is not None and src != (r["seed"], r["fold"]):
            if src not in populations:  # never scored on the users its configuration was chosen on
                populations[src] = tuning_population(t, *src, r["min_support"])
            tuned_on = set(map(str, users)) & populations[src]
            assert not tuned_on, f"{where}: scores users its tuning fold {src} validated on, e.g. {sorted(tuned_on)[:3]}"
            own = by_slot.get((r["model"], *src))
            if own is not None:  # the independent count agrees with the tuning fold's own record
                assert own["n_valid_users"] == len(populations[src]), (
                    f"{where}: tuning fold {src} validated {own['n_valid_users']} users, the tables give {len(populations[src])}")
        topk = set(pd.read_parquet(folder / "topk.parquet", columns=["user"]).user)
        assert topk <= users, f"{where}: ranked lists of users without metrics"
        for u in users:  # each user is scored in one fold per (model, seed): their test fold
            key = (r["model"], r["seed"], u)
            assert key not in tested, f"{where}: user {u} also scored in fold {tested.get(key)}"
            tested[key] = r["fold"]
    return len(recs)


@pytest.mark.parametrize("name", SCENARIOS)
def test_run_records_score_each_user_only_in_their_test_fold(name):
    t = load_built(name)
    recs = runs_of(name)
    assert check_users(name, t["folds"], recs, t) == len(recs) > 0


@pytest.mark.parametrize("name", SCENARIOS)
def test_scored_submissions_score_only_test_users(name):
    """Scored submissions (results/external, when present) obey the same per-user rule."""
    recs = records_of(paths.EXTERNAL, name)
    folds = load_built(name)["folds"]
    check_users(name, folds, recs)
    for folder, r in recs.items():
        assert r["external"] is True and r["model"].startswith("external-"), folder
        assert r["scenario_hash"] == scenario_hash(paths.SCENARIOS / name), f"{folder}: scored on another build"


@pytest.mark.parametrize("name", SCENARIOS)
def test_pop_rows_of_trained_models_share_their_base_fit(name):
    """A "+Pop" row fitted with its base (one fit, two rows) carries the base's training exactly."""
    recs = {(r["model"], r["seed"], r["fold"]): r for r in runs_of(name).values()}
    shared = [(k, r) for k, r in recs.items() if r["fit_info"].get("fit_shared_with")]
    trained = {"bpr-pop", "lightgcn-pop", "multivae-pop"} & set(PARAMS.model_keys(discover()))
    # Only trained models share (ItemKNN/EASE "+Pop" fits hold users out, their base fits do not);
    # a rider re-run alone (its base's records kept) fits on its own.
    assert {k[0] for k, _ in shared} <= trained, f"{name}: shared fits {sorted({k[0] for k, _ in shared})}"
    for (model, seed, fold), r in shared:
        base = recs[(r["fit_info"]["fit_shared_with"], seed, fold)]
        for key in ("chosen_epoch", "epochs_run", "holdout_curve", "n_interactions"):
            assert r["fit_info"][key] == base["fit_info"][key], f"{name} {model} s{seed}_f{fold}: {key} differs from its base"


# ---------------------------------------------------------------- null-twin runs (results/twins)

REAL = [n for n, s in PARAMS.scenarios.items() if s.builder in REAL_BUILDERS]  # real people: real and multi
LINKED = [n for n in SCENARIOS if n not in REAL]


def twin_runs_of(name: str) -> dict[Path, dict]:
    folder = paths.TWINS / name
    assert folder.is_dir(), f"no twin run records of {name} under {folder}; run `dvc repro` (stage run)"
    return records_of(paths.TWINS, name)


@pytest.mark.parametrize("name", REAL)
def test_twin_runs_exist_for_the_configured_folds(name):
    t = load_built(name)
    recs = twin_runs_of(name)
    keys = PARAMS.model_keys(discover())
    applicable = [k for k in keys if load_spec(k).applicable(t["meta"]["source_domains"])]
    n = PARAMS.twins.folds
    evaluated = min(PARAMS.protocol.k, PARAMS.evaluation.folds or PARAMS.protocol.k)
    folds = range(evaluated) if n is None else range(min(n, evaluated))
    expected = set(itertools.product(applicable, PARAMS.protocol.seeds, folds))
    got = {(r["model"], r["seed"], r["fold"]) for r in recs.values()}
    assert got == expected, f"{name} twins: missing {sorted(expected - got)[:5]}, unexpected {sorted(got - expected)[:5]}"


@pytest.mark.parametrize("name", REAL)
def test_twin_runs_use_the_real_runs_tuned_config_on_the_twin(name):
    """Same config (hash) and tuning as the real run of that (model, seed, fold), on the twin's build, same users."""
    from benchmark.scenarios.twin import TWIN_DIR

    real = {(r["model"], r["seed"], r["fold"]): (f, r) for f, r in runs_of(name).items()}
    twin_hash = scenario_hash(paths.SCENARIOS / name / TWIN_DIR)
    recs = twin_runs_of(name)
    assert recs, f"{paths.TWINS / name} holds no twin run record"
    for folder, r in recs.items():
        key = (r["model"], r["seed"], r["fold"])
        assert key in real, f"{folder}: twin run without a real run of {key}"
        rfolder, rr = real[key]
        assert r["config_hash"] == rr["config_hash"] == config_hash(r["config"]), f"{folder}: not the real run's config"
        assert r["tuning"].get("chosen_config") == rr["tuning"].get("chosen_config")
        assert r["scenario"] == name and r["scenario_hash"] == twin_hash, f"{folder}: not run on the built twin"
        assert r["null_twin"]["of"] == name and r["null_twin"]["real_scenario_hash"] == rr["scenario_hash"]
        a = set(pd.read_parquet(rfolder / "per_user.parquet", columns=["user"]).user)
        b = set(pd.read_parquet(folder / "per_user.parquet", columns=["user"]).user)
        assert a == b, f"{folder}: scores other users than the real run {rfolder}"


@pytest.mark.parametrize("name", LINKED)
def test_linked_scenarios_have_no_twin_runs(name):
    assert not twin_runs_of(name), f"{name}: semi-synthetic scenarios have no twin (rho = 0 is their control)"
