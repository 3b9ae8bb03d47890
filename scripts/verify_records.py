"""Recompute a sample of run records from scratch and compare them with the committed ones.

usage: python scripts/verify_records.py SCENARIO MODEL[,MODEL...] [--scratch DIR]

Why: the published leaderboard takes hours to rebuild, and an incremental build keeps
records computed under earlier modelling code whenever a model's own code and inputs did
not change (benchmark/experiment/reuse.py). This re-runs the given models on one scenario
in the params.yaml setting (tuning, every fold, null twins) into a scratch folder, never
touching results/, then compares each record with the one under results/: the run key,
the chosen configuration, and the per-user metrics and top-K lists, exactly. Exit code 1
on any difference.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

from benchmark.config import paths
from benchmark.config.params import load_params
from benchmark.experiment.runner import run_scenario


def compare(new_root: Path, old_root: Path, scenario: str) -> tuple[int, list[str]]:
    n, diffs = 0, []
    for rec in sorted((new_root / scenario).glob("*/s*_f*/record.json")):
        rel = rec.parent.relative_to(new_root)
        old = old_root / rel
        if not (old / "record.json").is_file():
            diffs.append(f"{rel}: no committed record")
            continue
        a, b = json.loads(rec.read_text()), json.loads((old / "record.json").read_text())
        n += 1
        if a["run_key"] != b["run_key"]:
            diffs.append(f"{rel}: run_key {b['run_key']} -> {a['run_key']}")
        if a["tuning"].get("chosen_config") != b["tuning"].get("chosen_config"):
            diffs.append(f"{rel}: chosen config {b['tuning'].get('chosen_config')} -> {a['tuning'].get('chosen_config')}")
        for name in ("per_user.parquet", "topk.parquet"):
            try:
                pd.testing.assert_frame_equal(pd.read_parquet(rec.parent / name), pd.read_parquet(old / name), check_exact=True)
            except AssertionError as e:
                diffs.append(f"{rel}/{name}: {str(e).splitlines()[0]}")
        print(f"{rel}: committed under code {b['code_hash']} (rev {b['git_rev'][:7]}), recomputed under {a['code_hash']}")
    return n, diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("models")
    ap.add_argument("--scratch", type=Path, default=None)
    args = ap.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="cdrbench-verify-"))
    runs, twins = scratch / "runs", scratch / "twins"
    params = load_params(paths.PARAMS)
    run_scenario(args.scenario, params, runs_root=runs, twins_root=twins, only=args.models.split(","))
    n_runs, d_runs = compare(runs, paths.RUNS, args.scenario)
    n_twins, d_twins = compare(twins, paths.TWINS, args.scenario)
    for d in d_runs + d_twins:
        print("DIFFERENCE", d)
    print(f"{params.setting} setting, {args.scenario}: {n_runs + n_twins} records recomputed in {scratch}, "
          f"{len(d_runs) + len(d_twins)} differences")
    return 1 if d_runs or d_twins else 0


if __name__ == "__main__":
    sys.exit(main())
