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
