"""Run every registered model of a scenario over every (seed, fold): tune, fit, evaluate.

This is the body of the ``run`` stage. It owns the order of operations and nothing
else: folds come from :mod:`benchmark.scenarios.protocol`, features from
:mod:`benchmark.features.vectors`, tuning from :mod:`benchmark.experiment.tuning`, metrics from
:mod:`benchmark.evaluation`, and provenance from :mod:`benchmark.evaluation.records`.

A real scenario also has a null twin (``data/scenarios/<name>/twin/``, source histories
permuted within cohort). After the real runs, every model is fitted and evaluated on
the twin's first ``twins.folds`` folds of each seed with the configuration tuned on the
*real* scenario for that (seed, fold): tuning on the twin would let the search adapt to
the permuted data and change two things at once. Twin records have the real records'
layout under ``results/twins/<name>/`` and carry a ``null_twin`` section; the report pairs
them with the real runs per user (the transfer gain).
"""

from __future__ import annotations

import copy
import logging
import resource
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from benchmark.config import paths
from benchmark.config.jsonio import jsonable
from benchmark.config.params import Params
from benchmark.config.specs import ModelSpec, discover, load_specs
from benchmark.evaluation.collapse import collapse_stats
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.evaluation.records import config_hash, provenance, topk_frame, write_run
from benchmark.experiment import registry, reuse
from benchmark.experiment.tuning import Budget, ensure_ray, tune_models, tuning_source
from benchmark.features.vectors import attach_features
from benchmark.scenarios.protocol import build_fold, load_scenario, restrict_training, without_test_users
from benchmark.scenarios.schema import scenario_hash
from benchmark.scenarios.twin import REAL_BUILDERS, TWIN_DIR

log = logging.getLogger(__name__)


def _data_checksums(meta: dict) -> dict:
    """sha256 of the raw files a scenario was built from (every source for mpa-linked)."""
    table = pd.read_csv(paths.SOURCES_TSV, sep="\t")
    src = meta.get("params", {}).get("source")
    rows = table[table["source"] == src] if src else table
    return {f"{r.source}/{Path(r.file).name}": r.sha256 for r in rows.itertuples()}


@dataclass
class _Context:
    """What every run of one scenario shares: protocol, budget, provenance inputs."""

    meta: dict
    scenario_hash: str
    checksums: dict
    params: Params
    min_support: int
    budget: Budget
    ks: list[int]
    runs_root: Path


