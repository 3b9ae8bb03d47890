"""Validation against test for the tuned baselines: is a gap to Popularity a tuning accident?

usage: python scripts/validation_gap.py [SCENARIO ...] [--models itemknn,ease,bpr,lightgcn,multivae]

For each scenario (default: every scenario of params.yaml with run records) and model,
prints the validation NDCG@10 its chosen configuration reached while tuning (from the
record of the tuning fold: ``tuning.best_value``), Popularity's NDCG@10 on the same
validation users (fitted here: Popularity keeps no tuning record, having nothing to tune),
and the leaderboard's test gap to Popularity. Why: a model far below Popularity on test
but level with it on validation points at the tuning (a small or unlucky validation set);
far below on both points at the model on these data (results/INVESTIGATIONS.md).

Reads the built fold (data/scenarios), the run records and results/leaderboard; writes
nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from benchmark.config import paths
from benchmark.config.params import load_params
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.experiment import registry
from benchmark.scenarios.protocol import load_fold

MODELS = "itemknn,ease,bpr,lightgcn,multivae"


def popularity_on_validation(scenario: str, seed: int, fold: int, min_support: int) -> tuple[float, int]:
    view, truth = load_fold(paths.SCENARIOS / scenario, seed, fold, min_support=min_support)
    model = registry.build(registry.checked_spec("popularity"), seed=0)
    model.fit(copy.deepcopy(view))
    per_user, _ = evaluate_model(model, view.valid_users, truth.valid, [10], view.popularity())
    return float(per_user["NDCG@10"].mean()), len(view.valid_users)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*")
    ap.add_argument("--models", default=MODELS)
    args = ap.parse_args()
    params = load_params(paths.PARAMS)
    names = args.scenarios or [s for s in params.scenarios if (paths.RUNS / s).is_dir()]
    print("| scenario | validation users | model | validation vs Popularity | test vs Popularity (leaderboard) |")
    print("|---|---|---|---|---|")
    for name in names:
        board_file = paths.RESULTS / "leaderboard" / f"{name}.json"
        board = {r["model"]: r for r in json.loads(board_file.read_text())["models"]} if board_file.is_file() else {}
        cache = {}
        for key in args.models.split(","):
            recs = sorted((paths.RUNS / name / key).glob("s*_f*/record.json"))
            tuned = [r for r in map(lambda p: json.loads(p.read_text()), recs)
                     if r["tuning"].get("tuned_on") == [r["seed"], r["fold"]] and not r["tuning"].get("inherited_from")]
            if not tuned:
                continue
            r = tuned[0]
            slot = (r["seed"], r["fold"])
            if slot not in cache:
                cache[slot] = popularity_on_validation(name, *slot, r["min_support"])
            pop, n_valid = cache[slot]
            value = r["tuning"]["best_value"]
            rel = f"{100 * (value / pop - 1):+.0f}%" if pop > 0 else "n/a"
            test = board.get(key, {}).get("rel_NDCG@10")
            test_txt = "n/a" if test is None else f"{test:+.1f}%"
            print(f"| {name} | {n_valid} (seed {slot[0]}, fold {slot[1]}) | {key} | {value:.4f} vs {pop:.4f} ({rel}) | {test_txt} |")


if __name__ == "__main__":
    main()
