"""Incremental runs: which code invalidates a model's records, and reuse on a real built scenario.

The code-scope tests copy the package into a temporary tree and edit one file there, so
they check the rule (a model's own module, its package's helpers, the shared modelling
code) on the real file layout. The reuse test (marker ``built``) runs the run stage's
library entry point twice on the pipeline's douban-m2b build.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmark.config import paths
from benchmark.config.specs import discover, load_specs
from benchmark.experiment import reuse
from benchmark.experiment.reuse import model_code_files, model_code_hash


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(paths.ROOT / "benchmark", root / "benchmark", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _hashes(root: Path) -> dict[str, str]:
    specs = load_specs(discover())
    return {s.key: model_code_hash(s, specs, root) for s in specs}


def _touch(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


def test_a_model_reads_its_module_its_package_helpers_and_the_shared_code():
    specs = load_specs(discover())
    by = {s.key: s for s in specs}
    rel = lambda key: {q.relative_to(paths.ROOT).as_posix() for q in model_code_files(by[key], specs)}  # noqa: E731
    dtcdr = rel("dtcdr")
    assert {"benchmark/models/cdr/dtcdr.py", "benchmark/models/cdr/common.py", "benchmark/models/base.py",
            "benchmark/experiment/tuning.py", "benchmark/evaluation/evaluate.py"} <= dtcdr
    assert "benchmark/models/cdr/conet.py" not in dtcdr and "benchmark/models/mtl.py" not in dtcdr
    pop = rel("popularity")
    assert "benchmark/models/popularity.py" in pop and not any("/cdr/" in f or "/recbole/" in f for f in pop)
    assert "benchmark/models/recbole/sampling.py" in rel("bpr")  # a helper of its package


def test_editing_one_model_changes_only_its_hash(tree):
    before = _hashes(tree)
    _touch(tree / "benchmark/models/cdr/dtcdr.py")
    after = _hashes(tree)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"dtcdr"}
    _touch(tree / "benchmark/models/cdr/common.py")  # a package helper: every zoo model
    again = _hashes(tree)
    changed = {k for k in after if after[k] != again[k]}
    assert {"dtcdr", "conet", "emcdr"} <= changed and "popularity" not in changed and "bpr" not in changed
    _touch(tree / "benchmark/evaluation/metrics.py")  # shared modelling code: every model
    last = _hashes(tree)
    assert all(again[k] != last[k] for k in again)


@pytest.mark.built
def test_a_second_run_reuses_unchanged_records_and_reruns_an_invalid_one(tmp_path):
    from benchmark.config.params import load_params
    from benchmark.experiment.runner import run_scenario

    scenario, models = "douban-m2b", ["popularity", "collopop-artist"]
    if not (paths.SCENARIOS / scenario / "meta.json").is_file():
        pytest.fail(f"{scenario} is not built: run `dvc repro` first (this is a built-output test)")
    params = load_params(paths.PARAMS)
    runs, twins = tmp_path / "runs", tmp_path / "twins"
    try:
        first = run_scenario(scenario, params, runs_root=runs, twins_root=twins, only=models)
        files = sorted((runs / scenario).rglob("record.json")) + sorted((twins / scenario).rglob("record.json"))
        assert files and len(first) == len(files)
        stamp = {f: f.stat().st_mtime_ns for f in files}
        keys = {json.loads(f.read_text())["run_key"] for f in files}
        assert len(keys) == len(files)  # one key per (model, kind, seed, fold)
        second = run_scenario(scenario, params, runs_root=runs, twins_root=twins, only=models)
        assert {f: f.stat().st_mtime_ns for f in files} == stamp  # nothing rewritten
        assert sorted(json.dumps(r, sort_keys=True) for r in second) == sorted(json.dumps(r, sort_keys=True) for r in first)
        # An invalid record (as after an interrupted write) re-runs that run only, from the cached tuning.
        victim = next(f for f in files if "collopop-artist" in f.parts)
        rec = json.loads(victim.read_text())
        cache = runs / scenario / "collopop-artist" / "tuning.json"
        assert cache.is_file()
        cache_stamp = cache.stat().st_mtime_ns
        victim.write_text(json.dumps({**rec, "run_key": "stale"}))
        run_scenario(scenario, params, runs_root=runs, twins_root=twins, only=models)
        moved = {f for f in files if f.stat().st_mtime_ns != stamp[f]}
        assert moved == {victim}
        again = json.loads(victim.read_text())
        assert again["run_key"] == rec["run_key"]  # deterministic: the same key again
        assert again["tuning"] == rec["tuning"] and cache.stat().st_mtime_ns == cache_stamp  # not tuned again
    finally:
        import ray

        ray.shutdown()


def test_tuning_cache_is_read_only_under_its_key(tmp_path):
    tuned = {(0, 0): {"chosen_config": {"k": 3}, "best_value": 0.5}, (0, 1): {"chosen_config": {"k": 3}, "best_value": 0.5}}
    reuse.write_tuning(tmp_path / "m", "key-a", tuned)
    assert reuse.read_tuning(tmp_path / "m", "key-a") == tuned
    assert reuse.read_tuning(tmp_path / "m", "key-b") is None  # any input changed: tune again
    (tmp_path / "m" / "tuning.json").write_text("{broken")
    assert reuse.read_tuning(tmp_path / "m", "key-a") is None


def test_prune_keeps_exactly_the_valid_records_and_files(tmp_path):
    root = tmp_path / "runs" / "scen"
    for model in ("a", "b"):
        for run in ("s0_f0", "s0_f1"):
            (root / model / run).mkdir(parents=True)
            (root / model / run / "record.json").write_text("{}")
        (root / model / "tuning.json").write_text("{}")
    kept = {("a", "real", 0, 0): {}, ("a", "twin", 0, 1): {}}  # a twin record never keeps a real run folder
    reuse.prune(root, kept, [root / "b" / "tuning.json"])
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert left == ["a", "a/s0_f0", "a/s0_f0/record.json", "b", "b/tuning.json"]
