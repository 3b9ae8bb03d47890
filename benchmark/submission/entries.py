"""Leaderboard submissions: which entry a submission is filed under, who owns it, and
how a scored entry is put in place.

Key rule (why not a hash of the submitter in the key): an entry lives in
``<runs_root>/<scenario>/external-<slug>/``, the slug being the model name lowercased
with every run of non-alphanumerics turned into ``-`` (at most 40 characters). The key is
what the leaderboard's bootstrap seeds and row order are derived from, so it must be
stable and readable; uniqueness is enforced instead of encoded. A submission whose key
is already taken is accepted only when

* the existing entry was submitted by the same authors (names compared case- and
  whitespace-insensitively, order ignored), **and**
* its metadata says ``replaces: external-<slug>``: replacing one's own entry is always
  explicit, so a resubmission never happens by accident (``replaces`` naming an entry
  that does not exist yet is accepted: there is nothing to lose).

A different submitter's entry is never replaced, whatever the metadata says: two names
with one slug (``Popularity (example submission)`` and ``popularity-example-submission``)
are refused, and the second submitter picks another name. An entry folder without a
readable record is never overwritten either.

Putting an entry in place: the runs are written to ``.<key>.incoming/``, the old entry
(if any) is renamed to ``.<key>.previous/``, the new one renamed into place, the old one
deleted, all while holding an exclusive ``flock`` on the scenario folder. A submission
killed at any point (SIGKILL, SIGTERM) leaves only hidden folders, which the report
never reads (:func:`~benchmark.evaluation.records.collect_runs` skips names starting
with ``.``), and :func:`clean_leftovers` (run by every later ``submit``, under the lock,
so it never touches a submission still in progress) deletes them, or renames
``.<key>.previous`` back when the kill fell between the two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux/macOS: no concurrent-submit guard
    fcntl = None

LEFTOVER = re.compile(r"\.(.+)\.(incoming|previous)")


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")


def entry_key(model_name: str) -> str:
    return f"external-{slugify(model_name)}"


def same_authors(a, b) -> bool:
    def norm(x) -> list[str]:
        names = [x] if isinstance(x, str) else list(x) if isinstance(x, list) else []
        return sorted(" ".join(str(n).split()).casefold() for n in names)

    return norm(a) == norm(b)


def _first_record(entry: Path) -> dict | None:
    for path in sorted(entry.glob("s*_f*/record.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("submission"), dict):
            return rec
    return None


def owner_problem(scen_dir: Path, meta: dict) -> str | None:
    """Why this submission may not be filed under its key in ``scen_dir``, or None."""
    key = entry_key(meta["model"])
    wanted = meta.get("replaces")
    if wanted is not None and wanted != key:
        return (f"metadata: 'replaces: {wanted}' but this submission is filed as '{key}' (external- plus the slug "
                "of its model name); an entry can only replace itself")
    entry = Path(scen_dir) / key
    if not entry.exists():
        return None
    rec = _first_record(entry)
    if rec is None:
        return f"entry '{key}' exists in {scen_dir} without a readable run record; it is never overwritten"
    theirs = rec["submission"]
    if not same_authors(theirs.get("authors"), meta["authors"]):
        authors = theirs.get("authors")
        authors = ", ".join(map(str, authors)) if isinstance(authors, list) else str(authors)
        return (f"entry '{key}' is taken by {theirs.get('name')!r} ({authors}); a submission by other authors "
                "never replaces it: choose a model name with a different slug")
    if wanted != key:
        return (f"entry '{key}' already exists ({theirs.get('name')!r}, same authors); "
                f"add 'replaces: {key}' to the metadata to replace it")
    return None


@contextlib.contextmanager
def locked(scen_dir: Path) -> Iterator[None]:
    """Exclusive lock on the scenario folder (an flock on the directory itself: no lock file)."""
    Path(scen_dir).mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(scen_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def clean_leftovers(scen_dir: Path) -> list[str]:
    """Remove what killed submissions left in ``scen_dir`` (call under :func:`locked`); say what was done."""
    done = []
    for p in sorted(Path(scen_dir).iterdir()) if Path(scen_dir).is_dir() else []:
        m = LEFTOVER.fullmatch(p.name)
        if not (m and p.is_dir()):
            continue
        key, kind = m.groups()
        if kind == "previous" and not (p.parent / key).exists():
            os.replace(p, p.parent / key)  # killed between the two renames: the old entry is the good one
            done.append(f"restored {key}")
        else:
            shutil.rmtree(p)
            done.append(f"removed {p.name}")
    return done


def install(scen_dir: Path, key: str, write: Callable[[Path], None]) -> Path:
    """Write an entry with ``write(folder)`` beside the old one, then swap it in (call under :func:`locked`)."""
    final, tmp, old = Path(scen_dir) / key, Path(scen_dir) / f".{key}.incoming", Path(scen_dir) / f".{key}.previous"
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # an interrupted write leaves nothing for the report to find
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
