"""One tuning harness for every model: Ray Tune with a common budget.

Every model gets the same number of trials on every fold, drawn by the same search
algorithm, the same validation metric, computed by the same evaluator on the fold's
validation users. Trial 0 is the model card's default configuration (the spec's
``config`` values of the searched parameters, which must lie inside the space); the
other trials are seeded random draws from its ``search_space`` with Ray Tune's own
samplers. Why the default first: with the CI setting's two trials, two random draws
decided whether a baseline landed in its good region (ItemKNN on douban-m2b moved from
-88% to parity with Popularity between draws); a documented default, the same rule for
every model, makes a small budget a floor rather than a lottery. The chosen configuration and
every trial are returned so the run record logs them.

Why one sweep per scenario rather than one per (model, fold): a Ray Tune experiment
costs ~15 s of fixed overhead here (measured: 16 s for 4 trials and for 40 trials of a
no-op trainable on 2 cores), which would dominate the budget of fast models. So all
(model, fold, trial) triples of a scenario run as one Ray Tune grid over pre-drawn
configurations; the draws are seeded by (seed, fold, model), so adding a model does not
change another model's configurations.

Ray runs locally (``ray.init(num_cpus=...)``) unless an address is given, in which
case the identical sweep runs on that cluster (``--address ray://HOST:PORT`` or the
``RAY_ADDRESS`` environment variable).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
import warnings
import zlib
from dataclasses import dataclass

import numpy as np

from benchmark.config.params import TuningParams
from benchmark.config.specs import ModelSpec
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.experiment import registry
from benchmark.scenarios.protocol import TrainView, Truth, restrict_training


@dataclass(frozen=True)
class Budget:
    n_trials: int  # per model per fold
    time_budget_s: float  # wall-time cap per (model, fold); the sweep's cap is this times their number
    metric: str = "NDCG@10"
    # Folds per seed whose validation users drive tuning (None: every fold). A smaller
    # value reuses fold 0's choice on the other folds of the same seed: the CI setting.
    tune_folds: int | None = None
    # Seeds whose folds are tuned (the first ones); the others reuse the first seed's choice.
    tune_seeds: int | None = None

    @classmethod
    def from_params(cls, t: TuningParams) -> "Budget":
        return cls(t.n_trials, t.time_budget_s, t.metric, t.tune_folds, t.tune_seeds)


def tuning_source(seed: int, fold: int, seeds: list[int], budget: Budget) -> tuple[int, int]:
    """The (seed, fold) whose validation users choose the configurations used on (seed, fold).

    A tuned fold is its own source. A fold outside ``tune_folds`` reuses fold 0 of its seed,
    a seed outside ``tune_seeds`` (the first seeds of ``seeds``) the first seed's fold 0.
    Why this matters beyond cost: the source fold's validation users are test users of some
    other fold, so the runner removes them from the test users of every fold that reuses
    its choice (:func:`benchmark.experiment.runner.run_scenario`): hyperparameters are never
    chosen on users they are then scored on.
    """
    tuned_seeds = sorted(seeds)[: budget.tune_seeds] if budget.tune_seeds else sorted(seeds)
    src_seed = seed if seed in tuned_seeds else tuned_seeds[0]
    if src_seed != seed:
        return (src_seed, 0)
    if budget.tune_folds and fold >= budget.tune_folds:
        return (seed, 0)
    return (seed, fold)


def _domain(d: dict):
    from ray import tune

    t = d["type"]
    if t == "uniform":
        return tune.uniform(d["low"], d["high"])
    if t == "loguniform":
        return tune.loguniform(d["low"], d["high"])
    if t == "randint":
        return tune.randint(d["low"], d["high"])
    return tune.choice(list(d["values"]))


def _inside(value, d: dict) -> bool:
    if d["type"] == "choice":
        return value in d["values"]
    return value is not None and d["low"] <= value <= d["high"]


def default_config(spec: ModelSpec) -> dict:
    """The card default of every searched parameter: trial 0 of every sweep.

    Read from the built model's typed config, so a parameter the spec leaves to the
    class default is still explicit in the record; a default outside the space is a
    spec error (trial 0 must be a point of the space every other trial is drawn from).
    """
    cfg = registry.build(spec).config
    out = {name: getattr(cfg, name) for name in sorted(spec.search_space)}
    bad = [f"{n}={v!r}" for n, v in out.items() if not _inside(v, spec.search_space[n])]
    if bad:
        raise ValueError(f"models/{spec.key}.yaml: default {', '.join(bad)} outside its search_space")
    return out


def draw_configs(spec: ModelSpec, n: int, seed: int, fold: int) -> list[dict]:
    """``n`` configurations: the card default, then ``n - 1`` draws seeded by (seed, fold, model)."""
    if n <= 0:
        return []
    rng = np.random.default_rng([seed, fold, zlib.crc32(spec.key.encode())])
    out = [default_config(spec)]
    for _ in range(n - 1):
        cfg = {}
        for name in sorted(spec.search_space):
            v = _domain(spec.search_space[name]).sample(random_state=rng)
            cfg[name] = v.item() if isinstance(v, np.generic) else v
        out.append(cfg)
    return out


def validation_score(spec: ModelSpec, config: dict, view: TrainView, truth: Truth, metric: str, seed: int) -> float:
    """Fit with ``config`` on the training view and score the fold's validation users."""
    model = registry.build(spec, config, seed=seed).fit(restrict_training(view, spec.train_cohort))
    k = int(metric.split("@")[1])
    per_user, _ = evaluate_model(model, view.valid_users, truth.valid, [k], view.popularity())
    return float(np.mean(per_user[metric])) if len(per_user) else 0.0


