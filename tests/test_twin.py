"""The null twin (benchmark/scenarios/twin.py) on hand-made tables and a built fixture scenario.

What must hold, and what each test would catch: cohorts keep their sizes and nobody
receives a history from another cohort (a mixed permutation would confound "no
transfer" with "other modalities"); a user's whole history moves as one block (rows
split between donors would be a history nobody had); the target rows are untouched; the
permutation is a pure function of the seed; and the scenario stage writes a twin that the
protocol reads with the real scenario's users, folds, catalogs and truth.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import paths
from benchmark.config.params import ParamsError, load_params
from benchmark.scenarios import twin
from benchmark.scenarios.protocol import load_fold, load_scenario
from conftest import tables_from_records
from params_text import ci_params_text

SOURCES = ["music", "podcast"]


def _records(n: int = 40) -> dict:
    """Users u00..: music only, music+podcast or podcast only by u % 3; every user reads books."""
    rng = np.random.default_rng(5)
    music, podcast, book = [], [], []
    for u in range(n):
        user = f"u{u:02d}"
        if u % 3 in (0, 1):
            music += [(user, f"a{u}_{j}", float(rng.integers(1, 50))) for j in range(1 + u % 4)]
        if u % 3 in (1, 2):
            podcast += [(user, f"p{u}_{j}", float(rng.integers(1, 9))) for j in range(1 + u % 2)]
        book += [(user, f"b{u % 7}", 5.0), (user, f"b{(u + 1) % 7}", 2.0, False)]
    book += [("booky", "b1", 5.0)]  # a user without any source row: never permuted
    return tables_from_records({"music": music, "podcast": podcast}, book, k=2)


@pytest.fixture(scope="module")
def tables() -> dict:
    return _records()


def _histories(inter: pd.DataFrame) -> dict[str, list[tuple]]:
    src = inter[inter["domain"].isin(SOURCES)]
    return {u: sorted(zip(g["item"], g["domain"], g["value"].astype(float))) for u, g in src.groupby("user")}


def test_cohort_sizes_kept_and_permutation_stays_inside_each_cohort(tables):
    inter = tables["interactions"]
    t, perm = twin.permute_sources(inter, SOURCES, seed=3)
    before, after = twin.source_cohorts(inter, SOURCES), twin.source_cohorts(t, SOURCES)
    assert before.value_counts().to_dict() == after.value_counts().to_dict() == {"music": 14, "music+podcast": 13,
                                                                                 "podcast": 13}
    pd.testing.assert_series_equal(before, after)  # every user keeps their own cohort
    cohort = before.to_dict()
    assert (perm["cohort"] == perm["user"].map(cohort)).all() and (perm["cohort"] == perm["donor"].map(cohort)).all()
    assert sorted(perm["donor"]) == sorted(perm["user"]), "a permutation: every history is given exactly once"
    assert (perm["user"] != perm["donor"]).mean() > 0.7, "most users must receive another user's history"
    assert "booky" not in set(perm["user"])


def test_a_whole_history_moves_together(tables):
    inter = tables["interactions"]
    t, perm = twin.permute_sources(inter, SOURCES, seed=3)
    real, twinned = _histories(inter), _histories(t)
    for user, donor in zip(perm["user"], perm["donor"]):
        assert twinned[user] == real[donor], f"{user} should hold exactly {donor}'s history (every domain and value)"


def test_target_rows_and_sourceless_users_are_untouched(tables):
    inter = tables["interactions"]
    t, _ = twin.permute_sources(inter, SOURCES, seed=3)
    book = lambda df: df[df["domain"] == "book"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(book(t), book(inter.sort_values(["user", "domain", "item"]).reset_index(drop=True)))
    assert len(t) == len(inter) and list(t.columns) == list(inter.columns)
    assert set(t.loc[t["user"] == "booky", "domain"]) == {"book"}


def test_deterministic_for_the_seed_and_different_across_seeds(tables):
    inter = tables["interactions"]
    a, pa = twin.permute_sources(inter, SOURCES, seed=3)
    b, pb = twin.permute_sources(inter.sample(frac=1.0, random_state=1), SOURCES, seed=3)  # row order must not matter
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pa, pb)
    _, pc = twin.permute_sources(inter, SOURCES, seed=4)
    assert not pa["donor"].equals(pc["donor"])
    assert twin.twin_seed("douban-m2b") == twin.twin_seed("douban-m2b") != twin.twin_seed("ciao-m2b")


def test_summary_counts_the_users_moved(tables):
    _, perm = twin.permute_sources(tables["interactions"], SOURCES, seed=3)
    s = twin.summary(perm, 3)
    assert s["users_permuted"] == 40 == sum(c["users"] for c in s["by_cohort"].values())
    assert s["users_moved"] == int((perm["user"] != perm["donor"]).sum()) == sum(c["moved"] for c in s["by_cohort"].values())


# ---------------------------------------------------------------- the scenario stage writes it


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from test_scenarios_real import CIAO, build

    tmp = tmp_path_factory.mktemp("twin-build")
    return build(tmp, "fx-ciao", CIAO)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_scenario_stage_writes_a_readable_twin(built):
    real, tw = Path(built["dir"]), Path(built["dir"]) / twin.TWIN_DIR
    for f in ("users.parquet", "folds.parquet", "items.parquet"):
        assert _sha(real / f) == _sha(tw / f), f"twin {f} must be the real one, byte for byte"
    meta = json.loads((tw / "meta.json").read_text())
    nt = meta.pop("null_twin")
    assert meta == json.loads((real / "meta.json").read_text())
    assert nt["of"] == "fx-ciao" and nt["seed"] == twin.twin_seed("fx-ciao") and nt["real_scenario_hash"] == built["scenario_hash"]
    t_real, t_twin = load_scenario(real), load_scenario(tw)
    assert nt["users_moved"] == int((pd.read_parquet(tw / twin.PERMUTATION_FILE).eval("user != donor")).sum()) > 0
    for seed, fold in t_real["folds"][["seed", "fold"]].drop_duplicates().itertuples(index=False):
        (v1, tr1), (v2, tr2) = load_fold(real, seed, fold, tables=t_real), load_fold(tw, seed, fold, tables=t_twin)
        assert list(v1.catalog) == list(v2.catalog) and np.array_equal(v1.test_users, v2.test_users)
        assert (v1.target_train != v2.target_train).nnz == 0 and (tr1.test != tr2.test).nnz == 0
        assert v1.source["music"].nnz == v2.source["music"].nnz
    card = json.loads((Path(built["card_dir"]) / "card.json").read_text())
    assert card["null_twin"]["users_moved"] == nt["users_moved"]
    md = (Path(built["card_dir"]) / "CARD.md").read_text()
    assert "## Null twin" in md and f"users moved (given another user's history): {nt['users_moved']}" in md


# ---------------------------------------------------------------- the typed param


def test_twins_folds_is_typed_and_read_in_both_settings(tmp_path):
    base = ci_params_text()
    overlay = (paths.ROOT / "params-full.yaml").read_text()
    assert load_params().twins.folds == 1
    (tmp_path / "params-full.yaml").write_text(overlay)
    (tmp_path / "params.yaml").write_text(base.replace("setting: ci", "setting: full", 1))
    full = load_params(tmp_path / "params.yaml")
    assert full.twins.folds == 1 and len(full.protocol.seeds) == 2  # published: fold 0 of each seed
    head, sep, tail = base.partition("\ntwins:")  # evaluation has a `folds` key too: edit the twins section's
    assert sep and "  folds: 1 " in tail
    (tmp_path / "params.yaml").write_text(head + sep + tail.replace("  folds: 1 ", "  folds: one ", 1))
    with pytest.raises(ParamsError, match=r"^params\.yaml: twins\.folds: "):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(head + sep + tail.replace("  folds: 1 ", "  fold: 1 ", 1))
    with pytest.raises(ParamsError, match=r"twins\.fold: unknown key"):
        load_params(tmp_path / "params.yaml")
