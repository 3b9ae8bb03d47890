"""Incremental runs: a record whose every input is unchanged is kept, not recomputed.

Why: the run stage of a scenario fits ~40 models; adding or changing one model should
re-run that model's runs (and the report), not the other 39. DVC reruns a stage when any
dependency changes (a new spec file in ``models/`` changes the folder), so the stage keeps
its outputs (``persist: true``) and the runner decides, per model, what is still valid.

A record is valid when its ``run_key`` equals the key the runner would write now. The
key is a sha256 over everything that can change the record's numbers:

* the spec (every field but the card's prose), and for a ``tune_from`` spec its base
  spec, whose tuned configuration it inherits;
* the model's code (:func:`model_code_hash`): the shared modelling code (experiment,
  evaluation, features, the fold protocol and schema, the non-model modules of
  ``benchmark/models``) plus the model's own module and the non-model modules of its
  package (``cdr/common.py`` for the zoo), never another model's module. Editing
  ``cdr/dtcdr.py`` re-runs DTCDR only; editing ``cdr/common.py`` every zoo model;
  editing the evaluator every model;
* the scenario build (its content hash) and the frozen inputs the models read
  (``data/pretrain/<s>``, ``data/embed/<s>``, hashed by content);
* the params that shape a run: setting, protocol, evaluation, tuning (not the Ray
  address), twins, the scenario's own section;
* the run's kind (real or twin), seed and fold.

Reuse is per record: a run whose key is unchanged is kept, the others are fitted. A
record's key covers its code, so a model's records never mix two code versions. Each
model's tuning is cached beside its records (``tuning.json``, under the same inputs with
kind "tuning"), so a stage interrupted after tuning resumes with only the missing fits. The modelling-code hash of the whole tree
(:func:`benchmark.evaluation.records.code_hash`) is still written to every record and
leaderboard; a reused record keeps the hash it was computed with, which the
leaderboard lists (several hashes on one setting line mean an incremental build).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

from benchmark.config import paths
from benchmark.config.jsonio import jsonable
from benchmark.config.params import Params
from benchmark.config.specs import ModelSpec
from benchmark.evaluation.records import MODEL_CODE, canonical_json

MODELS_PKG = Path("benchmark/models")


def _files(root: Path, part: str) -> list[Path]:
    p = root / part
    found = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and q.suffix == ".py")
    return [q for q in found if "__pycache__" not in q.parts]


def _module_file(spec: ModelSpec, root: Path) -> Path:
    module = spec.cls.partition(":")[0]
    return root / (module.replace(".", "/") + ".py")


def model_code_files(spec: ModelSpec, all_specs: list[ModelSpec], root: Path | None = None) -> list[Path]:
    """The code files whose change invalidates ``spec``'s records (sorted, relative to ``root``)."""
    root = Path(root or paths.ROOT)
    model_modules = {_module_file(s, root) for s in all_specs}
    own = _module_file(spec, root)
    shared = []
    for part in MODEL_CODE:
        if part == "models" or part == MODELS_PKG.as_posix():
            continue
        shared += _files(root, part)
    top = root / MODELS_PKG
    shared += [q for q in sorted(top.glob("*.py")) if q not in model_modules]  # base.py, common.py, helpers
    pkg = own.parent
    if pkg != top:  # a subpackage (cdr, map2t, recbole): its helpers belong to every model in it
        shared += [q for q in _files(root, pkg.relative_to(root).as_posix()) if q not in model_modules]
    files = {q for q in shared} | ({own} if own.is_file() else set())
    return sorted(files, key=lambda q: q.relative_to(root).as_posix())


