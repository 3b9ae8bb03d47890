"""Leaderboard submissions, step 2: score validated ranked lists and record them.

Scoring uses the benchmark's own evaluator (:func:`~benchmark.evaluation.evaluate.evaluate_topk`)
on the held-out truth of each fold, and the entry is written as ordinary run records
(``external: True``). Everything is scored in memory first and then moved into place
with one rename, so a rejected or interrupted submission leaves the disk unchanged.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import paths
from benchmark.config.params import Params
from benchmark.evaluation.evaluate import evaluate_topk
from benchmark.evaluation.records import config_hash, provenance, topk_frame, write_run
from benchmark.submission.validate import SubmissionError, slugify, validate

__all__ = ["SubmissionError", "score", "submit"]


def score(checked: dict) -> list[tuple[dict, pd.DataFrame, pd.DataFrame]]:
    """Score each (seed, fold) from its ranked lists with the benchmark's evaluator."""
    meta, ks = checked["meta"], checked["ks"]
    kmax, slug = max(ks), slugify(meta["model"])
    prov, config = provenance(), {}
    out = []
    for (seed, fold), (view, truth, part) in sorted(checked["views"].items()):
        rows = view.test_users
        users = view.users[rows].astype(str)
        lists = part[part["rank"] <= kmax].sort_values(["user", "rank"])
        idx = pd.DataFrame({"user": lists["user"], "rank": lists["rank"], "col": view.catalog.get_indexer(lists["item"])})
        grid = idx.pivot(index="user", columns="rank", values="col").reindex(index=users, columns=range(1, kmax + 1))
        topk = grid.to_numpy(dtype=np.int64)
        per_user = evaluate_topk(topk, truth.test, ks, view.popularity())
        per_user.insert(0, "user", users)
        per_user.insert(1, "cohort", view.cohort[rows])
        per_user.insert(2, "n_source", view.source_lengths(rows))
        record = {
            "model": f"external-{slug}", "class": "external", "family": "external", "external": True,
            "display_name": meta["model"], "description": meta["description"],
            "submission": {"authors": meta["authors"], "code_url": meta["code_url"], "name": meta["model"],
                           "predictions_sha256": checked["predictions_sha256"]},
            "config": config, "config_hash": config_hash(config), "scenario": view.scenario,
            "scenario_hash": checked["scenario_hash"], "semi_synthetic": bool(checked["tables"]["meta"].get("semi_synthetic")),
            "seed": int(seed), "fold": int(fold), "n_folds": int(checked["k"]), "setting": checked["setting"],
            "seeds_setting": sorted(int(s) for s in meta["seeds"]),
            "min_support": int(checked["min_support"]), "catalog_size": int(view.n_catalog), "n_test_users": int(len(rows)),
            "n_dropped_test": int(truth.dropped["test"]), "n_valid_users": int(len(view.valid_users)),
            "n_dropped_valid": int(truth.dropped["valid"]),
            "tuning": {"chosen_config": {}, "note": "external submission: tuned by its authors, not by the benchmark"},
            "data_checksums": {}, **prov, "fit_time_s": None, "score_time_s": None, "wall_time_s": None,
        }
        out.append((record, per_user, topk_frame(users, topk, view.catalog)))
    return out


def submit(folder: Path, scenario_root: Path = paths.SCENARIOS, runs_root: Path = paths.RUNS,
           params: Params | None = None) -> dict:
    """Validate, score and record a submission; raise :class:`SubmissionError` (nothing written) if invalid."""
    checked = validate(folder, scenario_root, params)
    scored = score(checked)  # all in memory: a failure here also leaves the disk untouched
    meta = checked["meta"]
    key = scored[0][0]["model"]
    scen_dir = Path(runs_root) / meta["scenario"]
    final, tmp = scen_dir / key, scen_dir / f".{key}.incoming"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for record, per_user, topk in scored:
            write_run(tmp / f"s{record['seed']}_f{record['fold']}", record, per_user, topk)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written entry for the report to find
        raise
    old = scen_dir / f".{key}.previous"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    pooled = pd.concat([p for _, p, _ in scored])
    run_dirs = [str(final / f"s{r['seed']}_f{r['fold']}") for r, _, _ in scored]
    return {"model": key, "scenario": meta["scenario"], "runs": run_dirs,
            "n_users": int(len(pooled)), "means": {m: round(float(pooled[m].mean()), 6) for m in ("NDCG@10", "P@3", "HR@3")}}
