"""scripts/verify_records.py's comparison: identical records pass, any changed number, key, config or missing record is named."""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd

from benchmark.config import paths
from fake_runs import write_fake_runs

sys.path.insert(0, str(paths.ROOT / "scripts"))
from verify_records import compare  # noqa: E402


def _pair(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in write_fake_runs(old, "scen", {"popularity": 0.0, "userknn": 0.4}):
        rec = json.loads((folder / "record.json").read_text())
        rec["run_key"] = f"key-{folder.parent.name}-{folder.name}"
        (folder / "record.json").write_text(json.dumps(rec))
    shutil.copytree(old, new)
    return old, new


def test_identical_records_have_no_difference(tmp_path):
    old, new = _pair(tmp_path)
    n, diffs = compare(new, old, "scen")
    assert (n, diffs) == (4, [])


def test_each_kind_of_difference_is_named(tmp_path):
    old, new = _pair(tmp_path)
    run = new / "scen" / "userknn" / "s0_f1"
    rec = json.loads((run / "record.json").read_text())
    rec["run_key"], rec["tuning"]["chosen_config"]["lr"] = "other", 0.5
    (run / "record.json").write_text(json.dumps(rec))
    pu = pd.read_parquet(run / "per_user.parquet")
    pu.loc[0, "NDCG@10"] += 1e-12  # the last bits: exact comparison must catch it
    pu.to_parquet(run / "per_user.parquet", index=False)
    shutil.rmtree(old / "scen" / "popularity" / "s0_f0")
    n, diffs = compare(new, old, "scen")
    assert n == 3
    assert diffs[0] == "scen/popularity/s0_f0: no committed record"
    assert diffs[1] == "scen/userknn/s0_f1: run_key key-userknn-s0_f1 -> other"
    assert diffs[2].startswith("scen/userknn/s0_f1: chosen config") and "0.5" in diffs[2]
    assert diffs[3].startswith("scen/userknn/s0_f1/per_user.parquet:")
    assert len(diffs) == 4
