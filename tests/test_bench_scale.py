"""Smoke test of scripts/bench_scale.py on its quick grid: every file written, every number measured.

No timing is asserted (the project forbids thresholds on a shared machine); the test
checks that each (task, users, items) point of the quick grid produced a row with a
positive time, throughput and peak memory, and that the table and the plot exist; then
that ``--resume`` keeps the measured rows and measures again only a failed one.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_scale.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_grid_writes_positive_measurements(tmp_path):
    bench = load_script()
    rows = bench.main(["--quick", "--out", str(tmp_path)])
    expected = {(t, u, i) for t in bench.TASKS for u in bench.QUICK["users"] for i in bench.QUICK["items"]}
    with (tmp_path / "scale.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {(r["task"], int(r["users"]), int(r["items"])) for r in table} == expected
    assert len(table) == len(rows) == len(expected)
    for r in table:
        assert "failed" not in r["detail"], r
        for col in ("seconds", "per_s", "peak_rss_mb", "setup_rss_mb"):
            assert float(r[col]) > 0, (col, r)
        assert float(r["peak_rss_mb"]) >= float(r["setup_rss_mb"]), r
    md = (tmp_path / "scale.md").read_text()
    assert md.count("\n| ") == len(expected) + 1  # header + one line per row
    assert "Largest evaluation measured" in md
    png = (tmp_path / "scale.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    # --resume keeps measured rows and measures only the missing or failed ones.
    for r in table:
        if r["task"] == "map2t_epoch" and int(r["users"]) == max(bench.QUICK["users"]):
            r.update(seconds="", per_s="", peak_rss_mb="", setup_rss_mb="", setup_peak_mb="", detail='{"failed": -15}')
    with (tmp_path / "scale.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=bench.COLUMNS)
        w.writeheader()
        w.writerows(table)
    bench.main(["--quick", "--resume", "--out", str(tmp_path)])
    with (tmp_path / "scale.csv").open() as f:
        again = list(csv.DictReader(f))
    assert len(again) == len(table)
    for old, new in zip(table, again):
        if old["seconds"]:
            assert new == old
        else:
            assert float(new["seconds"]) > 0 and "failed" not in new["detail"], new