def run_scenario(
    scenario: str,
    params: Params,
    scenario_root: Path = paths.SCENARIOS,
    runs_root: Path = paths.RUNS,
    pretrain_root: Path = paths.PRETRAIN,
    embed_root: Path = paths.EMBED,
    address: str | None = None,
    only: list[str] | None = None,
    twins_root: Path | None = None,
) -> list[dict]:
    """Evaluate every model of ``params.models`` on ``scenario`` (and its null twin); write run records.

    Tuning runs as one Ray Tune sweep; the final fit + evaluation of every (model, fold)
    then runs as Ray tasks, one CPU each, and the driver writes the records. With
    ``only``, just those models are (re)run and other models' records are kept. Twin
    records go to ``twins_root/<scenario>/`` (default: a ``twins`` folder beside
    ``runs_root``, i.e. ``results/twins`` for the stage, so a caller with a temporary runs
    root never writes into the pipeline's outputs); it exists, empty, for a scenario
    without a twin, so the stage always has its output.
    """
    import ray

    twins_root = Path(twins_root) if twins_root is not None else Path(runs_root).parent / paths.TWINS.name
    folder = Path(scenario_root) / scenario
    tables = load_scenario(folder)
    meta = tables["meta"]
    ctx = _Context(
        meta=meta, scenario_hash=scenario_hash(folder), checksums=_data_checksums(meta), params=params,
        min_support=params.scenario(scenario).min_support, budget=Budget.from_params(params.tuning),
        ks=list(params.evaluation.ks), runs_root=Path(runs_root),
    )
    keys = list(only) if only else params.model_keys(discover())
    specs = [s for s in registry.checked_specs(keys) if s.applicable(meta["source_domains"])]
    proto = params.protocol
    folds = {}
    n_eval = min(proto.k, params.evaluation.folds or proto.k)  # CI: the first fold(s) only
    for seed, fold in [(s, f) for s in proto.seeds for f in range(n_eval)]:
        view, truth = build_fold(
            tables["interactions"], tables["users"], tables["folds"], tables["items"], meta, seed, fold, ctx.min_support,
        )
        folds[(seed, fold)] = (attach_features(view, Path(pretrain_root) / scenario, Path(embed_root) / scenario), truth)
    tuning_users = _tuning_users(folds, ctx.budget)
    folds = {k: _exclude(pair, tuning_users.get(k)) for k, pair in folds.items()}
    twin_ctx, twin_folds = _twin_folds(scenario, folder, params, ctx, sorted(folds), pretrain_root, embed_root, twins_root)
    twin_folds = {k: _exclude(pair, tuning_users.get(k)) for k, pair in twin_folds.items()}
    # Incremental, per record: a record whose key is the one it would get now is kept
    # (benchmark/experiment/reuse.py); only the missing runs are fitted, and a model whose
    # tuning is cached under the same key is not tuned again. So an interrupted stage resumes.
    slots = [("real", s, f) for s, f in sorted(folds)] + [("twin", s, f) for s, f in sorted(twin_folds)]
    keys_now = _run_keys(specs, slots, scenario, params, ctx, twin_ctx, Path(pretrain_root), Path(embed_root))
    kept = reuse.valid_records(specs, slots, keys_now, scenario, Path(runs_root), Path(twins_root))
    missing = {s.key: [x for x in slots if (s.key, *x) not in kept] for s in specs}
    todo = [s for s in specs if missing[s.key]]
    model_dir = {s.key: Path(runs_root) / scenario / s.key for s in specs}
    cached = {s.key: c for s in todo
              if (c := reuse.read_tuning(model_dir[s.key], keys_now[(s.key, "tuning", -1, -1)])) is not None}
    if kept:
        log.info("%s: %d of %d runs unchanged since their records were written; reusing them (%d models complete)",
                 scenario, len(kept), len(specs) * len(slots), len(specs) - len(todo))
    if not only:  # the stage output holds exactly this plan's valid records (and valid tuning caches)
        reuse.prune(Path(runs_root) / scenario, kept, [reuse.tuning_file(model_dir[k]) for k in cached])
        reuse.prune(Path(twins_root) / scenario, kept, [])
    (Path(twins_root) / scenario).mkdir(parents=True, exist_ok=True)  # the stage's out, even when empty
    ensure_ray(address)
    refs = {key: ray.put(pair) for key, pair in folds.items()}  # once, shared by tuning and the final fits
    fresh = [s for s in todo if s.key not in cached]
    tuned = tune_models(fresh, folds, ctx.budget, address, desc=f"{scenario} tuning", refs=refs)
    for spec in fresh:  # cached at once: a stage interrupted during the fits resumes without re-tuning
        reuse.write_tuning(model_dir[spec.key], keys_now[(spec.key, "tuning", -1, -1)],
                           {k[1:]: v for k, v in tuned.items() if k[0] == spec.key})
    for k, c in cached.items():
        tuned.update({(k, *sf): v for sf, v in c.items()})
    for (k, kind, seed, fold), r in kept.items():  # a re-run tune_from spec inherits a kept base's tuning
        if kind == "real":
            tuned.setdefault((k, seed, fold), {x: v for x, v in r["tuning"].items() if x != "inherited_from"})
    refs.update({("twin", *key): ray.put(pair) for key, pair in twin_folds.items()})
    remote = ray.remote(num_cpus=1)(fit_and_evaluate)
    riders = _shared_fits(todo)  # "+Pop" rows of trained models: one fit serves both rows
    pending = {}
    # Real runs first, then the twins, each twin run with its real run's tuned configuration.
    for kind, these, run_ctx in (("real", folds, ctx), ("twin", twin_folds, twin_ctx)):
        for (seed, fold) in sorted(these):
            need = [s for s in todo if (kind, seed, fold) in missing[s.key]]
            keys = {s.key for s in need}
            riding = {r.key for b, rs in riders.items() if b in keys for r in rs if r.key in keys}
            for spec in need:
                if spec.key in riding:
                    continue  # fitted with its base below
                jobs = []
                for s in [spec, *[r for r in riders.get(spec.key, []) if r.key in riding]]:
                    tuning = tuned[(s.tune_from or s.key, seed, fold)]
                    if s.tune_from:
                        tuning = dict(tuning, inherited_from=s.tune_from)
                    jobs.append((s, tuning, keys_now[(s.key, kind, seed, fold)]))
                key = (seed, fold) if kind == "real" else ("twin", seed, fold)
                ref = remote.remote(spec, refs[key], jobs[0][1]["chosen_config"], seed, ctx.ks,
                                    [(s, t["chosen_config"]) for s, t, _ in jobs[1:]])
                pending[ref] = (jobs, these[(seed, fold)], seed, fold, run_ctx)
    records = list(kept.values())
    with tqdm(total=sum(len(p[0]) for p in pending.values()), desc=f"{scenario} fit+evaluate", unit="run") as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            jobs, pair, seed, fold, run_ctx = pending.pop(done[0])
            results = ray.get(done[0])
            for (spec, tuning, rk), res in zip(jobs, [results, *results.pop("riders", [])]):
                records.append(_write_record(spec, pair, tuning, seed, fold, res, run_ctx, rk))
                bar.update(1)
    return records


