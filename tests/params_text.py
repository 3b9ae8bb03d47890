"""The committed params.yaml as text, read in the CI setting.

Tests that edit params.yaml by one token (a typo, a bad value) or compare the two settings
start from the CI setting whichever setting the committed file selects: the committed
leaderboards come from the published one (`setting: full`), CI's from `setting: ci`, and
the base file is the same in both. The overlay params-full.yaml is written beside every
edited copy, since `setting: full` reads it.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.config import paths

SETTING = re.compile(r"^setting: [a-z]+", flags=re.M)


def ci_params_text() -> str:
    """params.yaml's text with its `setting:` line switched to `ci` (nothing else changed)."""
    text, n = SETTING.subn("setting: ci", paths.PARAMS.read_text(), count=1)
    assert n == 1, "the committed params.yaml has no top-level `setting:` line"
    return text


def write_params(folder: Path, text: str, overlay: str | None = None) -> Path:
    """Write params.yaml (and the committed overlay, or `overlay`) into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(text)
    (folder / "params-full.yaml").write_text(overlay if overlay is not None else (paths.ROOT / "params-full.yaml").read_text())
    return folder / "params.yaml"
