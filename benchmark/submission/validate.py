"""Leaderboard submissions, step 1: validate an outside model's ranked lists.

A submission folder holds ``metadata.yaml`` (or ``.json``) and ``predictions.csv`` (or
``.parquet``) with columns ``seed, fold, user, item, rank``: one ranked list per test
user per (seed, fold), best first, at least max(K) items.

Why so strict, and why everything is checked before anything is written: a
leaderboard is only as trustworthy as its weakest entry. The lists are scored by the
benchmark's own evaluator (``evaluate_topk``) against the held-out truth of the exact
fold, never from numbers the submitter claims; the expected test users and catalog
are recomputed from the scenario with ``load_fold``, so a list for the wrong users,
items outside the fold catalog, or a stale scenario (hash mismatch) is refused. All
problems are collected and reported together, so a submitter fixes them in one go;
on rejection nothing on disk changes. On acceptance the runs are written as ordinary
run records (``external: True``) under ``results/external/<scenario>/external-<slug>/``,
so the next ``cdrbench report`` lists the entry, marked "(external)". Scoring and
writing are :mod:`benchmark.submission.score`; who may file under a key (never over
another submitter's entry) is :mod:`benchmark.submission.entries`.

Files are read through :mod:`benchmark.submission.reading`, which refuses what would
cost unbounded time or memory before parsing it: YAML anchors, aliases and tags, and
metadata over 64 KiB; predictions over 200 MB on disk or once decompressed, or with more
rows than the scenario can use. That row cap is why the scenario is loaded before the
predictions: twice the rows of a top-max(K) list for each test user of the declared
seeds, plus :data:`ROW_SLACK` (ranks beyond max K are never scored).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config import paths
from benchmark.config.params import Params
from benchmark.scenarios.protocol import TrainView, load_fold, load_scenario
from benchmark.scenarios.schema import SchemaError, scenario_hash
from benchmark.submission import reading
from benchmark.submission.entries import owner_problem, slugify

DEFAULT_KS = (3, 5, 10, 20)
PRED_COLUMNS = ("seed", "fold", "user", "item", "rank")
META_FIELDS = {"model": str, "authors": (str, list), "code_url": str, "description": str,
               "scenario": str, "scenario_hash": str, "seeds": list}
EXAMPLES = 3
ROW_SLACK = 1000
SCENARIO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class SubmissionError(ValueError):
    """A submission was refused; ``problems`` lists every reason, one clear message each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"submission rejected, {len(self.problems)} problem(s):\n- " + "\n- ".join(self.problems))


def _examples(values) -> str:
    vals = sorted(str(v) for v in values)
    return ", ".join(vals[:EXAMPLES]) + (", ..." if len(vals) > EXAMPLES else "")


def _one_file(folder: Path, names: tuple[str, ...], what: str, problems: list[str]) -> Path | None:
    found = [folder / n for n in names if (folder / n).is_file()]
    if not found:
        problems.append(f"{what}: none of {', '.join(names)} found in {folder}")
    elif len(found) > 1:
        problems.append(f"{what}: found {', '.join(p.name for p in found)}; keep exactly one")
    return found[0] if len(found) == 1 else None


