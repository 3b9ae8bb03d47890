"""Leakage checks on the real pipeline outputs (skipped until `dvc repro` has built them).

Three places a cold user's target data could leak into learning: the pretrained
source-domain towers, the text features, and the run records (a test user must be
scored only in the fold where they are a test user). Each is checked on the built
files, not on toy inputs.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark import paths
from benchmark.schema import read_meta

SCENARIOS = sorted(p.name for p in paths.SCENARIOS.glob("*") if (p / "meta.json").exists()) if paths.SCENARIOS.exists() else []

pytestmark = pytest.mark.skipif(not SCENARIOS, reason="no built scenarios under data/scenarios (run `dvc repro`)")


@pytest.mark.parametrize("name", SCENARIOS)
def test_pretrained_towers_hold_source_items_only(name):
    folder = paths.PRETRAIN / name
    if not folder.exists():
        pytest.skip(f"{name}: pretrain stage not built")
    meta = read_meta(paths.SCENARIOS / name)
    files = sorted(folder.glob("*.parquet"))
    assert {f.stem for f in files} == set(meta["source_domains"])
    for f in files:
        items = pd.read_parquet(f, columns=["item"])["item"]
        assert items.str.startswith(f"{f.stem}:").all(), f"{f}: holds items of another domain"
        assert not items.str.startswith(f"{meta['target_domain']}:").any()


@pytest.mark.parametrize("name", SCENARIOS)
def test_pretrained_vectors_cover_exactly_the_scenario_source_items(name):
    """One vector row per source item of the scenario, and no target item anywhere."""
    if not (paths.PRETRAIN / name).exists():
        pytest.skip(f"{name}: pretrain stage not built")
    inter = pd.read_parquet(paths.SCENARIOS / name / "interactions.parquet", columns=["item", "domain"])
    for domain in read_meta(paths.SCENARIOS / name)["source_domains"]:
        items = set(pd.read_parquet(paths.PRETRAIN / name / f"{domain}.parquet", columns=["item"]).item)
        assert items == set(inter[inter.domain == domain].item)


@pytest.mark.parametrize("name", SCENARIOS)
def test_run_records_score_each_user_only_in_their_test_fold(name):
    runs = paths.RUNS / name
    if not runs.exists():
        pytest.skip(f"{name}: run stage not built")
    folds = pd.read_parquet(paths.SCENARIOS / name / "folds.parquet")
    checked = 0
    for per_user in sorted(runs.glob("*/s*_f*/per_user.parquet")):
        rec = json.loads((per_user.parent / "record.json").read_text())
        f = folds[(folds.seed == rec["seed"]) & (folds.fold == rec["fold"])]
        test_users = set(f[f.role == "test"].user)
        users = set(pd.read_parquet(per_user, columns=["user"]).user)
        assert users <= test_users, f"{per_user}: scores users that are not test users of that fold"
        assert len(users) == rec["n_test_users"] == len(test_users) - rec["n_dropped_test"]
        checked += 1
    assert checked > 0
