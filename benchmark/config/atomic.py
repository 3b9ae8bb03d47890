"""Atomic outputs: a stage's folder or file is replaced only once the new one is complete.

Why: a stage that deletes its old output and then fails (bad input, a crash, Ctrl-C)
leaves nothing, or a half-written folder a later stage could mistake for a good one.
Here new output is written beside the old (same filesystem, so ``os.rename`` is
atomic), and swapped in only when the writer returns without an exception; on any
exception the temporary is removed and the old output is untouched.

Used by every stage that writes data (prepare here; scenario, embed and pretrain
through :mod:`benchmark.scenarios.export`, which re-exports these, because the
feature stages may import scenarios but not data).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success it becomes ``final``.

    The old ``final`` (if any) is renamed aside, the new one renamed in, then the old
    one deleted: at no moment is there a half-written ``final``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an output folder is ordinary data
    try:
        yield tmp
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        if final.exists() or final.is_symlink():
            os.rename(final, old)
        os.rename(tmp, final)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def atomic_files(*finals: Path) -> Iterator[list[Path]]:
    """Yield one temporary path per file in ``finals`` (beside each); on success each
    replaces its final file (``os.replace``), only after all of them were written."""
    finals_p = [Path(f) for f in finals]
    tmps = []
    for f in finals_p:
        f.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".tmp", dir=f.parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())
        tmps.append(Path(name))
    try:
        yield tmps
        for tmp, f in zip(tmps, finals_p):
            os.replace(tmp, f)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()
