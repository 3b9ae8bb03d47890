"""Scale check of the out-of-core prepare stage (benchmark/data/full.py), issue 19 part 3.

Generates a Goodreads-like ``goodreads_interactions.csv`` of ``--rows`` rows (default
20,000,000) with its two id maps, then prepares it in a child process with DuckDB's
``memory_limit`` at 1.5GB and reports wall time and the child's peak resident memory
(``getrusage(RUSAGE_CHILDREN).ru_maxrss``). The check is the peak RSS against 2 GB: an
address-space limit (RLIMIT_AS) would also count memory DuckDB and its allocator only
reserve, and refuse runs that never use it. Exit code 1 when the peak exceeds the limit.

The file mimics the real one's shape: integer ids (876K users and 2.36M books for 228M
rows, so about 260 rows per user and 97 per book, scaled to ``--rows``), skewed book
popularity, read/rating/review rates near the published ones, and the duplicates and
unknown ids random ids produce. Writes ``results/perf/prepare_full.json``.

    python scripts/bench_prepare_full.py                 # 20M rows
    python scripts/bench_prepare_full.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 2_000_000
CHILD = """
import json, sys
from pathlib import Path
from benchmark.data.full import prepare_full
rep = prepare_full("bench", "goodreads", Path(sys.argv[1]), Path(sys.argv[2]), memory_limit=sys.argv[3], threads=int(sys.argv[4]),
                   work_dir=Path(sys.argv[5]))
print(json.dumps(rep))
"""


def generate(folder: Path, rows: int, seed: int = 0) -> dict:
    """Write the CSV and the two id maps; returns their sizes."""
    rng = np.random.default_rng(seed)
    n_users, n_books = max(2, rows // 260), max(2, rows // 97)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "goodreads_interactions.csv"
    with open(csv, "wb") as fh:
        fh.write(b"user_id,book_id,is_read,rating,is_reviewed\n")
        done = 0
        while done < rows:
            n = min(CHUNK, rows - done)
            users = np.sort(rng.integers(0, n_users, n))  # the real file is grouped by user
            books = (n_books * rng.random(n) ** 2).astype(np.int64)  # skewed popularity
            books[rng.random(n) < 0.001] = n_books + 7  # an id absent from the map
            is_read = rng.random(n) < 0.49
            rating = np.where(is_read, rng.choice(6, n, p=[0.25, 0.03, 0.07, 0.2, 0.25, 0.2]), 0)
            reviewed = is_read & (rng.random(n) < 0.07)
            t = pa.table({"u": users, "b": books, "r": is_read.astype(np.int8), "v": rating.astype(np.int8), "w": reviewed.astype(np.int8)})
            pacsv.write_csv(t, fh, pacsv.WriteOptions(include_header=False))
            done += n
    # id maps like the published ones: csv id -> the books file's id / a 32-hex user id
    book_ids = rng.permutation(n_books) * 3 + 1
    (folder / "book_id_map.csv").write_text("book_id_csv,book_id\n" + "".join(f"{i},{b}\n" for i, b in enumerate(book_ids)))
    hexes = rng.integers(0, 2**63, (n_users, 2), dtype=np.int64)
    (folder / "user_id_map.csv").write_text("user_id_csv,user_id\n" + "".join(f"{i},{a:016x}{b:016x}\n" for i, (a, b) in enumerate(hexes)))
    return {"users": n_users, "books": n_books, "csv_bytes": csv.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--memory-limit", default="1.5GB", help="DuckDB memory_limit of the child")
    ap.add_argument("--rss-limit-mb", type=float, default=2048, help="peak resident memory allowed to the child")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder, removed after)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "perf" / "prepare_full.json")
    args = ap.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-prepare-full-"))
    try:
        t0 = time.perf_counter()
        shape = generate(work / "raw", args.rows)
        gen_s = time.perf_counter() - t0
        print(f"generated {args.rows:,} rows ({shape['csv_bytes'] / 1e6:.0f} MB) in {gen_s:.1f}s", flush=True)
        (work / "duck").mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t1 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(work / "raw"), str(work / "prepared"), args.memory_limit,
                               str(args.threads), str(work / "duck")], capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - t1
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        rep = json.loads(proc.stdout.strip().splitlines()[-1])
        f = rep["files"]["goodreads_interactions.csv"]
        res = {
            "rows": args.rows,
            "users": shape["users"],
            "books": shape["books"],
            "csv_mb": round(shape["csv_bytes"] / 1e6, 1),
            "generate_seconds": round(gen_s, 1),
            "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_mb, 1),
            "rss_limit_mb": args.rss_limit_mb,
            "within_limit": peak_mb <= args.rss_limit_mb,
            "how_memory_is_limited": "DuckDB SET memory_limit in the child; peak RSS measured with getrusage(RUSAGE_CHILDREN).ru_maxrss",
            "memory_limit": args.memory_limit,
            "threads": args.threads,
            "interactions_written": rep["interactions"],
            "dropped": f["dropped"],
            "dropped_total": sum(f["dropped"].values()),
            "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "python": platform.python_version()},
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"prepared {args.rows:,} rows in {seconds:.1f}s, peak RSS {peak_mb:.0f} MB (limit {args.rss_limit_mb:.0f} MB) -> {args.out}")
        return 0 if res["within_limit"] else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