def _shared_fits(specs: list[ModelSpec]) -> dict[str, list[ModelSpec]]:
    """``{base key: [rider specs]}``: rows whose fit is their ``tune_from`` base's fit.

    A rider inherits its base's tuned configuration, so the two differ only in their specs'
    fixed configs; the model class decides whether that difference is after the fit
    (:meth:`benchmark.models.base.Recommender.shares_fit`). Only pairs that are both to be
    run share; a rider whose base's records are kept fits on its own.
    """
    by_key = {s.key: s for s in specs}
    out: dict[str, list[ModelSpec]] = {}
    for s in specs:
        base = by_key.get(s.tune_from) if s.tune_from else None
        if base is None or base.cls != s.cls or base.train_cohort != s.train_cohort or base.tune_from:
            continue
        klass = registry.model_class(s.cls)
        if klass.shares_fit(registry.build(base).config, registry.build(s).config):
            out.setdefault(base.key, []).append(s)
    return out


def _tuning_users(folds: dict, budget: Budget) -> dict[tuple[int, int], np.ndarray]:
    """Per (seed, fold) that reuses another fold's tuning: the user ids that tuning was chosen on."""
    seeds = sorted({s for s, _ in folds})
    out = {}
    for key in folds:
        src = tuning_source(*key, seeds, budget)
        if src == key:
            continue
        if src not in folds:
            raise ValueError(f"fold {key} reuses the tuning of fold {src}, which this plan does not build "
                             "(evaluation.folds smaller than the tuning folds?)")
        view = folds[src][0]
        out[key] = np.asarray(view.users[view.valid_users], dtype=str)
    return out


def _exclude(pair: tuple, users) -> tuple:
    return pair if users is None else without_test_users(*pair, users)