def model_code_hash(spec: ModelSpec, all_specs: list[ModelSpec], root: Path | None = None) -> str:
    root = Path(root or paths.ROOT)
    h = hashlib.sha256()
    for q in model_code_files(spec, all_specs, root):
        h.update(q.relative_to(root).as_posix().encode() + b"\0" + q.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def folder_hash(*folders: Path) -> str:
    """Content hash of every file under the folders (relative paths and bytes)."""
    h = hashlib.sha256()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            h.update(b"missing:" + folder.name.encode())
            continue
        for q in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(q.relative_to(folder).as_posix().encode() + b"\0")
            with open(q, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def _spec_fields(spec: ModelSpec) -> dict:
    d = dataclasses.asdict(spec)
    d.pop("card", None)  # prose: editing a card does not change a number
    return d


def run_params(params: Params, scenario: str) -> dict:
    """The params that shape a run of ``scenario``."""
    tuning = params.tuning.model_dump()
    tuning.pop("address", None)
    return {"setting": params.setting, "protocol": params.protocol.model_dump(),
            "evaluation": params.evaluation.model_dump(), "tuning": tuning, "twins": params.twins.model_dump(),
            "scenario": params.scenario(scenario).model_dump()}


def run_key(spec: ModelSpec, specs_by_key: dict[str, ModelSpec], code: str, scenario_hash: str, features: str,
            run_params_: dict, kind: str, seed: int, fold: int) -> str:
    base = specs_by_key.get(spec.tune_from) if spec.tune_from else None
    payload = {"spec": _spec_fields(spec), "base": _spec_fields(base) if base else None, "code": code,
               "scenario_hash": scenario_hash, "features": features, "params": run_params_,
               "kind": kind, "seed": int(seed), "fold": int(fold)}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:20]


def read_record(folder: Path) -> dict | None:
    """A finished run record (record + per-user + top-K files present), else None."""
    rec = Path(folder) / "record.json"
    if not (rec.is_file() and (Path(folder) / "per_user.parquet").is_file() and (Path(folder) / "topk.parquet").is_file()):
        return None
    try:
        return json.loads(rec.read_text())
    except (OSError, ValueError):
        return None


def valid_records(specs: list[ModelSpec], slots: list[tuple], keys_now: dict, scenario: str, runs_root: Path,
                  twins_root: Path) -> dict[tuple, dict]:
    """Every record that exists with its current key: ``{(model, kind, seed, fold): record}``."""
    kept = {}
    for spec in specs:
        for kind, seed, fold in slots:
            root = runs_root if kind == "real" else twins_root
            r = read_record(paths.run_dir(scenario, spec.key, seed, fold, root=root))
            if r is not None and r.get("run_key") == keys_now[(spec.key, kind, seed, fold)]:
                kept[(spec.key, kind, seed, fold)] = r
    return kept


def prune(out_root: Path, kept: dict[tuple, dict], keep_files: list[Path]) -> None:
    """Delete everything under ``out_root`` (one scenario's runs or twins) but the kept records and ``keep_files``."""
    out_root = Path(out_root)
    if not out_root.is_dir():
        return
    twin = out_root.parent.name == paths.TWINS.name
    want = {(m, f"s{seed}_f{fold}") for m, kind, seed, fold in kept if (kind == "twin") == twin}
    keep = {Path(p) for p in keep_files}
    for d in sorted(out_root.iterdir()):
        if not d.is_dir():
            d.unlink()
            continue
        for run in sorted(d.iterdir()):
            if (d.name, run.name) not in want and run not in keep:
                shutil.rmtree(run) if run.is_dir() else run.unlink()
        if not any(d.iterdir()):
            d.rmdir()


def tuning_file(model_dir: Path) -> Path:
    return Path(model_dir) / "tuning.json"


def read_tuning(model_dir: Path, key: str) -> dict[tuple[int, int], dict] | None:
    """A model's cached tuning ``{(seed, fold): tuning record}`` when written under ``key``, else None.

    Why a cache beside the records: tuning is a third of a stage's work, and a stage cut
    off during the final fits (a multi-hour published run on a laptop) should resume with
    the fits it lacks, not tune again. The key covers what the tuning depends on (the
    model's run-key inputs with kind "tuning").
    """
    f = tuning_file(model_dir)
    try:
        data = json.loads(f.read_text()) if f.is_file() else None
    except (OSError, ValueError):
        return None
    if not data or data.get("key") != key:
        return None
    return {(int(s), int(fo)): t for s, fo, t in data["tuning"]}


def write_tuning(model_dir: Path, key: str, tuned: dict[tuple[int, int], dict]) -> None:
    f = tuning_file(model_dir)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".json.tmp")
    rows = [[s, fo, tuned[(s, fo)]] for s, fo in sorted(tuned)]
    tmp.write_text(json.dumps(jsonable({"key": key, "tuning": rows}), sort_keys=True))
    tmp.replace(f)
