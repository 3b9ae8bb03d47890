"""scripts/land_published.sh refuses, in one line and copying nothing, a workspace that is not this checkout's finished published run.

The landing copies params.yaml, dvc.lock, the dataset cards and every report output over the
committed ones; a workspace at another commit or in the CI setting would silently replace the
published leaderboard with something else. These are the checks that run before any `dvc`
call, so they are tested on two throwaway git repositories.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from benchmark.config import paths

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repos(tmp_path):
    here = tmp_path / "here"
    (here / "scripts").mkdir(parents=True)
    shutil.copy(paths.ROOT / "scripts" / "land_published.sh", here / "scripts")
    (here / "params.yaml").write_text("setting: full\n")
    (here / "results").mkdir()
    (here / "results" / "README.md").write_text("committed\n")
    _git(here, "init", "-q")
    _git(here, "add", "-A")
    _git(here, "commit", "-qm", "a")
    ws = tmp_path / "ws"
    subprocess.run(["git", "clone", "-q", str(here), str(ws)], check=True)
    return here, ws


def _land(here: Path, ws: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(here / "scripts" / "land_published.sh"), str(ws)], capture_output=True, text=True)


def _untouched(here: Path) -> bool:
    return (here / "results" / "README.md").read_text() == "committed\n" and not _git(here, "status", "--porcelain")


def test_a_workspace_at_another_commit_is_refused(repos):
    here, ws = repos
    (here / "params.yaml").write_text("setting: full\n# newer\n")
    _git(here, "commit", "-qam", "b")
    res = _land(here, ws)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "is at" in res.stderr and "nothing copied" in res.stderr, res.stderr
    assert _untouched(here)


def test_a_workspace_in_the_ci_setting_is_refused(repos):
    here, ws = repos
    (ws / "params.yaml").write_text("setting: ci\n")
    res = _land(here, ws)
    assert res.returncode == 1
    assert res.stderr.strip() == "error: workspace params.yaml is not in the full setting; nothing copied", res.stderr
    assert _untouched(here)
