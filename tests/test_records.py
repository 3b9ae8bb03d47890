"""Run records: round trip, validation, provenance, collection."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmark.evaluation.records import (
    code_hash,
    REQUIRED_KEYS,
    collect_runs,
    config_hash,
    provenance,
    read_record,
    topk_frame,
    write_run,
)
from benchmark.config.paths import run_dir


def make_run(model="popularity", seed=0, fold=1, scenario="toy", n=3, config=None):
    config = {"alpha": 0.5, "layers": [64, 32]} if config is None else config
    record = {
        "model": model, "class": model, "display_name": model.title(), "family": "baseline", "external": False,
        "setting": "ci", "description": "toy",
        "config": config, "config_hash": config_hash(config), "scenario": scenario, "scenario_hash": "abc",
        "semi_synthetic": False, "seed": seed, "fold": fold, "n_folds": 5, "seeds_setting": [0],
        "min_support": 1, "catalog_size": 4, "n_test_users": n, "n_dropped_test": 1, "n_valid_users": 2,
        "n_dropped_valid": 0, "tuning": {"n_trials": 0}, "data_checksums": {"src": "00ff"},
        "fit_time_s": 0.1, "score_time_s": 0.01, "wall_time_s": 0.2,
        "collapse": {"distinct_share": 1.0, "pop_overlap": 0.0, "collapsed": False},
    }  # fmt: skip
    record.update(provenance())
    users = np.array([f"u{i}" for i in range(n)])
    per_user = pd.DataFrame(
        {"user": users, "cohort": "m-only", "n_source": np.arange(n) + 1, "n_pos": np.ones(n), "P@3": np.linspace(0, 1, n) + seed}
    )
    topk = topk_frame(users, np.tile([2, 0, -1], (n, 1)), ["book:a", "book:b", "book:c", "book:d"])
    return record, per_user, topk


def test_round_trip(tmp_path):
    record, per_user, topk = make_run()
    folder = write_run(run_dir("toy", "popularity", 0, 1, root=tmp_path), record, per_user, topk)
    assert folder == tmp_path / "toy" / "popularity" / "s0_f1"
    back = read_record(folder)
    assert back == json.loads(json.dumps(record))
    pu = pd.read_parquet(folder / "per_user.parquet")
    assert list(pu.columns) == ["user", "cohort", "n_source", "n_pos", "P@3"]
    assert pu["n_pos"].dtype == np.int64 and pu["user"].tolist() == ["u0", "u1", "u2"]
    np.testing.assert_allclose(pu["P@3"], per_user["P@3"])
    tk = pd.read_parquet(folder / "topk.parquet")
    # -1 (empty rank) dropped; rank is 1-based; items map through the catalog
    assert tk[tk["user"] == "u1"][["rank", "item"]].values.tolist() == [[1, "book:c"], [2, "book:a"]]


def test_record_json_is_deterministic(tmp_path):
    record, per_user, topk = make_run()
    a = write_run(tmp_path / "a", record, per_user, topk)
    shuffled = dict(reversed(list(record.items())))
    b = write_run(tmp_path / "b", shuffled, per_user, topk)
    assert (a / "record.json").read_bytes() == (b / "record.json").read_bytes()


@pytest.mark.parametrize("key", ["config_hash", "git_rev", "n_dropped_test", "data_checksums", "scenario_hash", "collapse"])
def test_missing_key_is_rejected(tmp_path, key):
    record, per_user, topk = make_run()
    del record[key]
    with pytest.raises(ValueError, match=key):
        write_run(tmp_path / "r", record, per_user, topk)
    assert not (tmp_path / "r" / "record.json").exists()


def test_inconsistent_records_are_rejected(tmp_path):
    record, per_user, topk = make_run()
    with pytest.raises(ValueError, match="config_hash"):
        write_run(tmp_path / "r", {**record, "config_hash": "000000000000"}, per_user, topk)
    with pytest.raises(ValueError, match="n_test_users"):
        write_run(tmp_path / "r", {**record, "n_test_users": 7}, per_user, topk)
    with pytest.raises(TypeError, match="seed"):
        write_run(tmp_path / "r", {**record, "seed": "0"}, per_user, topk)
    with pytest.raises(ValueError, match="n_source"):
        write_run(tmp_path / "r", record, per_user.drop(columns="n_source"), topk)
    stray = pd.concat([topk, pd.DataFrame({"user": ["ghost"], "rank": [1], "item": ["book:a"]})])
    with pytest.raises(ValueError, match="absent"):
        write_run(tmp_path / "r", record, per_user, stray)
    with pytest.raises(TypeError, match="has no JSON form"):
        write_run(tmp_path / "r", {**record, "tuning": {"obj": object()}}, per_user, topk)


def test_config_hash():
    cfg = {"b": [1, 2], "a": {"y": 0.5, "x": "s"}}
    same = {"a": {"x": "s", "y": np.float64(0.5)}, "b": (np.int64(1), 2)}
    assert config_hash(cfg) == config_hash(same)  # key order and numpy scalars do not matter
    expected = hashlib.sha256(b'{"a":{"x":"s","y":0.5},"b":[1,2]}').hexdigest()[:12]
    assert config_hash(cfg) == expected
    assert config_hash({**cfg, "b": [1, 3]}) != config_hash(cfg)
    assert len(config_hash({})) == 12


def test_provenance_fields():
    p = provenance()
    assert set(p) == {"git_rev", "git_dirty", "code_hash", "versions", "peak_mem_mb"}
    assert p["code_hash"] == code_hash() and len(p["code_hash"]) == 12
    assert p["versions"]["numpy"] == np.__version__
    assert p["versions"]["pandas"] == pd.__version__
    assert {"python", "cdrbench", "torch", "recbole", "sklearn", "sentence_transformers", "ray", "scipy"} <= set(p["versions"])
    assert p["git_rev"] == "unknown" or len(p["git_rev"]) == 40
    assert p["peak_mem_mb"] > 10
    assert set(p) <= set(REQUIRED_KEYS)


def test_collect_runs(tmp_path):
    for model in ("popularity", "collopop"):
        for fold in (0, 1):
            record, per_user, topk = make_run(model=model, fold=fold)
            write_run(run_dir("toy", model, 0, fold, root=tmp_path), record, per_user, topk)
    record, per_user, topk = make_run(scenario="other")
    write_run(run_dir("other", "popularity", 0, 1, root=tmp_path), record, per_user, topk)

    recs, pu = collect_runs(tmp_path)
    assert len(recs) == 5 and len(pu) == 15
    assert list(pu.columns[:4]) == ["scenario", "model", "seed", "fold"]
    recs_toy, pu_toy = collect_runs(tmp_path, scenario="toy")
    assert set(recs_toy["model"]) == {"popularity", "collopop"} and len(pu_toy) == 12
    assert sorted(pu_toy.groupby(["model", "fold"]).size().tolist()) == [3, 3, 3, 3]

    # A copied folder whose record says otherwise is refused, not double-counted.
    shutil.copytree(run_dir("toy", "collopop", 0, 1, root=tmp_path), run_dir("toy", "collopop", 0, 3, root=tmp_path))
    with pytest.raises(ValueError, match="lives in"):
        collect_runs(tmp_path, scenario="toy")

    empty_recs, empty_pu = collect_runs(tmp_path / "nothing")
    assert empty_recs.empty and empty_pu.empty


def test_code_hash_follows_modelling_code_only(tmp_path):
    """A change to a model module or spec changes the hash; a change to the report or README does not."""
    for rel, text in {"benchmark/models/m.py": "x = 1\n", "models/m.yaml": "key: m\n",
                      "benchmark/report/r.py": "y = 1\n", "README.md": "hi\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    base = code_hash(tmp_path)
    (tmp_path / "benchmark/report/r.py").write_text("y = 2\n")
    (tmp_path / "README.md").write_text("changed\n")
    assert code_hash(tmp_path) == base
    (tmp_path / "models/m.yaml").write_text("key: m2\n")
    assert code_hash(tmp_path) != base
    (tmp_path / "models/m.yaml").write_text("key: m\n")
    assert code_hash(tmp_path) == base
    (tmp_path / "benchmark/models/m.py").write_text("x = 2\n")
    assert code_hash(tmp_path) != base


def test_git_dirty_ignores_the_pipelines_own_outputs(tmp_path, monkeypatch):
    """A clean checkout whose `dvc repro` rewrote dvc.lock and cards is not 'uncommitted changes'; a code edit is."""
    import subprocess

    from benchmark.evaluation import records

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for rel in ("dvc.lock", "datasets/x/CARD.md", "results/a.md", "benchmark/m.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v1\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    monkeypatch.setattr(records.paths, "ROOT", tmp_path)
    state = records.git_state.__wrapped__
    assert state()[1] is False
    for rel in ("dvc.lock", "datasets/x/CARD.md", "results/a.md"):
        (tmp_path / rel).write_text("v2\n")
    assert state()[1] is False
    (tmp_path / "benchmark/m.py").write_text("v2\n")
    assert state()[1] is True
