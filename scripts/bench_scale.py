"""Scale curves: time and peak memory against users and catalog size, on synthetic data.

Usage: ``python scripts/bench_scale.py [--out results/perf] [--users 10000 100000 1000000]
[--items 10000 100000] [--tasks evaluate map2t_epoch popularity_fit collopop_fit]``;
``--quick`` runs a small grid in seconds (the smoke test's grid).

Issue 16 item 4 asks how the pipeline's pieces grow from 10k to 1M users and from 10k
to 100k catalog items, and that 1M users x 100k items be evaluated in under 4 GB. For
every (users, items) point a fresh Python process (one torch thread) builds seeded
synthetic inputs and runs the tasks one after the other:

* ``evaluate``: :func:`~benchmark.evaluation.evaluate.evaluate_model` over every user, scores
  ``U[rows] @ V.T`` from 64-d factors batch by batch (the users x items matrix never
  exists), 1-8 positives per user;
* ``map2t_epoch``: :class:`~benchmark.models.map2t.model.MAP2T` fitted for one epoch
  (``max_epochs=1``) on a synthetic :class:`~benchmark.scenarios.protocol.TrainView`
  with given 64-d source and item vectors (so no SVD) and ``holdout_share=0``: the
  holdout NDCG scores all holdout users against the catalog in one matrix, which at
  1M users x 100k items would need ~32 GB (reported as an open item, not measured);
  the time reported is ``fit_info["epoch_time_s"]``, the whole fit beside it;
* ``popularity_fit`` / ``collopop_fit``: ``Popularity.fit`` / ``ColloPop.fit`` (music,
  alpha 0.5) on the same kind of view.

Memory is the child process's resident set as the kernel counts it (RSS, not
tracemalloc, which would miss torch's and BLAS's allocations): before each task's
inputs are built the peak (``VmHWM``) is reset to the current RSS through
``/proc/self/clear_refs``, and ``peak_rss_mb`` is ``VmHWM`` after the task: the peak of
the whole process (interpreter, imported libraries, the task's inputs and its work)
while that task was set up and run. ``setup_rss_mb`` is the RSS just before the timed
part, ``setup_peak_mb`` the peak while building the inputs. The 4 GB check reads
``peak_rss_mb``, an upper bound on what the evaluation needs (it runs first, in a
process holding only its imports). Writes ``scale.csv``, ``scale.md`` and ``scale.png``
to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

TASKS = ("evaluate", "popularity_fit", "collopop_fit", "map2t_epoch")
GRID = {"users": [10_000, 100_000, 1_000_000], "items": [10_000, 100_000]}
QUICK = {"users": [1_000, 4_000], "items": [500]}
DIM = 64
N_MUSIC, N_PODCAST = 20_000, 5_000  # source catalogs, fixed across the grid
COLUMNS = ["task", "users", "items", "seconds", "per_s", "peak_rss_mb", "setup_rss_mb", "setup_peak_mb", "detail"]
LIMIT_MB = 4096


# ---------------------------------------------------------------- synthetic inputs (child)


def zipf_draws(rng: np.random.Generator, n_items: int, size: int, a: float = 0.8) -> np.ndarray:
    """Item draws with a long-tailed popularity (p ~ rank^-a), as consumption data have."""
    p = (np.arange(1, n_items + 1, dtype=np.float64)) ** -a
    return rng.choice(n_items, size=size, p=p / p.sum()).astype(np.int32)


def history(rng: np.random.Generator, users: np.ndarray, n_rows: int, n_items: int, per_user: np.ndarray) -> sp.csr_matrix:
    rows = np.repeat(users, per_user)
    cols = zipf_draws(rng, n_items, len(rows))
    vals = rng.integers(1, 50, len(rows)).astype(np.float32)
    m = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_items))
    m.sum_duplicates()
    return m


def synthetic_view(n_users: int, n_items: int, seed: int = 0):
    """A TrainView built directly (``build_fold`` on a 1M-user table would time pandas, not the model).

    80/10/10 train/valid/test users; 10 music draws per user, 3 podcast draws for half
    of them, 1-8 target positives; only training users' target rows are kept, as
    ``build_fold`` guarantees. Given 64-d vectors for source and catalog items.
    """
    import pandas as pd

    from benchmark.scenarios.protocol import TrainView
    from benchmark.scenarios.schema import cohort_of

    rng = np.random.default_rng([seed, n_users, n_items])
    role = rng.random(n_users)
    train, valid, test = np.flatnonzero(role < 0.8), np.flatnonzero((role >= 0.8) & (role < 0.9)), np.flatnonzero(role >= 0.9)
    everyone = np.arange(n_users)
    music = history(rng, everyone, n_users, N_MUSIC, np.full(n_users, 10))
    has_podcast = rng.random(n_users) < 0.5
    podcast = history(rng, np.flatnonzero(has_podcast), n_users, N_PODCAST, np.full(int(has_podcast.sum()), 3))
    target = history(rng, train, n_users, n_items, rng.integers(1, 9, len(train)))
    cohort = np.where(has_podcast, cohort_of(True, True), cohort_of(True, False))
    catalog = pd.Index([f"book:{j}" for j in range(n_items)])
    emb = {d: rng.standard_normal((n, DIM), dtype=np.float32) for d, n in (("music", N_MUSIC), ("podcast", N_PODCAST))}
    return TrainView(
        scenario=f"synthetic-{n_users}x{n_items}", seed=seed, fold=0, users=pd.RangeIndex(n_users),
        train_users=train, valid_users=valid, test_users=test, source_domains=["music", "podcast"],
        source={"music": music, "podcast": podcast},
        source_items={"music": pd.RangeIndex(N_MUSIC), "podcast": pd.RangeIndex(N_PODCAST)},
        target_train=target, catalog=catalog, cohort=cohort,
        items=pd.DataFrame({"title": catalog, "creator": "", "text": catalog}, index=catalog),
        source_emb=emb, source_emb_mask={d: np.ones(len(e), dtype=bool) for d, e in emb.items()},
        item_text_emb=rng.standard_normal((n_items, DIM), dtype=np.float32), item_text_mask=np.ones(n_items, dtype=bool),
    )


def evaluation_inputs(n_users: int, n_items: int, seed: int = 0):
    import torch

    from bench_evaluator import FactorModel

    rng = np.random.default_rng([seed, n_users, n_items, 1])
    model = FactorModel(torch.from_numpy(rng.standard_normal((n_users, DIM), dtype=np.float32)),
                        torch.from_numpy(rng.standard_normal((n_items, DIM), dtype=np.float32)))
    truth = history(rng, np.arange(n_users), n_users, n_items, rng.integers(1, 9, n_users))
    popularity = rng.poisson(3.0, n_items).astype(np.float64)
    return model, truth, popularity


# ---------------------------------------------------------------- measurements (child)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> None:
    """Reset the kernel's peak resident set (VmHWM) to the current one (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def _timed(task: str, n_users: int, n_items: int, run) -> dict:
    """Time ``run()`` and read the process's peak resident set since the last reset."""
    gc.collect()
    setup_rss, setup_peak = _status_mb("VmRSS"), _status_mb("VmHWM")
    t0 = time.perf_counter()
    n_done, seconds, detail = run()
    seconds = time.perf_counter() - t0 if seconds is None else seconds
    return {"task": task, "users": n_users, "items": n_items, "seconds": round(seconds, 6),
            "per_s": round(n_done / seconds, 1) if seconds > 0 else None, "peak_rss_mb": round(_status_mb("VmHWM"), 1),
            "setup_rss_mb": round(setup_rss, 1), "setup_peak_mb": round(setup_peak, 1), "detail": json.dumps(detail, sort_keys=True)}


