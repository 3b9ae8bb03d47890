"""Tuned values on a bound of their search range (benchmark/report/ranges.py)."""

from __future__ import annotations

from benchmark.report.ranges import at_edge, edge_note


def test_choices_flag_the_largest_and_smallest_of_four_or_more():
    k = {"type": "choice", "values": [100, 400, 1000, 3000]}
    assert at_edge(3000, k) == "top" and at_edge(100, k) == "bottom"
    assert at_edge(400, k) is None
    assert at_edge(64, {"type": "choice", "values": [32, 64]}) is None  # two choices: every pick is an edge
    assert at_edge(128, {"type": "choice", "values": [32, 64, 128]}) is None  # three: two of three picks are edges
    assert at_edge("mlp", {"type": "choice", "values": ["linear", "mlp", "deep"]}) is None  # not numeric
    assert at_edge(True, {"type": "choice", "values": [True, False, None]}) is None


def test_continuous_ranges_use_one_percent_of_the_log_or_linear_range():
    lr = {"type": "loguniform", "low": 1e-3, "high": 1e-1}
    assert at_edge(1.01e-3, lr) == "bottom"  # 0.2% of the log range from the bottom
    assert at_edge(1.2e-3, lr) is None       # 4% of the log range
    assert at_edge(0.0995, lr) == "top"
    w = {"type": "uniform", "low": 0.0, "high": 1.0}
    assert at_edge(0.995, w) == "top" and at_edge(0.5, w) is None and at_edge(0.0, w) == "bottom"
    assert at_edge(5, {"type": "randint", "low": 0, "high": 500}) == "bottom"


def test_edge_note_counts_runs_from_the_real_spec():
    # models/itemknn.yaml searches k over [100, 400, 1000, 3000]
    note = edge_note("itemknn", [{"k": 3000, "shrink": 1000.0}] * 9 + [{"k": 400, "shrink": 1000.0}])
    assert note == "k at the top of its range in 9 of 10 runs"
    assert edge_note("itemknn", [{"k": 400, "shrink": 50.0}]) == ""
    assert edge_note("external-mine", [{"k": 1}]) == ""  # no spec: nothing to compare with
