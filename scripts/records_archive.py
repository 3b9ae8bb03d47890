"""Keep the published run's finished records in git, and put them back before a `dvc repro`.

usage:
  python scripts/records_archive.py save    [--workspace DIR] [--archive DIR]
  python scripts/records_archive.py restore [--workspace DIR] [--archive DIR]
  python scripts/records_archive.py check   [--archive DIR]
  python scripts/records_archive.py status  [--archive DIR]

Why: the published setting took 7.6 hours of wall time on 2 cores, longer than any one
session of the machine that runs it, and `results/runs/` and `results/twins/` are DVC
outputs that git ignores: a run cut off by the end of a session used to lose every record
with it. `save` copies each *finished* run folder (its `record.json` is written last, so a
folder without one is skipped) and each model's cached tuning (`tuning.json`) from a
workspace into the archive (`results/records/`, committed). `restore` copies them back into
a fresh workspace's `results/runs` and `results/twins`, where the runner keeps every record
whose run key still matches (benchmark/experiment/reuse.py) and fits only what is missing or
stale. A restored record is never trusted blindly: its key covers the model's code, the
spec, the setting's params and the content hashes of the scenario build and frozen inputs.

`save` makes the archive's copy of every scenario the workspace holds equal to the
workspace's finished files: it adds and updates them (an archived file whose bytes are
unchanged is not rewritten) and drops archived files of that scenario the workspace no
longer has. The runner deletes a scenario's stale records when its stage starts, so a
model refitted after a code change never leaves old-code records beside new ones in the
archive (and the tuning caches of complete models, which no run can use any more, go too).
Scenarios the workspace does not hold are left as they are. `restore` never overwrites a
file in the workspace. Both write a manifest line
per file (`MANIFEST.tsv`: path, bytes, sha256) so `check` can prove the archive whole;
`save` also keeps the workspace's `dvc.lock` (`dvc.lock.saved`), whose scenario and input
hashes say which builds the records belong to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

KINDS = ("runs", "twins")
DEFAULT_ARCHIVE = Path("results/records")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def finished_files(results: Path) -> list[Path]:
    """Files under ``results/{runs,twins}`` that belong to finished runs or cached tunings, relative to ``results``."""
    out: list[Path] = []
    for kind in KINDS:
        root = results / kind
        if not root.is_dir():
            continue
        for rec in sorted(root.glob("*/*/s*_f*/record.json")):
            folder = rec.parent
            out += [p.relative_to(results) for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")]
        out += [p.relative_to(results) for p in sorted(root.glob("*/*/tuning.json"))]
    return out


def _copy(files: list[Path], src: Path, dst: Path) -> int:
    """Copy ``files`` from ``src`` into ``dst`` (via a temporary name, so a cut-off copy never looks whole)."""
    for rel in files:
        b = dst / rel
        b.parent.mkdir(parents=True, exist_ok=True)
        tmp = b.with_name(f".{b.name}.tmp")
        shutil.copyfile(src / rel, tmp)
        tmp.replace(b)
    return len(files)


def read_manifest(archive: Path) -> dict[str, tuple[int, str]]:
    """The manifest as {path: (bytes, sha256)}; empty when there is none yet."""
    manifest = archive / "MANIFEST.tsv"
    if not manifest.is_file():
        return {}
    listed = {}
    for line in manifest.read_text().splitlines()[1:]:
        path, size, digest = line.split("\t")
        listed[path] = (int(size), digest)
    return listed


def save(results: Path, archive: Path) -> tuple[int, int, int, int]:
    """Mirror the workspace's finished files into the archive; return (copied, unchanged, dropped, listed).

    Each workspace file is hashed once. An archived file counts as unchanged when the manifest
    lists it with the workspace file's size and hash and its size on disk still agrees; the new
    manifest reuses those hashes, so a save reads each archived byte at most once (files the
    manifest does not know yet are hashed). ``check`` re-reads everything when proof is wanted.
    """
    files = finished_files(results)
    archive.mkdir(parents=True, exist_ok=True)
    listed = read_manifest(archive)
    fresh = {rel.as_posix(): ((results / rel).stat().st_size, _sha256(results / rel)) for rel in files}
    changed = [rel for rel in files
               if listed.get(rel.as_posix()) != fresh[rel.as_posix()]
               or not (archive / rel).is_file() or (archive / rel).stat().st_size != fresh[rel.as_posix()][0]]
    copied = _copy(changed, results, archive)
    dropped = drop_gone(files, archive)
    known = {**listed, **fresh}
    n = write_manifest(archive, known)
    return copied, len(files) - copied, dropped, n


def drop_gone(files: list[Path], archive: Path) -> int:
    """Delete archived files of the scenarios in ``files`` that ``files`` does not list; return how many."""
    keep = {rel.as_posix() for rel in files}
    scenarios = {(rel.parts[0], rel.parts[1]) for rel in files}
    gone = [rel for rel in finished_files(archive) if (rel.parts[0], rel.parts[1]) in scenarios and rel.as_posix() not in keep]
    for rel in gone:
        (archive / rel).unlink()
    for kind, scen in scenarios:  # empty run folders left behind
        for d in sorted((archive / kind / scen).glob("**/"), key=lambda p: -len(p.parts)):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
    return len(gone)


def write_manifest(archive: Path, known: dict[str, tuple[int, str]] | None = None) -> int:
    """Write ``MANIFEST.tsv`` for the archive's finished files, hashing only those ``known`` lacks."""
    known = known or {}
    lines = []
    for rel in finished_files(archive):
        key = rel.as_posix()
        size, digest = known.get(key) or ((archive / rel).stat().st_size, _sha256(archive / rel))
        lines.append(f"{key}\t{size}\t{digest}")
    (archive / "MANIFEST.tsv").write_text("path\tbytes\tsha256\n" + "".join(line + "\n" for line in lines))
    return len(lines)


