"""The CLI never shows a user a traceback for an input mistake, and never hides a bug.

Unknown scenario, source and model names are one line listing the valid ones; every
command's input errors pass through one handler (``benchmark.cli._OneLineErrors``),
``--debug`` re-raises them, and an exception that is not an input mistake (a bug)
still surfaces as itself. ``CDRBENCH_OFFLINE`` is parsed, not guessed.
"""

from __future__ import annotations

import hashlib
import urllib.error

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.config import paths
from benchmark.data import fetch
from benchmark.data.loaders import LoaderError

SOURCES = ("apple-podcast-reviews, apple-podcast-subs, audible-catalog, bookcrossing-subset, ciao-tang, douban-gadtcdr, "
           "epinions-tang, goodbooks-10k, lastfm-hetrec2k, librivox-catalog")
SCENARIOS = ("['ciao-m2b', 'ciao-me2b', 'douban-m2b', 'epinions-m2b', 'epinions-mm2b', 'epinions-mv2b', "
             "'mpa-linked-rho0', 'mpa-linked-rho05', 'mpa-linked-rho1']")


def cdr(*args: str):
    return CliRunner().invoke(app, list(args))


def one_line(res, code: int = 1) -> str:
    assert res.exit_code == code, (res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    return lines[0].removeprefix("error: ")


@pytest.fixture(autouse=True)
def _tmp_stage_paths(tmp_path, monkeypatch):
    """Stage outputs under tmp (nothing here may write to the repository's data/)."""
    for name in ("RAW", "PREPARED", "SCENARIOS", "EMBED", "PRETRAIN"):
        monkeypatch.setattr(paths, name, tmp_path / name.lower())
    monkeypatch.delenv(fetch.ENV_OFFLINE, raising=False)
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "nosuch"], f"unknown source 'nosuch'; known: {SOURCES}"),
        (["fetch", "nosuch", "--offline"], f"unknown source 'nosuch'; known: {SOURCES}"),
        (["scenario", "nosuch"], f"unknown scenario 'nosuch'; params list {SCENARIOS}"),
        (["embed", "nosuch"], f"unknown scenario 'nosuch'; params list {SCENARIOS}"),
        (["tune", "nosuch", "-m", "popularity"], f"unknown scenario 'nosuch'; params list {SCENARIOS}"),
    ],
    ids=["prepare", "fetch", "scenario", "embed", "tune-scenario"],
)
def test_unknown_names_list_the_valid_ones(args, message):
    assert one_line(cdr(*args)) == message


@pytest.mark.parametrize("command", ["tune", "run"])
def test_unknown_model_lists_the_specs(command):
    msg = one_line(cdr(command, "douban-m2b", "-m", "nosuchmodel"))
    assert msg.startswith(f"no model spec {paths.MODEL_CARDS / 'nosuchmodel.yaml'}; known keys: [")
    assert "'bpr'" in msg and "'popularity'" in msg
    assert "'popularity'" in msg and "'userknn']" in msg


def test_tune_fold_outside_the_protocol():
    from benchmark.config.params import load_params

    proto = load_params(paths.PARAMS).protocol
    assert one_line(cdr("tune", "douban-m2b", "-m", "popularity", "--seed", "7")) == (
        f"no fold (seed=7, fold=0): params protocol has seeds {list(proto.seeds)} and folds 0-{proto.k - 1}")


def test_debug_shows_the_exception_instead():
    res = cdr("--debug", "prepare", "nosuch")
    assert res.exit_code == 1 and isinstance(res.exception, LoaderError) and res.stderr == ""


def test_a_bug_is_not_dressed_up_as_an_input_error(monkeypatch):
    def broken(*a, **k):
        raise KeyError("internal")

    monkeypatch.setattr("benchmark.data.prepare.prepare_source", broken)
    res = cdr("prepare", "douban-gadtcdr")
    assert isinstance(res.exception, KeyError) and "error: " not in res.stderr


@pytest.fixture
def one_file_source(tmp_path):
    """A fixture sources.tsv with one file present in a mirror, and a counting urlopen."""
    data = b"1\t2\t3\n"
    (tmp_path / "mirror" / "raw" / "src").mkdir(parents=True)
    (tmp_path / "mirror" / "raw" / "src" / "a.dat").write_bytes(data)
    row = {"source": "src", "file": "raw/src/a.dat", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "url": "https://example.invalid/a"}
    (tmp_path / "sources.tsv").write_text("\t".join(fetch.TSV_COLUMNS) + "\n" + "\t".join(str(row.get(c, "")) for c in fetch.TSV_COLUMNS) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    "value, offline",
    [("", False), ("0", False), ("false", False), ("FALSE", False), ("no", False), ("Off", False),
     ("1", True), ("true", True), ("Yes", True), ("on", True), (" 1 ", True)],
)
def test_offline_env_values(value, offline, one_file_source, monkeypatch):
    calls = []

    def refuse(*a, **k):
        calls.append(a)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", refuse)
    monkeypatch.setenv(fetch.ENV_OFFLINE, value)
    root = one_file_source
    fetch.fetch_source("src", root / "raw", mirror=root / "mirror", sources_tsv=root / "sources.tsv")
    assert (root / "raw" / "src" / "a.dat").is_file()
    assert len(calls) == (0 if offline else 1)  # offline: the download is not even tried


@pytest.mark.parametrize("value", ["maybe", "2", "offline"])
def test_offline_env_typo_is_one_line(value, monkeypatch, one_file_source):
    monkeypatch.setenv(fetch.ENV_OFFLINE, value)
    monkeypatch.setattr(paths, "SOURCES_TSV", one_file_source / "sources.tsv")
    msg = one_line(cdr("fetch", "src", "--mirror", str(one_file_source / "mirror")))
    assert msg == f"CDRBENCH_OFFLINE={value!r}: expected 1/true/yes/on (offline) or 0/false/no/off or empty (online)"
    assert not (paths.RAW / "src").exists()


def test_missing_prepared_input_is_one_line(tmp_path):
    msg = one_line(cdr("scenario", "douban-m2b"))
    assert msg.startswith(f"prepared table {paths.PREPARED / 'douban-gadtcdr' / 'interactions.parquet'} is missing: run the prepare stage")