def _trainable(config, refs=None, specs=None, metric=None):
    import ray
    import torch

    torch.set_num_threads(1)  # trials run side by side: one thread each
    t = config["trial"]
    # Ray hands out zero-copy, read-only arrays; scipy sorts sparse indices in place and a
    # model may mutate its inputs. Each trial works on a private copy.
    start = time.perf_counter()
    view, truth = copy.deepcopy(ray.get(refs[(t["seed"], t["fold"])]))
    value = validation_score(specs[t["model"]], t["config"], view, truth, metric, t["seed"])
    # Wall seconds of the trial's fit + validation scoring (the profile reads them from the records).
    return {"value": value, "seconds": round(time.perf_counter() - start, 3)}


class _Progress:
    """A tqdm bar over finished trials (Ray's own reporter is silenced).

    The bar is created lazily and dropped when Ray pickles the callback (Tune saves its
    experiment state), since a terminal stream cannot be pickled.
    """

    def __new__(cls, total: int, desc: str):
        from ray.tune import Callback
        from tqdm.auto import tqdm

        class _Bar(Callback):
            def __init__(self):
                self.bar = None

            def __getstate__(self):
                return {"bar": None}

            def _tick(self):
                if self.bar is None:
                    self.bar = tqdm(total=total, desc=desc, unit="trial")
                self.bar.update(1)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self._tick()

            def on_trial_error(self, iteration, trials, trial, **info):
                self._tick()

            def on_experiment_end(self, trials, **info):
                if self.bar is not None:
                    self.bar.close()

        return _Bar()


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or connect to) Ray once per process, quietly."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no per-sweep result banners
    address = address or os.environ.get("RAY_ADDRESS") or None
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # address="local": always a fresh in-process cluster. A bare ray.init() joins any
        # cluster `ray start` left running on this machine (found through /tmp/ray), so a
        # "local" run would silently depend on what else runs here.
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)


def _untuned(metric: str) -> dict:
    return {"n_trials": 0, "metric": metric, "search": None, "chosen_config": {}, "best_value": None, "trials": []}


