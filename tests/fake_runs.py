"""Fake run records for report tests, written with the real ``write_run`` and evaluator.

Why not hand-written metric columns: ranked lists are generated and scored by
``evaluate_topk``, so every metric, the head/tail breakdown and the per-user pairing
are exactly what a real run would hold. Each model has a ``skill`` in [-1, 1]: with
probability ``|skill|`` a user's list is pushed toward (skill > 0) or away from
(skill < 0) that user's true positives; skill 0 is Popularity's list. Users, truth and
catalog are shared by all models of a (seed, fold), so comparisons are paired.

Null-twin runs (``twin=True``, written under a twins root) use the same users, truth and
random draws as the real runs of the same (seed, fold, model); a model given a smaller
skill on the twin than on the real scenario therefore loses exactly the users its extra
skill pushed, which is a transfer gain the report must find.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmark.config.params import Params
from benchmark.config.paths import run_dir
from benchmark.config.specs import display_names
from benchmark.evaluation.collapse import collapse_stats
from benchmark.evaluation.evaluate import evaluate_topk
from benchmark.evaluation.records import config_hash, topk_frame, write_run
from conftest import make_params

KS = [3, 5, 10, 20]
FAMILY = {"popularity": "baseline", "collopop-artist": "heuristic", "collopop-podcast": "heuristic",
          "itemknn": "neighbour", "bpr": "recbole"}


def _truth(rng: np.random.Generator, n_users: int, n_items: int) -> sp.csr_matrix:
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    rows, cols = [], []
    for u in range(n_users):
        k = int(rng.integers(1, 5))
        items = rng.choice(n_items, size=k, replace=False, p=pop / pop.sum())
        rows += [u] * k
        cols += list(items)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))


def _lists(rng: np.random.Generator, truth: sp.csr_matrix, skill: float, kmax: int) -> np.ndarray:
    n, n_items = truth.shape
    out = np.empty((n, kmax), dtype=np.int64)
    base = np.arange(n_items)  # popularity order: item 0 most popular
    for u in range(n):
        pos = truth.indices[truth.indptr[u]:truth.indptr[u + 1]]
        order = list(base)
        if rng.random() < abs(skill):
            rest = [i for i in order if i not in set(pos)]
            order = list(pos) + rest if skill > 0 else rest + list(pos)
        out[u] = order[:kmax]
    return out


def write_fake_runs(root: Path, scenario: str, skills: dict[str, float], seeds=(0,), n_folds: int = 2,
                    n_users: int = 80, n_items: int = 40, semi: bool = False, external: tuple[str, ...] = (),
                    podcast_share: float = 0.5, folds: tuple[int, ...] | None = None, twin: bool = False) -> list[Path]:
    """Write ``root/<scenario>/<model>/s<seed>_f<fold>/`` run folders; return them.

    ``folds``: only these folds (e.g. ``(0,)`` for CI-style twin runs). ``twin``: records
    of null-twin runs (a ``null_twin`` section), to be written under a twins root.
    """
    written = []
    names = display_names()
    users = np.array([f"u{i:03d}" for i in range(n_users)])
    for seed in seeds:
        perm = np.random.default_rng([seed, 1]).permutation(n_users)
        for fold in range(n_folds):
            if folds is not None and fold not in folds:
                continue
            test = users[np.sort(perm[fold::n_folds])]
            rng = np.random.default_rng([seed, fold, 7])
            truth = _truth(rng, len(test), n_items)
            cohort = np.where(np.arange(len(test)) % int(round(1 / podcast_share)) == 0, "m&p", "m-only") if semi \
                else np.full(len(test), "m-only")
            n_source = np.random.default_rng([seed, fold, 9, 0]).integers(1, 60, size=len(test))
            popularity = np.linspace(100, 1, n_items)
            catalog = np.array([f"book:{i}" for i in range(n_items)])
            for model, skill in sorted(skills.items()):
                mrng = np.random.default_rng([seed, fold, zlib.crc32(model.encode())])
                top = _lists(mrng, truth, 0.0 if model == "popularity" else skill, max(KS))
                per_user = evaluate_topk(top, truth, KS, popularity)
                per_user.insert(0, "user", test)
                per_user.insert(1, "cohort", cohort)
                per_user.insert(2, "n_source", n_source)
                is_ext = model in external
                config = {"skill": skill}
                record = {
                    "model": model, "class": "fake", "family": "external" if is_ext else FAMILY.get(model, "transfer"),
                    "external": is_ext, "display_name": model.removeprefix("external-") if is_ext else names[model],
                    "description": f"fake {model}", "config": config, "config_hash": config_hash(config),
                    "scenario": scenario, "scenario_hash": "0" * 16, "semi_synthetic": semi, "seed": int(seed),
                    "fold": fold, "n_folds": n_folds, "seeds_setting": list(seeds), "setting": "ci", "min_support": 1,
                    "catalog_size": n_items, "n_test_users": len(test), "n_dropped_test": 1, "n_valid_users": 5,
                    "n_dropped_valid": 0,
                    "tuning": {"chosen_config": {} if model == "popularity" else {"lr": 0.01 * (fold + 1), "dim": 64}},
                    "git_rev": "fake", "git_dirty": False, "code_hash": "fakecodehash", "versions": {}, "data_checksums": {},
                    "fit_time_s": 0.0, "score_time_s": 0.0, "wall_time_s": 0.0, "peak_mem_mb": 0.0,
                    "collapse": collapse_stats(top, popularity),
                }
                if twin:
                    record["null_twin"] = {"of": scenario, "real_scenario_hash": "0" * 16, "seed": 1, "users_moved": n_users}
                written.append(write_run(run_dir(scenario, model, int(seed), fold, root=Path(root)), record,
                                         per_user, topk_frame(test, top, catalog)))
    return written


def fake_params(scenarios: dict[str, dict], n_boot: int = 60) -> Params:
    """Typed params for the report: these scenarios, the fake runs' protocol, few bootstrap resamples."""
    return make_params(scenarios, ks=KS, k=2, seeds=[0], bootstrap=n_boot, alpha=0.05)


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)
