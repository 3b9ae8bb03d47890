"""Bootstrap intervals, the paired test, Holm correction, relative improvement, aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.evaluation.stats import aggregate, bootstrap_ci, holm, paired_test, relative_improvement

# --- bootstrap ----------------------------------------------------------------------


def width(ci):
    return ci[2] - ci[1]


def test_bootstrap_interval_covers_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, big = rng.random(250), rng.random(4000)
    cs, cb = bootstrap_ci(small), bootstrap_ci(big)
    for v, c in ((small, cs), (big, cb)):
        assert c[0] == pytest.approx(v.mean())
        assert c[1] < c[0] < c[2]
    # sd of the mean scales as 1/sqrt(n): 16x the users -> about 1/4 of the width
    assert 0.15 < width(cb) / width(cs) < 0.4


def test_bootstrap_coverage_of_a_known_mean():
    # Bernoulli(0.3) samples of 150 users: the 95% interval should contain 0.3 in
    # roughly 95% of repetitions (percentile bootstrap is a bit liberal at small n).
    rng = np.random.default_rng(1)
    covered = [lo <= 0.3 <= hi for _, lo, hi in (bootstrap_ci(rng.random(150) < 0.3, n_boot=400, seed=s) for s in range(150))]
    assert 0.88 <= np.mean(covered) <= 0.995


def test_bootstrap_degenerate_nan_and_determinism():
    assert bootstrap_ci(np.full(50, 0.25)) == (0.25, 0.25, 0.25)
    m, lo, hi = bootstrap_ci(np.array([1.0, np.nan, 3.0]))
    assert m == 2.0 and 1.0 <= lo <= hi <= 3.0
    assert all(np.isnan(bootstrap_ci(np.array([np.nan]))))
    v = np.random.default_rng(2).random(300)
    assert bootstrap_ci(v, seed=7) == bootstrap_ci(v, seed=7)
    assert bootstrap_ci(v, seed=7) != bootstrap_ci(v, seed=8)
    with pytest.raises(ValueError):
        bootstrap_ci(v, level=1.5)


def test_bootstrap_clusters_do_not_count_a_repeated_user_twice():
    v = np.random.default_rng(3).random(400)
    users = np.arange(400)
    single = bootstrap_ci(v)
    doubled = np.concatenate([v, v])
    naive = bootstrap_ci(doubled)  # treats the copies as new users: too narrow
    clustered = bootstrap_ci(doubled, clusters=np.concatenate([users, users]))
    assert clustered[0] == pytest.approx(single[0])
    assert width(clustered) == pytest.approx(width(single), rel=0.15)
    assert width(naive) < 0.85 * width(single)


# --- paired test ----------------------------------------------------------------------


def test_paired_test_hand_case_exact():
    # d = [1, 2, 3]: the 8 sign patterns give sums 6, 4, 2, 0, 0, -2, -4, -6;
    # |sum| >= 6 in 2 of 8 -> p = 0.25. Zero differences add nothing.
    assert paired_test(np.array([1.0, 2, 3, 5]), np.array([0.0, 0, 0, 5])) == pytest.approx(0.25)


def test_paired_test_edge_cases():
    a = np.random.default_rng(0).random(50)
    assert paired_test(a, a) == 1.0
    assert paired_test(np.zeros(3), np.zeros(3)) == 1.0
    assert paired_test(a + 1, a) < 1e-3
    # NaN pairs are dropped: same answer as without them
    an, bn = np.append(a + 0.1, np.nan), np.append(a, 0.5)
    assert paired_test(an, bn) == paired_test(a + 0.1, a)
    with pytest.raises(ValueError):
        paired_test(a, a[:10])


@pytest.mark.parametrize("n", [10, 40])
def test_paired_test_agrees_with_scipy_permutation_test(n):
    from scipy.stats import permutation_test

    rng = np.random.default_rng(n)
    b = rng.random(n)
    a = b + rng.normal(0.15, 0.4, n)
    ref = permutation_test(
        (a, b), lambda x, y: np.mean(x - y), permutation_type="samples", n_resamples=20000 if n > 16 else np.inf, random_state=1
    ).pvalue
    got = paired_test(a, b, n_perm=20000)
    assert got == pytest.approx(ref, abs=1e-12 if n <= 16 else 0.01)


def test_paired_test_is_calibrated_under_the_null():
    rng = np.random.default_rng(5)
    ps = np.array([paired_test(rng.normal(0, 1, 60), rng.normal(0, 1, 60), seed=s, n_perm=999) for s in range(100)])
    assert 0.01 <= np.mean(ps <= 0.05) <= 0.12
    assert 0.4 < ps.mean() < 0.6


# --- Holm ---------------------------------------------------------------------------


def test_holm_hand_cases():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> running max 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # 2 * 0.5 = 1, capped; 0.6 -> running max 1
    assert holm({"b": 0.02, "a": 0.01}) == pytest.approx({"b": 0.02, "a": 0.02})
    assert len(holm([])) == 0
    with pytest.raises(ValueError):
        holm([0.1, np.nan])


def holm_rejections(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's procedure straight from the definition: step down while p_(i) <= alpha / (m - i + 1)."""
    m = len(p)
    reject = np.zeros(m, dtype=bool)
    for i, j in enumerate(np.argsort(p, kind="stable")):
        if p[j] > alpha / (m - i):
            break
        reject[j] = True
    return reject


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_holm_matches_definition(ps, alpha):
    p = np.array(ps)
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)  # monotone in the raw p-values
    np.testing.assert_array_equal(adj <= alpha, holm_rejections(p, alpha))


