"""One tuning harness for every model: Ray Tune with a common budget.

Every model gets the same number of trials and the same wall-time cap per fold, the
same search algorithm (hyperopt's TPE through Ray Tune, seeded) and the same
validation metric computed by the same evaluator on the fold's validation users.
The chosen configuration and every trial are returned so the run record can log them.

Ray runs locally (``ray.init(num_cpus=...)``) unless an address is given, in which
case the identical sweep runs on that cluster (``--address ray://HOST:PORT`` or the
``RAY_ADDRESS`` environment variable).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np

from .protocol import TrainView, Truth
from .specs import ModelSpec


@dataclass(frozen=True)
class Budget:
    n_trials: int
    time_budget_s: float
    metric: str = "NDCG@10"
    search: str = "hyperopt"  # or "random"


def _ray_space(space: dict):
    from ray import tune

    out = {}
    for name, d in space.items():
        t = d["type"]
        if t == "uniform":
            out[name] = tune.uniform(d["low"], d["high"])
        elif t == "loguniform":
            out[name] = tune.loguniform(d["low"], d["high"])
        elif t == "randint":
            out[name] = tune.randint(d["low"], d["high"])
        else:
            out[name] = tune.choice(list(d["values"]))
    return out


def validation_score(spec: ModelSpec, config: dict, view: TrainView, truth: Truth, metric: str, seed: int) -> float:
    """Fit with ``config`` on the training view and score the fold's validation users."""
    from .evaluation.evaluate import evaluate_model

    model = spec.build(config, seed=seed).fit(view)
    per_user, _ = evaluate_model(model, view.valid_users, truth.valid, [int(metric.split("@")[1])], view.popularity())
    return float(np.mean(per_user[metric])) if len(per_user) else 0.0


def _trainable(config, spec=None, view=None, truth=None, metric=None, seed=0):
    import torch

    torch.set_num_threads(1)  # trials run side by side: one thread each
    value = validation_score(spec, config, view, truth, metric, seed)
    return {metric.replace("@", "_at_"): value}


_RAY_STARTED = False


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start (or connect to) Ray once per process, quietly."""
    global _RAY_STARTED
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    kwargs = dict(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    _RAY_STARTED = True


def tune_model(spec: ModelSpec, view: TrainView, truth: Truth, budget: Budget, seed: int, address: str | None = None) -> dict:
    """Search ``spec.search_space`` with the common budget; return chosen config + trials.

    Models with an empty search space (Popularity) are not tuned: the record says so.
    """
    if not spec.search_space or budget.n_trials < 1:
        return {"n_trials": 0, "metric": budget.metric, "chosen_config": {}, "best_value": None, "trials": []}
    if len(view.valid_users) == 0:
        raise ValueError(f"{spec.key}: fold has no validation users with a positive in the catalog; cannot tune")
    ensure_ray(address)
    from ray import air, tune

    key = budget.metric.replace("@", "_at_")
    if budget.search == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(random_state_seed=seed, n_initial_points=max(2, budget.n_trials // 2))
    elif budget.search == "random":
        search_alg = None
    else:
        raise ValueError(f"unknown search algorithm {budget.search!r}; use 'hyperopt' or 'random'")
    trainable = tune.with_parameters(_trainable, spec=spec, view=view, truth=truth, metric=budget.metric, seed=seed)
    with tempfile.TemporaryDirectory(prefix="cdrbench-tune-") as tmp:
        tuner = tune.Tuner(
            trainable,
            param_space=_ray_space(spec.search_space),
            tune_config=tune.TuneConfig(
                metric=key,
                mode="max",
                num_samples=budget.n_trials,
                search_alg=search_alg,
                time_budget_s=budget.time_budget_s,
            ),
            run_config=air.RunConfig(storage_path=tmp, verbose=0, log_to_file=False),
        )
        results = tuner.fit()
        trials = []
        for r in results:
            if r.error is not None:
                raise RuntimeError(f"{spec.key}: a tuning trial failed: {r.error}")
            cfg = {k: _plain(v) for k, v in r.config.items()}
            trials.append({"config": cfg, "value": float(r.metrics[key])})
    if not trials:
        raise RuntimeError(f"{spec.key}: no tuning trial finished within {budget.time_budget_s}s")
    # Deterministic choice: best value, ties broken by the canonical config string.
    trials.sort(key=lambda t: (-t["value"], repr(sorted(t["config"].items()))))
    return {
        "n_trials": len(trials),
        "time_budget_s": budget.time_budget_s,
        "metric": budget.metric,
        "search": budget.search,
        "chosen_config": trials[0]["config"],
        "best_value": trials[0]["value"],
        "trials": trials,
    }


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v