def measure_point(n_users: int, n_items: int, tasks: list[str], seed: int):
    """Run ``tasks`` at one grid point, yielding one row each (see the module docstring).

    Evaluation goes first, in a process that holds nothing but its imports. The three
    fits share one synthetic view, built once after the evaluation inputs are freed.
    """
    import torch

    torch.set_num_threads(1)
    from benchmark.evaluation.evaluate import evaluate_model
    from benchmark.models.collopop import ColloPop
    from benchmark.models.map2t.model import MAP2T
    from benchmark.models.popularity import Popularity

    if "evaluate" in tasks:
        _reset_peak()
        model, truth, pop = evaluation_inputs(n_users, n_items, seed)

        def run_eval():
            frame, _ = evaluate_model(model, np.arange(n_users), truth, [3, 5, 10, 20], pop, batch_size=1024)
            return n_users, None, {"mean_ndcg10": round(float(frame["NDCG@10"].mean()), 6)}

        yield _timed("evaluate", n_users, n_items, run_eval)
        del model, truth, pop
    fits = [t for t in TASKS if t != "evaluate" and t in tasks]
    if not fits:
        return
    gc.collect()
    _reset_peak()
    view = synthetic_view(n_users, n_items, seed)
    for task in fits:
        gc.collect()
        _reset_peak()
        if task == "popularity_fit":
            def run_popularity():
                Popularity().fit(view)
                return n_users, None, {}

            yield _timed(task, n_users, n_items, run_popularity)
        elif task == "collopop_fit":
            def run_collopop():
                m = ColloPop(ColloPop.Config(domain="music", alpha=0.5)).fit(view)
                return n_users, None, {"cooc_nnz": int(m._cooc.nnz)}

            yield _timed(task, n_users, n_items, run_collopop)
        else:
            def run_map2t():
                t0 = time.perf_counter()
                m = MAP2T(MAP2T.Config(max_epochs=1, holdout_share=0.0), seed=seed).fit(view)
                info = m.fit_info
                return info["n_fit_users"], float(info["epoch_time_s"]), {
                    "fit_total_s": round(time.perf_counter() - t0, 3), "n_pairs": info["n_pairs"], "n_fit_users": info["n_fit_users"]}

            yield _timed(task, n_users, n_items, run_map2t)


