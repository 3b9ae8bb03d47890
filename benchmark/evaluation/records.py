"""Run records: no result without its provenance.

Every (scenario, model, seed, fold) run writes one folder,
``results/runs/<scenario>/<model_key>/s<seed>_f<fold>/`` (``benchmark.config.paths.run_dir``):

``record.json``
    what ran (model key, class, config and its hash), on what (scenario and its hash,
    fold sizes, dropped users, data checksums), with what code (git revision, package
    versions) and at what cost (fit/score/wall time, peak memory). Written with
    sorted keys and no timestamps, so re-running an unchanged stage rewrites the same
    bytes except for the measured times.
``per_user.parquet``
    one row per evaluated user: user (str), cohort, n_source, n_pos, metric columns.
``topk.parquet``
    the ranked lists: user, rank (1-based), item (catalog id as str).

Anyone can re-score or re-aggregate from these files without re-running models, and
:func:`collect_runs` is the only reader the report needs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import resource
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import paths
from benchmark.config.jsonio import jsonable

REQUIRED_KEYS = (
    "model", "class", "display_name", "family", "external", "setting", "description", "config", "config_hash",
    "scenario", "scenario_hash", "semi_synthetic", "seed", "fold", "n_folds", "seeds_setting",
    "min_support", "catalog_size", "n_test_users", "n_dropped_test", "n_valid_users",
    "n_dropped_valid", "tuning", "git_rev", "git_dirty", "versions", "data_checksums",
    "fit_time_s", "score_time_s", "wall_time_s", "peak_mem_mb", "collapse", "code_hash",
)  # fmt: skip
PER_USER_LEAD = ("user", "cohort", "n_source", "n_pos")
TOPK_COLUMNS = ("user", "rank", "item")
# Distribution names whose versions go in every record (importlib.metadata: no import cost).
VERSION_DISTS = {
    "cdrbench": "cdrbench", "numpy": "numpy", "pandas": "pandas", "scipy": "scipy", "torch": "torch",
    "recbole": "recbole", "sklearn": "scikit-learn", "sentence_transformers": "sentence-transformers", "ray": "ray",
}  # fmt: skip


def canonical_json(obj) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(cfg) -> str:
    """First 12 hex of sha256 of the canonical JSON (sorted keys, no spaces) of a config."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:12]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool | None]:
    """(HEAD revision or "unknown", dirty flag for tracked files or None when unknown).

    Asked once per process: a stage writes hundreds of records from one checkout, and two
    git subprocesses per record cost more than the record itself."""
    rev = _git("rev-parse", "HEAD")
    if not rev:
        return "unknown", None
    # The pipeline's own tracked outputs (dvc.lock, dataset cards, results, the example
    # submission) are rewritten while it runs; counting them made every record of a clean
    # checkout's `dvc repro` say "uncommitted changes". Only the inputs count.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in PIPELINE_OUTPUTS))
    return rev, (None if status is None else bool(status))


PIPELINE_OUTPUTS = ("dvc.lock", "datasets", "results", "submissions")  # tracked files the pipeline writes


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in VERSION_DISTS.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024.0, 1)


# What decides a run's numbers besides data and params: the code a model run executes and
# the model specs. The report, CLI, loaders and tests are left out on purpose, so a README
# or report change does not mark a leaderboard as produced by other modelling code.
MODEL_CODE = ("benchmark/models", "benchmark/experiment", "benchmark/evaluation", "benchmark/features",
              "benchmark/scenarios/protocol.py", "benchmark/scenarios/schema.py", "models")