def test_holm_worked_example():
    # Six p-values, given out of order. Sorted, each is multiplied by (m - rank + 1), then a
    # running maximum keeps the adjusted values monotone and 1 caps them:
    #   0.001 x 6 = 0.006 | 0.008 x 5 = 0.040 | 0.039 x 4 = 0.156 | 0.041 x 3 = 0.123 -> 0.156
    #   0.042 x 2 = 0.084 -> 0.156 | 0.60 x 1 = 0.60
    p = [0.041, 0.60, 0.001, 0.042, 0.008, 0.039]
    adj = holm(p)
    np.testing.assert_allclose(adj, [0.156, 0.60, 0.006, 0.156, 0.040, 0.156], rtol=1e-12)
    np.testing.assert_array_equal(adj <= 0.05, [False, False, True, False, True, False])  # two rejections
    # A tie shares one adjusted value; products above 1 are capped.
    np.testing.assert_allclose(holm([0.02, 0.5, 0.02]), [0.06, 0.5, 0.06], rtol=1e-12)
    np.testing.assert_allclose(holm([0.6, 0.7]), [1.0, 1.0])


# --- relative improvement -------------------------------------------------------------


def test_relative_improvement_hand_case():
    # run 1: 0.5 / 0.25 - 1 = 1.0; run 2: 0.3 / 0.2 - 1 = 0.5 -> point = mean = 0.75
    # pooled over users: (2 + 0.6) / (1 + 0.4) - 1 = 0.857..., inside the interval
    model = [np.array([1.0, 1, 0, 0]), np.array([0.3, 0.3])]
    pop = [np.array([1.0, 0, 0, 0]), np.array([0.2, 0.2])]
    point, lo, hi = relative_improvement(model, pop, n_boot=2000)
    assert point == pytest.approx(0.75)
    assert lo <= 2.6 / 1.4 - 1 <= hi


def test_relative_improvement_constant_ratio_and_undefined():
    pop = np.random.default_rng(0).random(200) + 0.1
    assert relative_improvement([2 * pop], [pop]) == pytest.approx((1.0, 1.0, 1.0))
    assert np.isnan(relative_improvement([np.ones(3)], [np.zeros(3)])[0])
    with pytest.raises(ValueError, match="paired"):
        relative_improvement([np.ones(3)], [np.ones(4)])


def test_relative_improvement_clusters_users_across_seeds():
    rng = np.random.default_rng(4)
    pop = rng.random(300)
    model = pop * (1 + rng.normal(0.1, 0.5, 300)).clip(0)
    users = np.arange(300)
    one = relative_improvement([model], [pop], [users])
    two = relative_improvement([model, model], [pop, pop], [users, users])
    naive = relative_improvement([model, model], [pop, pop])
    assert two[0] == pytest.approx(one[0])
    assert (two[2] - two[1]) == pytest.approx(one[2] - one[1], rel=0.15)
    assert (naive[2] - naive[1]) < 0.85 * (one[2] - one[1])


# --- aggregate ------------------------------------------------------------------------


def test_aggregate_means_counts_and_nan():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "scenario": "s",
            "model": np.repeat(["a", "b"], 50),
            "user": np.tile(np.arange(50).astype(str), 2),
            "P@3": rng.random(100),
            "tail/R@3": np.where(rng.random(100) < 0.3, np.nan, rng.random(100)),
        }
    )
    out = aggregate(df, ["P@3", "tail/R@3"], ["scenario", "model"], n_boot=200)
    assert list(out.columns) == ["scenario", "model", "metric", "mean", "ci_lo", "ci_hi", "n_users"]
    assert len(out) == 4
    for _, r in out.iterrows():
        v = df.loc[df["model"] == r["model"], r["metric"]]
        assert r["mean"] == pytest.approx(v.mean())  # pandas skips NaN
        assert r["n_users"] == v.notna().sum()
        assert r["ci_lo"] <= r["mean"] <= r["ci_hi"]
    with pytest.raises(KeyError, match="NDCG@3"):
        aggregate(df, ["NDCG@3"], ["model"])