def check(archive: Path) -> list[str]:
    """Problems with the archive: manifest lines whose file is missing or changed, files not in the manifest."""
    manifest = archive / "MANIFEST.tsv"
    if not manifest.is_file():
        return [f"{manifest} missing"]
    listed = read_manifest(archive)
    problems = []
    for path, (size, digest) in listed.items():
        p = archive / path
        if not p.is_file():
            problems.append(f"{path}: listed but missing")
        elif p.stat().st_size != size or _sha256(p) != digest:
            problems.append(f"{path}: changed since the manifest")
    problems += [f"{rel.as_posix()}: not in the manifest" for rel in finished_files(archive) if rel.as_posix() not in listed]
    return problems


def status(archive: Path) -> list[str]:
    """One line per scenario: models, run records, null-twin records and tunings archived, and their setting / code."""
    lines = []
    scenarios = sorted({p.name for kind in KINDS for p in (archive / kind).glob("*") if p.is_dir()})
    for scen in scenarios:
        recs = {kind: sorted((archive / kind / scen).glob("*/s*_f*/record.json")) for kind in KINDS}
        models = {p.parts[-3] for p in recs["runs"]}
        tunings = list((archive / "runs" / scen).glob("*/tuning.json"))
        prov = sorted({(r["setting"], r["code_hash"]) for r in (json.loads(p.read_text()) for p in recs["runs"])})
        lines.append(f"{scen}: {len(models)} models, {len(recs['runs'])} run records, {len(recs['twins'])} twin records, "
                     f"{len(tunings)} tunings; " + ", ".join(f"{a} setting, code {b}" for a, b in prov))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("save", "restore", "check", "status"))
    ap.add_argument("--workspace", type=Path, default=Path("."), help="checkout whose results/ the runs live in")
    ap.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="committed archive (default results/records)")
    args = ap.parse_args(argv)
    results = args.workspace / "results"
    if args.action == "status":
        print("\n".join(status(args.archive)) or f"{args.archive}: no records")
        return 0
    if args.action == "check":
        problems = check(args.archive)
        for p in problems:
            print(p, file=sys.stderr)
        print(f"{args.archive}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    if args.action == "save":
        copied, same, dropped, n = save(results, args.archive)
        # Which builds the records came from: a restored record is reused only if the scenario
        # and input hashes in its run key match, and this lock says what they were.
        lock = args.workspace / "dvc.lock"
        if lock.is_file():
            shutil.copyfile(lock, args.archive / "dvc.lock.saved")
        print(f"saved {copied} file(s) into {args.archive} ({same} unchanged, {dropped} no longer in the workspace dropped); manifest lists {n}")
        return 0
    problems = check(args.archive)
    if problems:
        print(f"error: {args.archive} fails its manifest ({problems[0]}; {len(problems)} problem(s)); nothing restored", file=sys.stderr)
        return 1
    files = finished_files(args.archive)
    missing = [rel for rel in files if not (results / rel).exists()]  # never overwrite the workspace
    copied, same = _copy(missing, args.archive, results), len(files) - len(missing)
    print(f"restored {copied} file(s) into {results} ({same} already there, left as they were)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
