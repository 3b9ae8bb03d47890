"""Run every registered model of a scenario over every (seed, fold): tune, fit, evaluate.

This is the body of the ``run`` stage. It owns the order of operations and nothing
else: folds come from :mod:`benchmark.protocol`, features from
:mod:`benchmark.features`, tuning from :mod:`benchmark.tuning`, metrics from
:mod:`benchmark.evaluation`, and provenance from :mod:`benchmark.evaluation.records`.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from . import paths
from .evaluation.evaluate import evaluate_model
from .evaluation.records import config_hash, provenance, topk_frame, write_run
from .features import attach_features
from .protocol import TrainView, build_fold, load_scenario
from .schema import scenario_hash
from .specs import ModelSpec, load_specs
from .tuning import Budget, tune_models

log = logging.getLogger(__name__)


def restrict_training(view: TrainView, cohort: str | None) -> TrainView:
    """A view whose training users are only those of ``cohort`` (MAP-2T(music_podcast)).

    Other training users keep their source rows (inputs) but lose their target rows,
    so the model learns from the dual-signal users only.
    """
    if not cohort:
        return view
    keep = view.train_users[view.cohort[view.train_users] == cohort]
    mask = np.zeros(view.n_users, dtype=np.float32)
    mask[keep] = 1.0
    target = sp.diags(mask).dot(view.target_train).tocsr()
    target.eliminate_zeros()
    return replace(view, train_users=keep, target_train=target)


def _source_lengths(view: TrainView, rows: np.ndarray) -> np.ndarray:
    total = np.zeros(len(rows), dtype=np.int64)
    for m in view.source.values():
        total += np.asarray(m[rows].getnnz(axis=1))
    return total


def _data_checksums(meta: dict) -> dict:
    table = pd.read_csv(paths.SOURCES_TSV, sep="\t")
    used = set(meta.get("sources", [])) or set(table["source"])
    rows = table[table["source"].isin(used)]
    return {f"{r.source}/{Path(r.file).name}": r.sha256 for r in rows.itertuples()}


@dataclass
class _Context:
    """What every run of one scenario shares: protocol, budget, provenance inputs."""

    meta: dict
    scenario_hash: str
    checksums: dict
    proto: dict
    spec_p: dict
    budget: Budget
    ks: list[int]
    runs_root: Path


def run_scenario(
    scenario: str,
    params: dict,
    scenario_root: Path = paths.SCENARIOS,
    runs_root: Path = paths.RUNS,
    pretrain_root: Path = paths.PRETRAIN,
    embed_root: Path = paths.EMBED,
    address: str | None = None,
    only: list[str] | None = None,
) -> list[dict]:
    """Evaluate every model in ``params['models']`` on ``scenario``; write run records.

    With ``only``, just those models are (re)run and other models' records are kept.
    """
    proto, tun = params["protocol"], params["tuning"]
    folder = Path(scenario_root) / scenario
    tables = load_scenario(folder)
    meta = tables["meta"]
    ctx = _Context(
        meta=meta, scenario_hash=scenario_hash(folder), checksums=_data_checksums(meta), proto=proto,
        spec_p=params["scenarios"][scenario],
        budget=Budget(int(tun["n_trials"]), float(tun["time_budget_s"]), tun["metric"]),
        ks=[int(k) for k in proto["ks"]], runs_root=Path(runs_root),
    )
    # One torch thread: these models are small, and on 2 cores a second thread costs
    # more in synchronisation than it gains (measured 5-20x slower epochs under load).
    torch.set_num_threads(1)
    specs = [s for s in load_specs(list(only or params["models"])) if s.applicable(meta["source_domains"])]
    out_root = Path(runs_root) / scenario
    if out_root.exists() and not only:
        shutil.rmtree(out_root)  # a stage output is rebuilt whole, never appended to
    folds = {}
    for seed, fold in [(int(s), f) for s in proto["seeds"] for f in range(int(proto["k"]))]:
        view, truth = build_fold(
            tables["interactions"], tables["users"], tables["folds"], tables["items"], meta,
            seed, fold, int(ctx.spec_p.get("min_support", 1)), folder,
        )
        folds[(seed, fold)] = (attach_features(view, Path(pretrain_root) / scenario, Path(embed_root) / scenario), truth)
    log.info("%s: tuning %d models on %d folds", scenario, len(specs), len(folds))
    tuned = tune_models(specs, folds, ctx.budget, address)
    records = []
    for (seed, fold), (view, truth) in tqdm(sorted(folds.items()), desc=f"{scenario} folds", unit="fold"):
        for spec in tqdm(specs, desc=f"s{seed} f{fold} models", leave=False):
            records.append(_run_one(spec, view, truth, tuned, seed, fold, ctx))
    return records


def _run_one(spec: ModelSpec, view: TrainView, truth, tuned: dict, seed: int, fold: int, ctx: _Context) -> dict:
    t0 = time.perf_counter()
    train_view = restrict_training(view, spec.train_cohort)
    tuning = tuned[(spec.tune_from or spec.key, seed, fold)]
    if spec.tune_from:
        tuning = dict(tuning, inherited_from=spec.tune_from)
    config = {**spec.config, **tuning["chosen_config"]}
    model = spec.build(tuning["chosen_config"], seed=seed)
    t_fit = time.perf_counter()
    model.fit(train_view)
    fit_s = time.perf_counter() - t_fit
    t_score = time.perf_counter()
    per_user, topk = evaluate_model(model, view.test_users, truth.test, ctx.ks, view.popularity())
    score_s = time.perf_counter() - t_score
    rows = view.test_users
    per_user.insert(0, "user", view.users[rows].astype(str))
    per_user.insert(1, "cohort", view.cohort[rows])
    per_user.insert(2, "n_source", _source_lengths(view, rows))
    meta, proto = ctx.meta, ctx.proto
    record = {
        "model": spec.key, "class": spec.cls, "family": spec.family, "external": False,
        "description": spec.description, "config": config, "config_hash": config_hash(config),
        "scenario": meta["name"], "scenario_hash": ctx.scenario_hash, "semi_synthetic": bool(meta.get("semi_synthetic")),
        "seed": seed, "fold": fold, "n_folds": int(proto["k"]), "seeds_setting": [int(x) for x in proto["seeds"]],
        "min_support": int(ctx.spec_p.get("min_support", 1)), "catalog_size": int(view.n_catalog),
        "n_test_users": int(len(rows)), "n_dropped_test": int(truth.dropped["test"]),
        "n_valid_users": int(len(view.valid_users)), "n_dropped_valid": int(truth.dropped["valid"]),
        "n_train_users": int(len(train_view.train_users)), "train_cohort": spec.train_cohort,
        "tuning": tuning, "data_checksums": ctx.checksums,
        "fit_time_s": round(fit_s, 3), "score_time_s": round(score_s, 3),
        "wall_time_s": round(time.perf_counter() - t0, 3), "fit_info": getattr(model, "fit_info", {}),
    }
    # Provenance last, so peak memory is final. It is the driver process's peak RSS:
    # tuning trials run in Ray workers and are not included.
    record.update(provenance())
    write_run(paths.run_dir(meta["name"], spec.key, seed, fold, root=ctx.runs_root), record, per_user,
              topk_frame(view.users[rows], topk, view.catalog))
    return record