def read_metadata(folder: Path, problems: list[str]) -> dict | None:
    path = _one_file(folder, ("metadata.yaml", "metadata.yml", "metadata.json"), "metadata", problems)
    if path is None:
        return None
    before = len(problems)
    meta = reading.load_metadata(path, problems)
    if len(problems) > before:
        return None
    if not isinstance(meta, dict):
        problems.append(f"{path.name}: must be a mapping of fields, got {type(meta).__name__}")
        return None
    for key, typ in META_FIELDS.items():
        if key not in meta:
            problems.append(f"{path.name}: missing field '{key}'")
        elif not isinstance(meta[key], typ) or (isinstance(meta[key], str) and not meta[key].strip()):
            kind = getattr(typ, "__name__", "str or list")
            problems.append(f"{path.name}: field '{key}' must be a non-empty {kind}, got {meta[key]!r}")
    for key in ("seeds", "folds"):
        v = meta.get(key)
        if isinstance(v, list) and (not v or not all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            problems.append(f"{path.name}: field '{key}' must be a non-empty list of integers, got {v!r}")
        elif key == "folds" and v is not None and not isinstance(v, list):
            problems.append(f"{path.name}: field 'folds' must be a list of integers, got {v!r}")
    authors = meta.get("authors")
    if isinstance(authors, list) and not (authors and all(isinstance(a, str) and a.strip() for a in authors)):
        problems.append(f"{path.name}: field 'authors' must be a name or a non-empty list of names, got {authors!r}")
    if "replaces" in meta and not isinstance(meta["replaces"], str):
        problems.append(f"{path.name}: field 'replaces' must be an entry key such as 'external-my-model', "
                        f"got {meta['replaces']!r}")
    if isinstance(meta.get("model"), str) and not slugify(meta["model"]):
        problems.append(f"{path.name}: model name {meta['model']!r} has no letters or digits to name the entry by")
    if isinstance(meta.get("scenario"), str) and not SCENARIO_NAME.fullmatch(meta["scenario"]):
        problems.append(f"{path.name}: scenario {meta['scenario']!r} is not a scenario name")
    return meta


def find_predictions(folder: Path, problems: list[str]) -> Path | None:
    """The predictions file, if there is exactly one and it is within the on-disk size cap."""
    path = _one_file(folder, ("predictions.csv", "predictions.parquet"), "predictions", problems)
    if path is None:
        return None
    size = path.stat().st_size
    if size > reading.MAX_BYTES:
        problems.append(f"{path.name}: {size / 2**20:.1f} MB exceeds the {reading.MAX_BYTES / 2**20:.0f} MB limit "
                        "(submit top-K lists only)")
        return None
    return path


def read_predictions(path: Path, row_cap: int, problems: list[str]) -> pd.DataFrame | None:
    """The five prediction columns with integer seed/fold/rank and string ids, or None (problems said why)."""
    df = (reading.read_csv(path, row_cap, problems) if path.suffix == ".csv"
          else reading.read_parquet(path, PRED_COLUMNS, row_cap, problems))
    if df is None:
        return None
    gone = [c for c in PRED_COLUMNS if c not in df.columns]
    if gone:
        problems.append(f"{path.name}: missing column(s) {gone}; required {list(PRED_COLUMNS)}, found {list(df.columns)}")
        return None
    df = df[list(PRED_COLUMNS)].copy()
    ok = True
    for c in ("seed", "fold", "rank"):
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() | (col != np.floor(col))
        if bad.any():
            problems.append(f"{path.name}: column '{c}' must hold integers; {int(bad.sum())} row(s) do not "
                            f"(e.g. {_examples(df.loc[bad, c].head(EXAMPLES))})")
            ok = False
        else:
            df[c] = col.astype(np.int64)
    for c in ("user", "item"):
        bad = df[c].isna()
        if bad.any():
            problems.append(f"{path.name}: column '{c}' has {int(bad.sum())} empty value(s)")
            ok = False
        df[c] = df[c].astype(str)
    return df if ok else None


def _check_fold(view: TrainView, preds: pd.DataFrame, seed: int, fold: int, kmax: int, problems: list[str]) -> None:
    where = f"seed {seed} fold {fold}"
    expected = set(view.users[view.test_users].astype(str))
    got = set(preds["user"])
    if expected - got:
        problems.append(f"{where}: {len(expected - got)} test user(s) have no ranked list, e.g. {_examples(expected - got)}")
    if got - expected:
        problems.append(f"{where}: {len(got - expected)} user(s) are not test users of this fold, "
                        f"e.g. {_examples(got - expected)}")
    outside = set(preds["item"]) - set(view.catalog.astype(str))
    if outside:
        problems.append(f"{where}: {len(outside)} item(s) are not in this fold's target catalog, e.g. {_examples(outside)}")
    dup = preds[preds.duplicated(["user", "item"], keep=False)]
    if len(dup):
        problems.append(f"{where}: {dup['user'].nunique()} user(s) list an item twice, e.g. {_examples(dup['user'].unique())}")
    g = preds.groupby("user")["rank"].agg(["min", "max", "count", "nunique"])
    bad = g[(g["min"] != 1) | (g["max"] != g["count"]) | (g["nunique"] != g["count"])]
    if len(bad):
        problems.append(f"{where}: {len(bad)} user(s) have ranks that are not exactly 1..n, e.g. {_examples(bad.index)}")
    short = g[g["count"] < kmax]
    if len(short):
        problems.append(f"{where}: {len(short)} user(s) have fewer than {kmax} ranked items (at least max K needed), "
                        f"e.g. {_examples(short.index)}")


def _settings(params: Params | None, scenario: str, smeta: dict) -> tuple[list[int], int]:
    """Metric cut-offs and the catalog rule: the params' when given, else the scenario's own."""
    ks = list(params.evaluation.ks) if params is not None else list(DEFAULT_KS)
    if params is not None and scenario in params.scenarios:
        return ks, params.scenarios[scenario].min_support
    return ks, int((smeta.get("params") or {}).get("min_support", 1))


def row_cap(folds: pd.DataFrame, seeds: list, kmax: int) -> int:
    """Most prediction rows worth reading: 2 x (test users of the declared seeds) x max K + slack."""
    declared = folds[folds["seed"].isin([s for s in seeds if isinstance(s, int)])]
    tests = int(((declared if len(declared) else folds)["role"] == "test").sum())
    return 2 * tests * kmax + ROW_SLACK


def validate(folder: Path, scenario_root: Path | None = None, params: Params | None = None,
             runs_root: Path | None = None) -> dict:
    """Check everything; return what scoring needs, or raise :class:`SubmissionError`.

    With ``runs_root``, also check that the entry key is free or replaceable
    (:func:`~benchmark.submission.entries.owner_problem`).
    """
    folder = Path(folder)
    scenario_root = Path(scenario_root) if scenario_root is not None else paths.SCENARIOS
    if not folder.is_dir():
        raise SubmissionError([f"submission folder {folder} does not exist or is not a folder"])
    problems: list[str] = []
    meta = read_metadata(folder, problems)
    meta_ok = meta is not None and not problems  # identity fields usable for the entry check
    pred_path = find_predictions(folder, problems)
    scen = meta.get("scenario") if meta is not None else None
    if not (isinstance(scen, str) and SCENARIO_NAME.fullmatch(scen)):
        raise SubmissionError(problems or ["metadata: no usable scenario name"])
    if runs_root is not None and meta_ok:
        problem = owner_problem(Path(runs_root) / scen, meta)
        problems += [problem] if problem else []
    sdir = Path(scenario_root) / str(meta["scenario"])
    if not (sdir / "meta.json").is_file():
        problems.append(f"scenario '{meta['scenario']}' is not built under {scenario_root} (known: "
                        f"{_examples(p.name for p in Path(scenario_root).glob('*') if (p / 'meta.json').is_file()) or 'none'})")
        raise SubmissionError(problems)
    try:
        actual = scenario_hash(sdir)
    except SchemaError as e:
        raise SubmissionError(problems + [str(e)]) from None
    if meta.get("scenario_hash") != actual:
        problems.append(f"scenario_hash {meta.get('scenario_hash')!r} does not match the built scenario "
                        f"'{meta['scenario']}' ({actual}): predictions were made on other data")
    tables = load_scenario(sdir)
    ks, min_support = _settings(params, meta["scenario"], tables["meta"])
    fold_tab = tables["folds"]
    k = int(fold_tab["fold"].nunique())
    if params is not None and params.evaluation.folds:  # the setting evaluates its first folds only (CI: fold 0)
        k = min(k, int(params.evaluation.folds))
    seeds = meta.get("seeds") if isinstance(meta.get("seeds"), list) else []
    preds = read_predictions(pred_path, row_cap(fold_tab, seeds, max(ks)), problems) if pred_path else None
    known_seeds = sorted(int(s) for s in fold_tab["seed"].unique())
    for s in seeds:
        if s not in known_seeds:
            problems.append(f"seed {s} is not dealt in scenario '{meta['scenario']}' (seeds: {known_seeds})")
    if isinstance(meta.get("folds"), list) and sorted(set(meta["folds"])) != list(range(k)):
        problems.append(f"folds {meta['folds']} must be all {k} folds 0..{k - 1} the setting evaluates: every test "
                        "user of those folds is scored once per seed")
    wanted = [(int(s), f) for s in seeds if s in known_seeds for f in range(k)]
    views = {}
    if preds is not None:
        present = set(map(tuple, preds[["seed", "fold"]].drop_duplicates().to_numpy().tolist()))
        extra = sorted(present - set(wanted))
        if extra:
            problems.append(f"predictions hold (seed, fold) pairs not declared in metadata: {extra[:5]}")
        for seed, fold in wanted:
            part = preds[(preds["seed"] == seed) & (preds["fold"] == fold)]
            if part.empty:
                problems.append(f"seed {seed} fold {fold}: no predictions (every fold of every declared seed is needed)")
                continue
            view, truth = load_fold(sdir, seed, fold, min_support, tables=tables)
            _check_fold(view, part, seed, fold, max(ks), problems)
            views[(seed, fold)] = (view, truth, part)
    if problems:
        raise SubmissionError(problems)
    return {"meta": meta, "scenario_dir": sdir, "predictions_sha256": file_sha256(pred_path),
            "scenario_hash": actual, "tables": tables, "ks": ks,
            "min_support": min_support, "k": k, "views": views,
            "setting": params.setting if params is not None else None}


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