# ---------------------------------------------------------------- the grid (parent)


def run_point(n_users: int, n_items: int, tasks: list[str], seed: int) -> list[dict]:
    """One child process per grid point; its rows, or a failed row per task it did not report."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n_users), str(n_items), "--seed", str(seed), "--tasks", *tasks]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {r["task"] for r in rows}
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    for task in tasks:
        if task not in done:  # killed (out of memory?) or raised
            rows.append({"task": task, "users": n_users, "items": n_items, "seconds": None, "per_s": None, "peak_rss_mb": None,
                         "setup_rss_mb": None, "setup_peak_mb": None, "detail": json.dumps({"failed": proc.returncode, "stderr": tail})})
    return rows


def _typed(row: dict) -> dict:
    """A row read back from scale.csv with its numbers as numbers (empty: None)."""
    out = dict(row)
    for c in ("users", "items"):
        out[c] = int(row[c])
    for c in ("seconds", "per_s", "peak_rss_mb", "setup_rss_mb", "setup_peak_mb"):
        out[c] = float(row[c]) if row[c] else None
    return out


def markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# Scale curves (synthetic data)",
        "",
        f"`{command}`. Torch on 1 thread, shared 2-core machine (read the shape of the "
        "curves and the ratios). `seconds`: the task alone (for `map2t_epoch`, `fit_info['epoch_time_s']` of a "
        "1-epoch fit; the whole fit is in `detail`). `per_s`: users per second (MAP-2T: training users per "
        "second). Memory: `peak RSS` is the child process's peak resident set (kernel `VmHWM`, reset through "
        "`/proc/self/clear_refs` before the task's inputs are built): interpreter, libraries, inputs and the task. "
        "`setup RSS` is the resident set just before the timed part. One process per (users, items) point; "
        "evaluation runs first in it, the three fits then share one synthetic view.",
        "",
        "| task | users | catalog items | seconds | per s | peak RSS MB | setup RSS MB | detail |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    fmt = lambda v, f: "failed" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        lines.append(f"| {r['task']} | {int(r['users']):,} | {int(r['items']):,} | {fmt(r['seconds'], '.2f')} | "
                     f"{fmt(r['per_s'], ',.0f')} | {fmt(r['peak_rss_mb'], ',.0f')} | {fmt(r['setup_rss_mb'], ',.0f')} | "
                     f"{r['detail'].replace('|', '/')} |")
    big = [r for r in rows if r["task"] == "evaluate" and r["peak_rss_mb"] is not None]
    if big:
        r = max(big, key=lambda r: (r["users"] * r["items"]))
        verdict = "under" if r["peak_rss_mb"] < LIMIT_MB else "NOT under"
        lines += ["", f"Largest evaluation measured: {int(r['users']):,} users x {int(r['items']):,} items, "
                      f"peak RSS {r['peak_rss_mb']:,.0f} MB, {verdict} the {LIMIT_MB:,} MB (4 GB) limit."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for (metric, label), ax in zip((("seconds", "time (s)"), ("peak_rss_mb", "peak RSS (MB)")), axes):
        for color, task in zip(("C0", "C1", "C2", "C3"), TASKS):  # colour: task; line style: catalog size
            for style, items in zip(("-", "--", ":", "-."), sorted({r["items"] for r in rows})):
                pts = sorted((r["users"], r[metric]) for r in rows if r["task"] == task and r["items"] == items and r[metric])
                if pts:
                    ax.plot(*zip(*pts), marker="o", color=color, ls=style, label=f"{task}, {items:,} items")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("users")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("Time per task vs users (log-log)")
    axes[1].set_title("Peak memory per task vs users (log-log)")
    axes[1].axhline(LIMIT_MB, color="grey", ls="--", lw=1, label="4 GB")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("cdrbench scale curves, synthetic data, 1 torch thread")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "perf")
    ap.add_argument("--users", type=int, nargs="+")
    ap.add_argument("--items", type=int, nargs="+")
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--quick", action="store_true", help=f"small grid for a smoke test: {QUICK}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true",
                    help="keep the measured rows of an existing OUT/scale.csv and run only the missing or failed ones")
    ap.add_argument("--worker", nargs=2, type=int, metavar=("USERS", "ITEMS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        for row in measure_point(*args.worker, args.tasks, args.seed):
            print(json.dumps(row), flush=True)
        return []
    grid = QUICK if args.quick else GRID
    users, items = args.users or grid["users"], args.items or grid["items"]
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    csv_path = args.out / "scale.csv"
    kept = {}
    if args.resume and csv_path.exists():
        with csv_path.open() as f:
            for r in csv.DictReader(f):
                if r["seconds"]:  # measured; failed rows are run again
                    kept[(r["task"], int(r["users"]), int(r["items"]))] = _typed(r)
    rows = []
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for n_items in items:
            for n_users in users:
                todo = [t for t in args.tasks if (t, n_users, n_items) not in kept]
                fresh = {r["task"]: r for r in (run_point(n_users, n_items, todo, args.seed) if todo else [])}
                for task in args.tasks:
                    r = fresh.get(task) or kept[(task, n_users, n_items)]
                    rows.append(r)
                    w.writerow(r)
                    print(f"{r['task']:>15} users={n_users:>9,} items={n_items:>7,}  s={r['seconds']}  "
                          f"peak_rss_mb={r['peak_rss_mb']}  {r['detail']}" + ("" if task in fresh else "  (kept)"), flush=True)
                f.flush()  # a long grid leaves its finished points behind if stopped
    (args.out / "scale.md").write_text(markdown(rows, command))
    plot(rows, args.out / "scale.png")
    return rows


if __name__ == "__main__":
    main()
