"""The report's relative improvement: its interval is about the same statistic as its point.

The published report's small cohorts (ten runs, a few users each) showed points outside
their intervals, because the point averaged per-run ratios while the interval bootstrapped
the pooled ratio. benchmark/report/relative.py bootstraps the per-run average itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.evaluation.stats import relative_improvement
from benchmark.report.relative import per_run_relative


def _runs(rng, n_runs, n_users, ref_scale):
    ms, ps, us = [], [], []
    for r in range(n_runs):
        users = np.array([f"u{i}" for i in rng.choice(3 * n_users, size=n_users, replace=False)])  # users recur across runs
        p = rng.binomial(1, ref_scale[r], size=n_users).astype(float)
        m = rng.binomial(1, 0.3, size=n_users).astype(float)
        ms.append(m), ps.append(p), us.append(users)
    return ms, ps, us


def test_point_is_the_evaluation_packages_point():
    rng = np.random.default_rng(1)
    ms, ps, us = _runs(rng, 6, 200, [0.2, 0.25, 0.3, 0.35, 0.2, 0.3])
    new = per_run_relative(ms, ps, us, n_boot=200, seed=3)
    old = relative_improvement(ms, ps, us, n_boot=200, seed=3)
    assert new[0] == pytest.approx(old[0], abs=1e-12)
    assert new == per_run_relative(ms, ps, us, n_boot=200, seed=3)  # deterministic


def test_small_cohorts_with_unequal_runs_keep_the_point_inside_the_interval():
    """Ten runs of a few users, the reference nearly absent in some: the pooled interval misses the point, this one does not."""
    rng = np.random.default_rng(0)
    misses = 0
    for trial in range(20):
        ms, ps, us = _runs(rng, 10, 12, [0.05, 0.6, 0.6, 0.1, 0.6, 0.6, 0.08, 0.6, 0.6, 0.6])
        pt, lo, hi = per_run_relative(ms, ps, us, n_boot=500, seed=trial)
        opt, olo, ohi = relative_improvement(ms, ps, us, n_boot=500, seed=trial)
        if np.isfinite(opt) and not (olo <= opt <= ohi):
            misses += 1
        if np.isfinite(pt):
            assert lo <= pt <= hi, (trial, pt, lo, hi)
    assert misses > 0  # the case the change is for does occur with the pooled interval


def test_one_large_run_agrees_with_the_pooled_interval():
    rng = np.random.default_rng(2)
    ms, ps, us = _runs(rng, 1, 3000, [0.25])
    pt, lo, hi = per_run_relative(ms, ps, us, n_boot=1000, seed=0)
    opt, olo, ohi = relative_improvement(ms, ps, us, n_boot=1000, seed=0)
    assert pt == pytest.approx(opt) and lo == pytest.approx(olo, abs=0.03) and hi == pytest.approx(ohi, abs=0.03)


def test_unpaired_input_is_one_line_error():
    with pytest.raises(ValueError, match="run 0"):
        per_run_relative([np.ones(3)], [np.ones(2)], [np.array(["a", "b", "c"])])