def tune_models(
    specs: list[ModelSpec],
    folds: dict[tuple[int, int], tuple[TrainView, Truth]],
    budget: Budget,
    address: str | None = None,
    desc: str = "tuning",
    refs: dict | None = None,
) -> dict[tuple[str, int, int], dict]:
    """Tune every spec with a search space on every fold; one Ray Tune sweep for all.

    Returns ``{(model_key, seed, fold): tuning_record}``. Specs without a search space
    (Popularity) or with ``tune_from`` get no trials here (the runner resolves the
    latter from the tuned target). ``refs``: the folds already in Ray's object store
    (the runner's), else they are put here.
    """
    out: dict[tuple[str, int, int], dict] = {}
    tunable = [s for s in specs if s.search_space and not s.tune_from and budget.n_trials > 0]
    for s in specs:
        if s not in tunable:
            for seed, fold in folds:  # every fold, tuned or not
                out[(s.key, seed, fold)] = _untuned(budget.metric)
    if not tunable:
        return out
    all_folds = folds
    seeds = sorted({k[0] for k in folds})
    folds = {k: v for k, v in folds.items() if tuning_source(*k, seeds, budget) == k}
    for (seed, fold), (view, _) in folds.items():
        if len(view.valid_users) == 0:
            raise ValueError(f"fold (seed={seed}, fold={fold}) has no validation user with a positive in its catalog")
    trials = [
        {"model": s.key, "seed": seed, "fold": fold, "i": i, "config": cfg}
        for s in tunable
        for (seed, fold) in sorted(folds)
        for i, cfg in enumerate(draw_configs(s, budget.n_trials, seed, fold))
    ]
    ensure_ray(address)
    import ray
    from ray import air, tune

    if refs is None:
        refs = {key: ray.put(pair) for key, pair in folds.items()}
    trainable = tune.with_parameters(_trainable, refs=refs, specs={s.key: s for s in tunable}, metric=budget.metric)
    cap = budget.time_budget_s * len(tunable) * len(folds)
    with tempfile.TemporaryDirectory(prefix="cdrbench-tune-") as tmp:
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(metric="value", mode="max", num_samples=1, time_budget_s=cap, reuse_actors=True),
            run_config=air.RunConfig(storage_path=tmp, verbose=0, log_to_file=False,
                                     callbacks=[_Progress(len(trials), desc)]),
        )
        results = tuner.fit()
        finished = []
        for r in results:
            if r.error is not None:
                raise RuntimeError(f"tuning trial {r.config.get('trial', {}).get('model')} failed: {r.error}")
            finished.append((dict(r.config["trial"], seconds=r.metrics.get("seconds")), float(r.metrics["value"])))
    del refs
    for s in tunable:
        for seed, fold in folds:
            mine = [(t, v) for t, v in finished if t["model"] == s.key and t["seed"] == seed and t["fold"] == fold]
            if not mine:
                raise RuntimeError(f"{s.key}: no tuning trial finished on fold ({seed}, {fold}) within {cap:.0f}s")
            mine.sort(key=lambda tv: (-tv[1], tv[0]["i"]))  # best value; ties -> first drawn
            out[(s.key, seed, fold)] = {
                "n_trials": len(mine),
                "budget_trials": budget.n_trials,
                "time_budget_s": budget.time_budget_s,
                "metric": budget.metric,
                "search": "card default, then random (ray.tune samplers, seeded by seed/fold/model)",
                "chosen_config": mine[0][0]["config"],
                "best_value": mine[0][1],
                "trials": [{"config": t["config"], "value": v, "seconds": t["seconds"]}
                           for t, v in sorted(mine, key=lambda tv: tv[0]["i"])],
                "tuned_on": [seed, fold],
            }
    for s in tunable:  # folds outside tune_folds / tune_seeds reuse their source's choice
        for seed, fold in all_folds:
            if (s.key, seed, fold) not in out:
                out[(s.key, seed, fold)] = out[(s.key, *tuning_source(seed, fold, seeds, budget))]
    return out
