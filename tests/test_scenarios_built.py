"""Checks on the real built scenarios under data/scenarios (skipped when not built).

These guard the protocol on the actual data: no valid/test user's target rows reach
any training input, roles are disjoint, every evaluable user is tested exactly once
per seed, and test users have something to be evaluated on.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark import paths
from benchmark.protocol import load_fold, load_scenario
from benchmark.schema import SCENARIO_FILES, TARGET

SCENARIOS = yaml.safe_load(paths.PARAMS.read_text())["scenarios"]


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request):
    name = request.param
    folder = paths.SCENARIOS / name
    if not all((folder / f).exists() for f in SCENARIO_FILES):
        pytest.skip(f"scenario {name} not built (run the scenario stage)")
    return name, folder, load_scenario(folder)


def test_roles_disjoint_and_each_user_tested_once(scenario):
    name, _, t = scenario
    folds, users = t["folds"], t["users"]
    evaluable = set(users.loc[users["evaluable"], "user"])
    assert set(folds["user"]) == evaluable, f"{name}: folds must cover exactly the evaluable users"
    for (seed, fold), g in folds.groupby(["seed", "fold"]):
        assert g["user"].is_unique, f"{name} s{seed} f{fold}: a user has two roles"
        assert set(g["user"]) == evaluable
    for seed, g in folds.groupby("seed"):
        tested = g.loc[g["role"] == "test", "user"]
        assert tested.is_unique and set(tested) == evaluable, f"{name} seed {seed}: not every evaluable user tested exactly once"


def test_evaluable_users_have_source_and_target(scenario):
    name, _, t = scenario
    inter, users = t["interactions"], t["users"]
    ev = set(users.loc[users["evaluable"], "user"])
    pos_users = set(inter.loc[(inter["domain"] == TARGET) & inter["positive"], "user"])
    src_users = set(inter.loc[inter["domain"].isin(t["meta"]["source_domains"]), "user"])
    assert ev <= pos_users, f"{name}: an evaluable user has no target positive"
    assert ev <= src_users, f"{name}: an evaluable user has no source history"
    assert (inter["item"].str.split(":").str[0] == inter["domain"]).all()


def test_no_target_leakage_in_any_fold(scenario):
    name, folder, t = scenario
    min_support = int(SCENARIOS[name].get("min_support", 1))
    folds = t["folds"]
    for (seed, fold), g in folds.groupby(["seed", "fold"]):
        view, truth = load_fold(folder, int(seed), int(fold), min_support, tables=t)
        held = g.loc[g["role"].isin(["valid", "test"]), "user"]
        rows = view.users.get_indexer(held)
        assert (rows >= 0).all()
        assert view.target_train[rows].nnz == 0, f"{name} s{seed} f{fold}: held-out users have target rows in training"
        train_rows = np.setdiff1d(np.arange(view.n_users), rows)
        assert set(view.train_users) == set(train_rows)
        assert not set(view.valid_users) & set(view.test_users)
        assert not set(view.train_users) & (set(view.valid_users) | set(view.test_users))
        # every evaluated test user has >= 1 positive in the truth, and the drop count adds up
        assert (np.diff(truth.test.indptr) > 0).all()
        assert len(view.test_users) + truth.dropped["test"] == int((g["role"] == "test").sum())


def test_time_cut_holds_on_ciao(scenario):
    name, _, t = scenario
    if not SCENARIOS[name].get("time_cut"):
        pytest.skip("no time cut in this scenario")
    inter, users = t["interactions"], t["users"]
    ev = set(users.loc[users["evaluable"], "user"])
    first_book = inter[inter["domain"] == TARGET].groupby("user")["timestamp"].min()
    m = inter[(inter["domain"] == "music") & inter["user"].isin(ev)]
    assert (m["timestamp"].to_numpy() < m["user"].map(first_book).to_numpy()).all()


def test_card_matches_tables(scenario):
    name, _, t = scenario
    card_path = paths.DATASET_CARDS / name / "card.json"
    if not card_path.exists():
        pytest.skip("card not written")
    card = json.loads(card_path.read_text())
    assert card["evaluable_users"] == int(t["users"]["evaluable"].sum())
    assert card["users_total"] == len(t["users"])
    for dom, g in t["interactions"].groupby("domain"):
        assert card["domains"][dom]["interactions"] == len(g)
    assert card["semi_synthetic"] == (SCENARIOS[name]["builder"] == "linked")
    if card["semi_synthetic"]:
        assert (paths.DATASET_CARDS / name / "CARD.md").read_text().startswith("**SEMI-SYNTHETIC")
        lk = pd.read_parquet(paths.SCENARIOS / name / "linkage.parquet")
        assert set(lk["user"]) == set(t["users"]["user"])
