"""Leaderboard submissions, step 2: score validated ranked lists and record them.

Scoring uses the benchmark's own evaluator (:func:`~benchmark.evaluation.evaluate.evaluate_topk`)
on the held-out truth of each fold, and the entry is written as ordinary run records
(``external: True``). Everything is scored in memory first and then swapped into place
under a lock on the scenario folder (:func:`benchmark.submission.entries.install`), so a
rejected submission leaves the entries unchanged and an interrupted one leaves only
hidden folders, which the report ignores and the next ``submit`` clears. Which entry a
submission may be filed under, and when it may replace one, is
:mod:`benchmark.submission.entries`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import paths
from benchmark.config.params import Params
from benchmark.evaluation.collapse import collapse_stats
from benchmark.evaluation.evaluate import evaluate_topk
from benchmark.evaluation.records import config_hash, provenance, topk_frame, write_run
from benchmark.submission import entries
from benchmark.submission.validate import SubmissionError, validate

__all__ = ["SubmissionError", "score", "submit"]


def score(checked: dict) -> list[tuple[dict, pd.DataFrame, pd.DataFrame]]:
    """Score each (seed, fold) from its ranked lists with the benchmark's evaluator."""
    meta, ks = checked["meta"], checked["ks"]
    kmax, key = max(ks), entries.entry_key(meta["model"])
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
            "model": key, "class": "external", "family": "external", "external": True,
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
            "collapse": collapse_stats(topk, view.popularity()),  # ranked lists only: no mean scores
        }
        out.append((record, per_user, topk_frame(users, topk, view.catalog)))
    return out


def submit(folder: Path, scenario_root: Path | None = None, runs_root: Path | None = None,
           params: Params | None = None) -> dict:
    """Validate, score and record a submission; raise :class:`SubmissionError` (no entry changed) if invalid.

    First clears what killed earlier submissions left in any scenario folder of
    ``runs_root`` (the only disk change a rejected submission can cause).
    """
    runs_root = Path(runs_root) if runs_root is not None else paths.EXTERNAL
    for scen_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()) if runs_root.is_dir() else []:
        with entries.locked(scen_dir):
            entries.clean_leftovers(scen_dir)
    checked = validate(folder, scenario_root, params, runs_root)
    scored = score(checked)  # all in memory: a failure here also leaves the disk untouched
    meta = checked["meta"]
    key = scored[0][0]["model"]
    scen_dir = runs_root / meta["scenario"]

    def write(tmp: Path) -> None:
        for record, per_user, topk in scored:
            write_run(tmp / f"s{record['seed']}_f{record['fold']}", record, per_user, topk)

    with entries.locked(scen_dir):
        entries.clean_leftovers(scen_dir)
        problem = entries.owner_problem(scen_dir, meta)  # again: another submit may have filed it meanwhile
        if problem:
            raise SubmissionError([problem])
        replaced = (scen_dir / key).exists()
        final = entries.install(scen_dir, key, write)
    pooled = pd.concat([p for _, p, _ in scored])
    run_dirs = [str(final / f"s{r['seed']}_f{r['fold']}") for r, _, _ in scored]
    return {"model": key, "scenario": meta["scenario"], "runs": run_dirs, "replaced": replaced,
            "n_users": int(len(pooled)), "means": {m: round(float(pooled[m].mean()), 6) for m in ("NDCG@10", "P@3", "HR@3")}}