def code_hash(root: Path | None = None) -> str:
    """First 12 hex of sha256 over (relative path, bytes) of every ``.py``/``.yaml`` file of :data:`MODEL_CODE`.

    Why not the git revision alone: a leaderboard regenerated after an unrelated commit
    (README, report) is still the same modelling code, and a dirty tree has no revision
    that names it; the hash says exactly which code produced the numbers.
    """
    root = Path(root or paths.ROOT)
    files = []
    for part in MODEL_CODE:
        p = root / part
        found = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in (".py", ".yaml"))
        files += [q for q in found if "__pycache__" not in q.parts]
    h = hashlib.sha256()
    for q in sorted(files, key=lambda q: q.relative_to(root).as_posix()):
        h.update(q.relative_to(root).as_posix().encode() + b"\0" + q.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def provenance() -> dict:
    """The code-side provenance keys of a record: git_rev, git_dirty, code_hash, versions, peak_mem_mb."""
    rev, dirty = git_state()
    return {"git_rev": rev, "git_dirty": dirty, "code_hash": code_hash(), "versions": package_versions(),
            "peak_mem_mb": peak_memory_mb()}


def topk_frame(users: np.ndarray, topk_idx: np.ndarray, catalog) -> pd.DataFrame:
    """Long (user, rank, item) frame from a top-list index array; ``-1`` (empty ranks) dropped."""
    topk_idx = np.asarray(topk_idx)
    users = np.asarray(users).astype(str)
    if len(users) != len(topk_idx):
        raise ValueError(f"{len(users)} users for {len(topk_idx)} ranked lists")
    n, w = topk_idx.shape
    flat = topk_idx.ravel()
    keep = flat >= 0
    cat = np.asarray(catalog).astype(str)
    return pd.DataFrame(
        {
            "user": np.repeat(users, w)[keep],
            "rank": np.tile(np.arange(1, w + 1, dtype=np.int32), n)[keep],
            "item": cat[flat[keep]],
        }
    )


def _validate(record: dict, per_user: pd.DataFrame, topk: pd.DataFrame) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"run record is missing required key(s) {missing}")
    for key in ("seed", "fold", "n_folds", "catalog_size", "n_test_users", "n_dropped_test", "n_valid_users", "n_dropped_valid", "min_support"):
        if isinstance(record[key], bool) or not isinstance(record[key], (int, np.integer)):
            raise TypeError(f"record[{key!r}] must be an int, got {record[key]!r}")
    if not isinstance(record["config"], dict) or not isinstance(record["tuning"], dict):
        raise TypeError("record['config'] and record['tuning'] must be dicts")
    if record["config_hash"] != config_hash(record["config"]):
        raise ValueError(f"config_hash {record['config_hash']!r} does not match the config (expected {config_hash(record['config'])!r})")
    lead_missing = [c for c in PER_USER_LEAD if c not in per_user.columns]
    if lead_missing:
        raise ValueError(f"per_user frame lacks column(s) {lead_missing}")
    if len(per_user) != record["n_test_users"]:
        raise ValueError(f"record says n_test_users={record['n_test_users']} but per_user has {len(per_user)} rows")
    if per_user["user"].duplicated().any():
        raise ValueError("per_user has duplicate users; one row per evaluated user")
    if list(topk.columns) != list(TOPK_COLUMNS):
        raise ValueError(f"topk frame must have columns {list(TOPK_COLUMNS)}, got {list(topk.columns)}")
    stray = set(topk["user"].astype(str)) - set(per_user["user"].astype(str))
    if stray:
        raise ValueError(f"topk lists {len(stray)} user(s) absent from per_user, e.g. {sorted(stray)[:3]}")


def write_run(folder: Path, record: dict, per_user: pd.DataFrame, topk: pd.DataFrame) -> Path:
    """Validate and write one run folder; record.json is written last (it marks completion)."""
    _validate(record, per_user, topk)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pu = per_user.copy()
    pu["user"] = pu["user"].astype(str)
    pu["cohort"] = pu["cohort"].astype(str)
    pu["n_source"] = pu["n_source"].astype("int64")
    pu["n_pos"] = pu["n_pos"].astype("int64")
    pu = pu[list(PER_USER_LEAD) + [c for c in pu.columns if c not in PER_USER_LEAD]]
    tk = topk.astype({"user": str, "rank": "int32", "item": str})
    for name, frame in (("per_user.parquet", pu), ("topk.parquet", tk)):
        tmp = folder / f".{name}.tmp"
        frame.reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, folder / name)
    text = json.dumps(jsonable(record), sort_keys=True, indent=2, allow_nan=False) + "\n"
    tmp = folder / ".record.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, folder / "record.json")
    return folder


def read_record(folder: Path) -> dict:
    path = Path(folder) / "record.json"
    if not path.exists():
        raise FileNotFoundError(f"no record.json in {folder} (an unfinished or foreign run folder)")
    return json.loads(path.read_text())


def collect_runs(runs_root: Path | None = None, scenario: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All run records under ``runs_root`` (default ``results/runs``) and their per-user rows.

    Returns ``(records, per_user)``: one row per run (record keys as columns, nested
    dicts kept as objects, plus ``folder``), and the concatenated per-user frames with
    ``scenario, model, seed, fold`` in front. A record whose contents disagree with its
    folder name is an error: a copied or renamed folder must not be counted twice.
    Folders whose name starts with ``.`` are not runs: they are work in progress or
    debris of an interrupted writer (a submission's ``.<key>.incoming``/``.previous``),
    and a run folder counts only once its ``record.json`` (written last) exists.
    """
    root = Path(runs_root) if runs_root is not None else paths.RUNS
    pattern = f"{scenario}/*/s*_f*/record.json" if scenario else "*/*/s*_f*/record.json"
    recs, frames = [], []
    for path in sorted(root.glob(pattern)):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        folder = path.parent
        rec = json.loads(path.read_text())
        expected = paths.run_dir(rec["scenario"], rec["model"], rec["seed"], rec["fold"], root=root)
        if expected.resolve() != folder.resolve():
            raise ValueError(f"{path}: record says {expected.relative_to(root)} but lives in {folder.relative_to(root)}")
        rec["folder"] = str(folder)
        recs.append(rec)
        pu = pd.read_parquet(folder / "per_user.parquet")
        front = pd.DataFrame({"scenario": rec["scenario"], "model": rec["model"], "seed": rec["seed"], "fold": rec["fold"]}, index=pu.index)
        frames.append(pd.concat([front, pu], axis=1))
    records = pd.DataFrame(recs)
    per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["scenario", "model", "seed", "fold", *PER_USER_LEAD])
    return records, per_user