def _run_keys(specs: list[ModelSpec], slots: list[tuple], scenario: str, params: Params, ctx: _Context,
              twin_ctx: _Context | None, pretrain_root: Path, embed_root: Path) -> dict[tuple, str]:
    """``{(model, kind, seed, fold): run_key}`` for every run of this plan, and each model's
    tuning-cache key under ``(model, "tuning", -1, -1)``."""
    everyone = load_specs(discover())  # which files are model modules is decided over every spec
    by_key = {s.key: s for s in everyone} | {s.key: s for s in specs}
    rp = reuse.run_params(params, scenario)
    feats = reuse.folder_hash(pretrain_root / scenario, embed_root / scenario)
    out = {}
    for spec in specs:
        code = reuse.model_code_hash(spec, everyone)
        for kind, seed, fold in [*slots, ("tuning", -1, -1)]:  # ("tuning", -1, -1): the model's tuning cache
            sh = twin_ctx.scenario_hash if kind == "twin" else ctx.scenario_hash
            out[(spec.key, kind, seed, fold)] = reuse.run_key(spec, by_key, code, sh, feats, rp, kind, seed, fold)
    return out


def _twin_folds(scenario: str, folder: Path, params: Params, ctx: _Context, keys: list[tuple[int, int]],
                pretrain_root: Path, embed_root: Path, twins_root: Path) -> tuple[_Context | None, dict]:
    """The twin's context and its (view, truth) per (seed, fold) with a twin run; empty for a
    scenario without a twin (``linked``: its rho = 0 recipe is the control).

    Features are the real scenario's, unchanged. The frozen source vectors are learned from
    all users' source histories as a set, which the twin does not change, so they say
    nothing about who holds which history; keeping them fixes the item side and leaves the
    user-history link as the one difference between real and twin. (Recomputing them on
    the twin gives the same vectors only up to the randomized SVD's row-order-dependent
    approximation -- measured on douban-m2b: mean |difference| of item-item cosines 0.028 --
    noise a gain should not contain.)
    """
    if params.scenario(scenario).builder not in REAL_BUILDERS:
        return None, {}
    tfolder = folder / TWIN_DIR
    if not (tfolder / "meta.json").is_file():
        raise FileNotFoundError(f"{tfolder} has no meta.json: rebuild the scenario (`cdrbench scenario {scenario}`), "
                                "which writes its null twin")
    n = params.twins.folds
    keys = [(s, f) for s, f in keys if n is None or f < n]
    if not keys:
        return None, {}
    tables = load_scenario(tfolder)
    tctx = replace(ctx, meta=tables["meta"], scenario_hash=scenario_hash(tfolder), runs_root=Path(twins_root))
    out = {}
    for seed, fold in keys:
        view, truth = build_fold(tables["interactions"], tables["users"], tables["folds"], tables["items"],
                                 tables["meta"], seed, fold, ctx.min_support)
        out[(seed, fold)] = (attach_features(view, Path(pretrain_root) / scenario, Path(embed_root) / scenario), truth)
    return tctx, out


def fit_and_evaluate(spec: ModelSpec, pair: tuple, overrides: dict, seed: int, ks: list[int],
                     riders: list[tuple[ModelSpec, dict]] = ()) -> dict:
    """Fit one model on one fold's training view and evaluate it on the test users.

    Runs in a Ray worker; returns per-user metrics, top-K indices and timings. ``riders``:
    (spec, overrides) of rows derived from this fit (:func:`_shared_fits`); their results,
    in order, are under ``"riders"``, each with the shared fit's seconds as its fit time.
    """
    # One torch thread per task: two tasks share the 2 cores, and these models are small
    # enough that a second thread costs more in synchronisation than it gains.
    torch.set_num_threads(1)
    view, truth = copy.deepcopy(pair)  # Ray's arrays are read-only; models may mutate
    train_view = restrict_training(view, spec.train_cohort)
    model = registry.build(spec, overrides, seed=seed)
    t0 = time.perf_counter()
    model.fit(train_view)
    fit_s = time.perf_counter() - t0
    # Derived before the base is scored, so each rider sees the model exactly as fitted.
    derived = []
    for rspec, roverrides in riders:
        t2 = time.perf_counter()
        rmodel = model.derive(registry.build(rspec, roverrides, seed=seed).config)
        rmodel.fit_info["fit_shared_with"] = spec.key
        derived.append((rmodel, fit_s + time.perf_counter() - t2))
    out = _evaluate(model, view, truth, ks, fit_s, train_view)
    if derived:
        out["riders"] = [_evaluate(m, view, truth, ks, s, train_view) for m, s in derived]
    return out


