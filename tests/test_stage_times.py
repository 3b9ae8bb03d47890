"""scripts/stage_times.py: stage segments from timestamped repro logs, both line formats, cut segments bounded by heartbeats."""

from __future__ import annotations

import sys
from datetime import datetime

import pytest

from benchmark.config import paths

sys.path.insert(0, str(paths.ROOT / "scripts"))
from stage_times import segments  # noqa: E402


def test_dated_lines_and_heartbeats(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("\n".join([
        "2026-12-05 10:05:12 Running stage 'run@a':",
        "2026-12-05 10:25:03 Updating lock file 'dvc.lock'",
        "2026-12-05 10:58:00 Running stage 'run@b':",  # reached the pipe late: b started when a locked
        "[hb] 2026-12-05 11:00:35",
        "2026-12-05 11:02:00 some output\rwith a progress bar",
        "[hb] 2026-12-05 11:03:35",
    ]) + "\n")
    a, b = segments(log, None)
    assert (a["stage"], a["start"], a["end"], a["cut"]) == ("run@a", datetime(2026, 12, 5, 10, 5, 12), datetime(2026, 12, 5, 10, 25, 3), False)
    assert (b["stage"], b["start"], b["end"], b["cut"]) == ("run@b", datetime(2026, 12, 5, 10, 25, 3), datetime(2026, 12, 5, 11, 3, 35), True)


def test_time_only_lines_need_a_date_and_roll_over_midnight(tmp_path):
    log = tmp_path / "b.log"
    log.write_text("23:50:00 Running stage 'run@a':\n00:10:00 Updating lock file 'dvc.lock'\n00:10:00 Running stage 'run@b':\n")
    with pytest.raises(SystemExit, match="carry no date"):
        segments(log, None)
    a, b = segments(log, datetime(2026, 12, 4))
    assert a["end"] == datetime(2026, 12, 5, 0, 10) and b["start"] == datetime(2026, 12, 5, 0, 10)


def test_a_log_appended_by_a_later_sitting_counts_each_segment_once_and_not_the_gap(tmp_path):
    """published_run.sh appends each sitting to one workspace log and archives a copy per sitting."""
    import subprocess

    first = [
        "2026-12-05 13:36:05 restored 0 file(s) into /ws/results (3 already there, left as they were)",
        "2026-12-05 13:36:05 [published] dvc repro in /ws at aaaaaaa",
        "2026-12-05 16:06:07 Running stage 'run@a':",
        "2026-12-05 16:24:06 [heartbeat]",
    ]
    second = first + [
        "2026-12-05 17:05:06 restored 0 file(s) into /ws/results (7 already there, left as they were)",
        "2026-12-05 17:05:06 [published] dvc repro in /ws at bbbbbbb",
        "2026-12-05 17:05:10 Running stage 'run@a':",
        "2026-12-05 17:21:30 Updating lock file 'dvc.lock'",
        "2026-12-05 17:21:31 Running stage 'run@b':",
        "2026-12-05 17:30:31 [heartbeat]",
    ]
    (tmp_path / "one.log").write_text("\n".join(first) + "\n")
    (tmp_path / "two.log").write_text("\n".join(second) + "\n")
    a_cut, a_rest, b = segments(tmp_path / "two.log", None)
    assert (a_cut["end"], a_cut["cut"]) == (datetime(2026, 12, 5, 16, 24, 6), True)  # not 17:05: the machine was idle
    assert (a_rest["start"], a_rest["end"]) == (datetime(2026, 12, 5, 17, 5, 10), datetime(2026, 12, 5, 17, 21, 30))
    out = subprocess.run([sys.executable, str(paths.ROOT / "scripts" / "stage_times.py"), str(tmp_path / "one.log"), str(tmp_path / "two.log")],
                         capture_output=True, text=True, check=True).stdout
    totals = {ln.split()[0]: float(ln.split()[-2]) for ln in out.split("\n\n")[1].splitlines() if ln.strip()}
    assert totals["run@a"] == pytest.approx(18.0 + 16.3) and totals["run@b"] == pytest.approx(9.0)
