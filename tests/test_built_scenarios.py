"""Checks on the built scenarios under data/scenarios and their dataset cards (marker ``built``).

Run with ``pytest -m built`` after ``dvc repro``; the default run deselects them. Every
scenario listed in params.yaml is checked, and a missing output is a failure, not a skip:
these guard the protocol on the actual data. No valid/test user's target rows reach any
training input of any fold, every fold's catalog comes from its training users only,
roles are disjoint, every evaluable user is tested exactly once per seed, test users have
something to be evaluated on, and the cards describe the tables (SEMI-SYNTHETIC banner
for the linked scenarios).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from benchmark.config import paths
from benchmark.scenarios.twin import REAL_BUILDERS
from benchmark.config.params import load_params
from benchmark.scenarios.protocol import load_fold
from benchmark.scenarios.schema import ROLES, TARGET
from conftest import load_built

pytestmark = pytest.mark.built

PARAMS = load_params(paths.PARAMS)
SCENARIOS = list(PARAMS.scenarios)
TIME_CUT = [n for n, s in PARAMS.scenarios.items() if getattr(s, "time_cut", False)]


@pytest.mark.parametrize("name", SCENARIOS)
def test_meta_is_built_from_the_current_params(name):
    t = load_built(name)
    spec, meta = PARAMS.scenario(name), t["meta"]
    assert meta["name"] == name and meta["target_domain"] == TARGET
    assert meta["params"] == json.loads(json.dumps({**spec.model_dump(), "protocol": PARAMS.protocol.model_dump()})), \
        f"{name}: built from other params than params.yaml; rerun `dvc repro`"
    assert bool(meta["semi_synthetic"]) == (spec.builder == "linked")
    assert TARGET not in meta["source_domains"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_roles_disjoint_and_each_user_tested_once(name):
    t = load_built(name)
    folds, users = t["folds"], t["users"]
    evaluable = set(users.loc[users["evaluable"], "user"])
    assert evaluable, f"{name}: no evaluable user"
    assert set(folds["user"]) == evaluable, f"{name}: folds must cover exactly the evaluable users"
    assert set(folds["role"]) <= set(ROLES)
    expected = set(itertools.product(PARAMS.protocol.seeds, range(PARAMS.protocol.k)))
    assert set(map(tuple, folds[["seed", "fold"]].drop_duplicates().to_numpy().tolist())) == expected
    for (seed, fold), g in folds.groupby(["seed", "fold"]):
        assert g["user"].is_unique, f"{name} s{seed} f{fold}: a user has two roles"
        assert set(g["user"]) == evaluable
    for seed, g in folds.groupby("seed"):
        tested = g.loc[g["role"] == "test", "user"]
        assert tested.is_unique and set(tested) == evaluable, f"{name} seed {seed}: not every evaluable user tested exactly once"


@pytest.mark.parametrize("name", SCENARIOS)
def test_evaluable_users_have_source_and_target(name):
    t = load_built(name)
    inter, users = t["interactions"], t["users"]
    ev = set(users.loc[users["evaluable"], "user"])
    pos_users = set(inter.loc[(inter["domain"] == TARGET) & inter["positive"], "user"])
    src_users = set(inter.loc[inter["domain"].isin(t["meta"]["source_domains"]), "user"])
    assert ev <= pos_users, f"{name}: an evaluable user has no target positive"
    assert ev <= src_users, f"{name}: an evaluable user has no source history"
    assert (inter["item"].str.split(":").str[0] == inter["domain"]).all()


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_target_leakage_in_any_fold(name):
    """Per fold: held-out users' target rows are empty, and the catalog is the training users'."""
    folder, t = paths.SCENARIOS / name, load_built(name)
    min_support = PARAMS.scenario(name).min_support
    inter, folds = t["interactions"], t["folds"]
    tgt = inter[(inter["domain"] == TARGET) & inter["positive"]]
    for (seed, fold), g in folds.groupby(["seed", "fold"]):
        view, truth = load_fold(folder, int(seed), int(fold), min_support, tables=t)
        where = f"{name} s{seed} f{fold}"
        held = g.loc[g["role"].isin(["valid", "test"]), "user"]
        rows = view.users.get_indexer(held)
        assert (rows >= 0).all()
        assert view.target_train[rows].nnz == 0, f"{where}: held-out users have target rows in training"
        train_rows = np.setdiff1d(np.arange(view.n_users), rows)
        assert set(view.train_users) == set(train_rows)
        assert not set(view.valid_users) & set(view.test_users)
        assert not set(view.train_users) & (set(view.valid_users) | set(view.test_users))
        # The catalog, recomputed from the training users' positives only (users outside the
        # folds table are training users in every fold), with the scenario's support rule.
        held_set = set(held)
        support = tgt[~tgt["user"].isin(held_set)].groupby("item")["user"].nunique()
        assert set(view.catalog) == set(support[support >= min_support].index), f"{where}: catalog not from training users"
        # popularity counts training users only, and equals that support
        np.testing.assert_array_equal(view.popularity(), support.reindex(view.catalog).to_numpy(dtype=float))
        # no target item among the source inputs
        for d, items in view.source_items.items():
            assert pd.Series(items).str.startswith(f"{d}:").all(), f"{where}: non-{d} items in the {d} input"
        # every evaluated test user has >= 1 positive in the truth, and the drop count adds up
        assert (np.diff(truth.test.indptr) > 0).all()
        assert len(view.test_users) + truth.dropped["test"] == int((g["role"] == "test").sum())
        assert len(view.valid_users) + truth.dropped["valid"] == int((g["role"] == "valid").sum())


@pytest.mark.parametrize("name", TIME_CUT)
def test_time_cut_holds(name):
    t = load_built(name)
    inter, users = t["interactions"], t["users"]
    ev = set(users.loc[users["evaluable"], "user"])
    first_book = inter[inter["domain"] == TARGET].groupby("user")["timestamp"].min()
    # every source domain (music, and the second modality of a multi-source scenario) is cut
    m = inter[(inter["domain"] != TARGET) & inter["user"].isin(ev)]
    assert len(m) > 0 and set(m["domain"]) >= {"music"}
    assert (m["timestamp"].to_numpy() < m["user"].map(first_book).to_numpy()).all()


@pytest.mark.parametrize("name", SCENARIOS)
def test_card_matches_tables(name):
    folder, t = paths.SCENARIOS / name, load_built(name)
    card_dir = paths.DATASET_CARDS / name
    for f in ("card.json", "CARD.md"):
        assert (card_dir / f).exists(), f"dataset card {card_dir / f} absent; run `dvc repro` (stage scenario)"
    card = json.loads((card_dir / "card.json").read_text())
    md = (card_dir / "CARD.md").read_text()
    assert card["name"] == name
    assert card["evaluable_users"] == int(t["users"]["evaluable"].sum())
    assert card["users_total"] == len(t["users"])
    for dom, g in t["interactions"].groupby("domain"):
        assert card["domains"][dom]["interactions"] == len(g)
    semi = PARAMS.scenario(name).builder == "linked"
    assert card["semi_synthetic"] == semi == bool(t["meta"]["semi_synthetic"])
    if semi:
        assert md.startswith("**SEMI-SYNTHETIC"), f"{card_dir / 'CARD.md'} lacks the SEMI-SYNTHETIC banner"
        assert card["banner"] and card["banner"] in md
        lk = pd.read_parquet(folder / "linkage.parquet")
        assert set(lk["user"]) == set(t["users"]["user"])
    else:
        assert "SEMI-SYNTHETIC" not in md and not card["banner"]


# ---------------------------------------------------------------- null twins (benchmark/scenarios/twin.py)

REAL = [n for n, s in PARAMS.scenarios.items() if s.builder in REAL_BUILDERS]  # real people: real and multi
LINKED = [n for n in SCENARIOS if n not in REAL]


def _twin_dir(name):
    from benchmark.scenarios.twin import TWIN_DIR

    return paths.SCENARIOS / name / TWIN_DIR


def _histories(inter: pd.DataFrame, sources: list[str]) -> dict[str, tuple]:
    src = inter[inter["domain"].isin(sources)]
    return {u: tuple(zip(g["item"], g["value"], g["timestamp"].astype("float64").fillna(-1))) for u, g in src.groupby("user")}


@pytest.mark.parametrize("name", REAL)
def test_twin_keeps_the_target_side_and_moves_whole_source_histories(name):
    """Target tables byte-identical; only source rows change, and only by whole histories within a cohort."""
    import hashlib

    from benchmark.scenarios.protocol import load_scenario
    from benchmark.scenarios.schema import SCENARIO_FILES, scenario_hash
    from benchmark.scenarios.twin import PERMUTATION_FILE, source_cohorts, twin_seed

    real_dir, twin_dir = paths.SCENARIOS / name, _twin_dir(name)
    missing = [f for f in (*SCENARIO_FILES, PERMUTATION_FILE) if not (twin_dir / f).exists()]
    assert not missing, f"{name}: null twin lacks {missing} under {twin_dir}; run `dvc repro` (stage scenario)"
    for f in ("users.parquet", "folds.parquet", "items.parquet"):
        a, b = ((d / f).read_bytes() for d in (real_dir, twin_dir))
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), f"{name}: twin {f} differs from the real one"
    real, twin = load_built(name), load_scenario(twin_dir)
    sources = real["meta"]["source_domains"]
    ri, ti = real["interactions"], twin["interactions"]
    assert len(ri) == len(ti)
    not_src = lambda df: df[~df["domain"].isin(sources)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(not_src(ri), not_src(ti), obj=f"{name}: target rows of the twin")
    # cohort sizes, and every user's own cohort, are kept
    rc, tc = source_cohorts(ri, sources), source_cohorts(ti, sources)
    pd.testing.assert_series_equal(rc, tc, obj=f"{name}: source cohort per user")
    # every user holds exactly their donor's whole real history; donors are a permutation within cohort
    perm = pd.read_parquet(twin_dir / PERMUTATION_FILE)
    assert sorted(perm["donor"]) == sorted(perm["user"]) == sorted(rc.index)
    assert (perm["user"].map(rc) == perm["donor"].map(rc)).all(), f"{name}: a history crossed cohorts"
    hr, ht = _histories(ri, sources), _histories(ti, sources)
    assert all(ht[u] == hr[d] for u, d in zip(perm["user"], perm["donor"])), f"{name}: a history did not move whole"
    moved = int((perm["user"] != perm["donor"]).sum())
    assert moved > 0.9 * len(perm), f"{name}: only {moved} of {len(perm)} users got another user's history"
    # meta: the real one plus the twin's facts; the card names the twin
    meta = dict(twin["meta"])
    nt = meta.pop("null_twin")
    assert meta == real["meta"]
    assert nt["of"] == name and nt["seed"] == twin_seed(name) and nt["users_moved"] == moved
    assert nt["real_scenario_hash"] == scenario_hash(real_dir)
    card = json.loads((paths.DATASET_CARDS / name / "card.json").read_text())
    assert card["null_twin"]["scenario_hash"] == scenario_hash(twin_dir) and card["null_twin"]["users_moved"] == moved
    assert "## Null twin" in (paths.DATASET_CARDS / name / "CARD.md").read_text()


@pytest.mark.parametrize("name", REAL)
def test_twin_folds_have_the_real_catalogs_and_truth(name):
    from benchmark.scenarios.protocol import load_scenario

    real, twin = load_built(name), load_scenario(_twin_dir(name))
    min_support = PARAMS.scenario(name).min_support
    for (seed, fold), _ in real["folds"].groupby(["seed", "fold"]):
        v1, t1 = load_fold(paths.SCENARIOS / name, int(seed), int(fold), min_support, tables=real)
        v2, t2 = load_fold(_twin_dir(name), int(seed), int(fold), min_support, tables=twin)
        where = f"{name} s{seed} f{fold}"
        assert list(v1.catalog) == list(v2.catalog), f"{where}: twin catalog differs"
        assert list(v1.users) == list(v2.users) and np.array_equal(v1.test_users, v2.test_users)
        assert np.array_equal(v1.valid_users, v2.valid_users) and np.array_equal(v1.cohort, v2.cohort)
        assert (v1.target_train != v2.target_train).nnz == 0 and (t1.test != t2.test).nnz == 0 and t1.dropped == t2.dropped
        for d in v1.source_domains:
            assert list(v1.source_items[d]) == list(v2.source_items[d]) and v1.source[d].nnz == v2.source[d].nnz
            changed = np.asarray((v1.source[d] != v2.source[d]).sum(axis=1)).ravel() > 0
            # users without a history in d (a multi-source scenario's p-only or m-only cohort) swap
            # empty rows with each other: only users who hold a d history can show a move
            holds = np.asarray(v1.source[d].getnnz(axis=1)).ravel() > 0
            tested = v1.test_users[holds[v1.test_users]]
            assert changed[tested].mean() > 0.9, f"{where}: the twin left most test users' {d} history in place"


@pytest.mark.parametrize("name", LINKED)
def test_linked_scenarios_have_no_twin(name):
    assert not _twin_dir(name).exists(), f"{name}: a semi-synthetic scenario has no twin (rho = 0 is its control)"
    assert "null_twin" not in json.loads((paths.DATASET_CARDS / name / "card.json").read_text())
