"""The committed archive of published records: only finished runs go in, nothing is lost or overwritten, tampering is caught."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from benchmark.config import paths

sys.path.insert(0, str(paths.ROOT / "scripts"))
import records_archive as ra  # noqa: E402


def _run(results: Path, kind: str, model: str, sf: str, finished: bool = True, payload: bytes = b"x") -> Path:
    folder = results / kind / "scen" / model / sf
    folder.mkdir(parents=True)
    (folder / "per_user.parquet").write_bytes(payload)
    (folder / "topk.parquet").write_bytes(payload * 2)
    if finished:
        (folder / "record.json").write_text('{"run_key": "k"}\n')
    return folder


@pytest.fixture
def workspace(tmp_path):
    results = tmp_path / "ws" / "results"
    _run(results, "runs", "pop", "s0_f0")
    _run(results, "runs", "pop", "s0_f1", finished=False)  # cut off before record.json: not a run yet
    _run(results, "twins", "pop", "s0_f0", payload=b"t")
    (results / "runs" / "scen" / "pop" / "tuning.json").write_text("{}\n")
    (results / "runs" / "scen" / "pop" / "s0_f0" / ".topk.parquet.tmp").write_bytes(b"partial")
    return tmp_path / "ws"


def test_save_takes_finished_runs_and_tunings_only(workspace, tmp_path):
    archive = tmp_path / "archive"
    assert ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)]) == 0
    kept = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert kept == [
        "MANIFEST.tsv",
        "runs/scen/pop/s0_f0/per_user.parquet",
        "runs/scen/pop/s0_f0/record.json",
        "runs/scen/pop/s0_f0/topk.parquet",
        "runs/scen/pop/tuning.json",
        "twins/scen/pop/s0_f0/per_user.parquet",
        "twins/scen/pop/s0_f0/record.json",
        "twins/scen/pop/s0_f0/topk.parquet",
    ]
    assert ra.check(archive) == []


def test_restore_round_trip_never_overwrites(workspace, tmp_path):
    archive = tmp_path / "archive"
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    fresh = tmp_path / "fresh"
    keep = _run(fresh / "results", "runs", "pop", "s0_f0", payload=b"newer")
    assert ra.main(["restore", "--workspace", str(fresh), "--archive", str(archive)]) == 0
    assert (keep / "per_user.parquet").read_bytes() == b"newer"  # the workspace's own file stays
    assert (fresh / "results/twins/scen/pop/s0_f0/topk.parquet").read_bytes() == b"tt"
    assert (fresh / "results/runs/scen/pop/tuning.json").is_file()
    assert not (fresh / "results/runs/scen/pop/s0_f1").exists()


def test_save_updates_a_recomputed_run_and_keeps_the_rest(workspace, tmp_path):
    archive = tmp_path / "archive"
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    (workspace / "results/runs/scen/pop/s0_f0/per_user.parquet").write_bytes(b"refit")
    _run(workspace / "results", "runs", "ease", "s0_f0")
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    assert (archive / "runs/scen/pop/s0_f0/per_user.parquet").read_bytes() == b"refit"
    assert (archive / "runs/scen/ease/s0_f0/record.json").is_file()
    assert (archive / "twins/scen/pop/s0_f0/record.json").is_file()
    assert ra.check(archive) == []


def test_tampered_archive_is_refused_and_nothing_restored(workspace, tmp_path, capsys):
    archive = tmp_path / "archive"
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    (archive / "runs/scen/pop/s0_f0/topk.parquet").write_bytes(b"edited")
    fresh = tmp_path / "fresh"
    assert ra.main(["restore", "--workspace", str(fresh), "--archive", str(archive)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "changed since the manifest" in err[0]
    assert not (fresh / "results").exists()
    assert ra.main(["check", "--archive", str(archive)]) == 1


def test_unlisted_record_is_a_problem(workspace, tmp_path):
    archive = tmp_path / "archive"
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    _run(archive, "runs", "bpr", "s1_f0")
    assert ra.check(archive) == [
        "runs/scen/bpr/s1_f0/per_user.parquet: not in the manifest",
        "runs/scen/bpr/s1_f0/record.json: not in the manifest",
        "runs/scen/bpr/s1_f0/topk.parquet: not in the manifest",
    ]


def test_save_of_a_workspace_without_finished_runs_writes_an_empty_manifest(tmp_path):
    archive = tmp_path / "new" / "archive"
    assert ra.main(["save", "--workspace", str(tmp_path / "empty"), "--archive", str(archive)]) == 0
    assert (archive / "MANIFEST.tsv").read_text() == "path\tbytes\tsha256\n"
    assert ra.check(archive) == []


def test_status_counts_what_the_archive_holds(workspace, tmp_path):
    archive = tmp_path / "archive"
    for folder in (workspace / "results/runs/scen/pop/s0_f0", workspace / "results/twins/scen/pop/s0_f0"):
        (folder / "record.json").write_text('{"run_key": "k", "setting": "full", "code_hash": "abc"}\n')
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    assert ra.status(archive) == ["scen: 1 models, 1 run records, 1 twin records, 1 tunings; full setting, code abc"]



def test_save_drops_what_the_runner_pruned_and_keeps_other_scenarios(workspace, tmp_path):
    archive = tmp_path / "archive"
    _run(workspace / "results", "runs", "ease", "s1_f0")
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    elsewhere = tmp_path / "elsewhere"  # a workspace that ran another scenario
    folder = _run(elsewhere / "results", "runs", "pop", "s0_f0")
    folder.parent.parent.rename(elsewhere / "results/runs/scen2")
    ra.main(["save", "--workspace", str(elsewhere), "--archive", str(archive)])
    # a code change made the runner delete ease's stale record and pop's tuning cache in the workspace
    shutil.rmtree(workspace / "results/runs/scen/ease")
    (workspace / "results/runs/scen/pop/tuning.json").unlink()
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    assert not (archive / "runs/scen/ease").exists()
    assert not (archive / "runs/scen/pop/tuning.json").exists()
    assert (archive / "runs/scen/pop/s0_f0/record.json").is_file() and (archive / "twins/scen/pop/s0_f0/record.json").is_file()
    assert (archive / "runs/scen2/pop/s0_f0/record.json").is_file()  # not in this workspace: left as it was
    assert ra.check(archive) == []


def test_a_repeated_save_hashes_each_workspace_file_once(workspace, tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    ra.main(["save", "--workspace", str(workspace), "--archive", str(archive)])
    before = (archive / "MANIFEST.tsv").read_text()
    hashed = []
    real = ra._sha256
    monkeypatch.setattr(ra, "_sha256", lambda p: hashed.append(p) or real(p))
    assert ra.save(workspace / "results", archive) == (0, 7, 0, 7)
    assert sorted(hashed) == sorted(workspace / "results" / rel for rel in ra.finished_files(workspace / "results"))
    assert (archive / "MANIFEST.tsv").read_text() == before
    assert ra.check(archive) == []


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_reproduce_from_records_restores_before_the_pipeline():
    """`make reproduce-from-records` must put the records back before `dvc repro`, or every run refits."""
    import subprocess

    out = subprocess.run(["make", "-n", "reproduce-from-records"], cwd=paths.ROOT, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    restore = next(i for i, ln in enumerate(lines) if "records_archive.py restore" in ln)
    repro = next(i for i, ln in enumerate(lines) if "dvc repro" in ln)
    assert restore < repro, out