def _evaluate(model, view, truth, ks: list[int], fit_s: float, train_view) -> dict:
    t1 = time.perf_counter()
    per_user, topk = evaluate_model(model, view.test_users, truth.test, ks, view.popularity())
    # Popped: frame attrs are written into the parquet metadata, and an array is not JSON.
    collapse = collapse_stats(topk, view.popularity(), per_user.attrs.pop("mean_scores", None))
    return {
        "collapse": collapse,
        "per_user": per_user, "topk": topk, "fit_s": fit_s, "score_s": time.perf_counter() - t1,
        "n_train_users": int(len(train_view.train_users)), "fit_info": dict(model.fit_info),
        # Peak RSS of the worker process (workers are reused, so an upper bound).
        "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _write_record(spec: ModelSpec, pair: tuple, tuning: dict, seed: int, fold: int, res: dict, ctx: _Context,
                  key: str | None = None) -> dict:
    view, truth = pair
    rows = view.test_users
    per_user = res["per_user"]
    per_user.insert(0, "user", view.users[rows].astype(str))
    per_user.insert(1, "cohort", view.cohort[rows])
    per_user.insert(2, "n_source", view.source_lengths(rows))
    meta, proto = ctx.meta, ctx.params.protocol
    config = {**spec.config, **tuning["chosen_config"]}
    record = {
        "model": spec.key, "class": spec.cls, "display_name": spec.display_name, "family": spec.family, "external": False,
        "adapted": spec.adapted, "description": spec.description, "config": config, "config_hash": config_hash(config),
        "scenario": meta["name"], "scenario_hash": ctx.scenario_hash, "semi_synthetic": bool(meta.get("semi_synthetic")),
        "seed": seed, "fold": fold, "n_folds": proto.k, "seeds_setting": list(proto.seeds), "setting": ctx.params.setting,
        "min_support": ctx.min_support, "catalog_size": int(view.n_catalog),
        "n_test_users": int(len(rows)), "n_dropped_test": int(truth.dropped["test"]),
        "n_valid_users": int(len(view.valid_users)), "n_dropped_valid": int(truth.dropped["valid"]),
        # test users of this fold that chose the configuration on another fold (never scored)
        "n_excluded_tuning_users": int(truth.dropped.get("tuning", 0)),
        "n_train_users": res["n_train_users"], "train_cohort": spec.train_cohort,
        "tuning": tuning, "data_checksums": ctx.checksums,
        "fit_time_s": round(res["fit_s"], 3), "score_time_s": round(res["score_s"], 3),
        "wall_time_s": round(res["fit_s"] + res["score_s"], 3), "fit_info": jsonable(res["fit_info"]),
        "collapse": res["collapse"],
    }
    if key is not None:  # the incremental-run key (benchmark/experiment/reuse.py)
        record["run_key"] = key
    if meta.get("notes", {}).get("modalities"):  # what each source role really is (multi-source real scenarios)
        record["modalities"] = meta["notes"]["modalities"]
    if "null_twin" in meta:  # a twin run: which permutation, and which real build it is the twin of
        record["null_twin"] = {k: meta["null_twin"][k] for k in ("of", "real_scenario_hash", "seed", "users_moved")}
    record.update(provenance())
    record["peak_mem_mb"] = res["peak_mem_mb"]
    write_run(paths.run_dir(meta["name"], spec.key, seed, fold, root=ctx.runs_root), record, per_user,
              topk_frame(view.users[rows], res["topk"], view.catalog))
    return record

