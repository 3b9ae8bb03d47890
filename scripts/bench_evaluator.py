"""Throughput of the evaluator on random scores, against a full sort of the same matrix.

Usage: ``python scripts/bench_evaluator.py [--users 2000] [--catalogs 1000 10000 50000]``

For each catalog size a dummy model returns rows of a pre-drawn float32 score matrix
(so model cost is a slice copy), and we time

* ``evaluate_model`` end to end (scoring batches, top-max(K), all metrics, head/tail),
* ``topk_indices`` alone on the full matrix,
* the reference ``np.argsort(-scores, axis=1)`` (a full per-row sort, what a naive
  evaluator would do),

each as the best of ``--repeats`` runs in this process, and print users/second and
the ratio to the reference. ``--ties`` draws integer scores in [0, 5) instead, the
worst case of the tie-break pass (counts, co-occurrences).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark.evaluation.evaluate import evaluate_model  # noqa: E402
from benchmark.evaluation.metrics import topk_indices  # noqa: E402

KS = [3, 5, 10, 20]


class RandomScores:
    class_name = "random-bench"

    def __init__(self, scores: np.ndarray):
        self.scores = scores

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.scores[rows]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench(n_users: int, n_items: int, repeats: int, ties: bool, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    if ties:
        scores = rng.integers(0, 5, size=(n_users, n_items)).astype(np.float32)
    else:
        scores = rng.random((n_users, n_items), dtype=np.float32)
    n_pos = rng.integers(1, 11, n_users)  # 1-10 positives per user
    cols = np.concatenate([rng.choice(n_items, size=k, replace=False) for k in n_pos])
    truth = sp.csr_matrix((np.ones(len(cols), np.float32), (np.repeat(np.arange(n_users), n_pos), cols)), shape=(n_users, n_items))
    popularity = rng.poisson(3.0, n_items).astype(np.float64)
    model, rows = RandomScores(scores), np.arange(n_users)

    t_eval = best_of(lambda: evaluate_model(model, rows, truth, KS, popularity), repeats)
    t_topk = best_of(lambda: topk_indices(scores, max(KS)), repeats)
    t_sort = best_of(lambda: np.argsort(-scores, axis=1), repeats)
    return {"catalog": n_items, "eval_s": t_eval, "topk_s": t_topk, "argsort_s": t_sort}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--catalogs", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ties", action="store_true", help="integer scores in [0, 5): tie-heavy worst case")
    args = ap.parse_args()
    print(f"users={args.users} ks={KS} scores={'int ties' if args.ties else 'float32 random'} best of {args.repeats}")
    print(f"{'catalog':>8} {'evaluate_model s':>17} {'users/s':>10} {'topk_indices s':>15} {'argsort s':>10} {'eval/argsort':>13}")
    for m in args.catalogs:
        r = bench(args.users, m, args.repeats, args.ties)
        print(
            f"{r['catalog']:>8} {r['eval_s']:>17.3f} {args.users / r['eval_s']:>10.0f} "
            f"{r['topk_s']:>15.3f} {r['argsort_s']:>10.3f} {r['eval_s'] / r['argsort_s']:>13.3f}"
        )


if __name__ == "__main__":
    main()
