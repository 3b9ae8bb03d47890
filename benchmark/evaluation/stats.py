"""Intervals, paired tests and multiple-test correction over per-user metric values.

Kept apart from the metrics (STYLE item 4): everything here takes arrays of per-user
values, whatever metric produced them. NaN values (e.g. tail recall of a user with no
tail positive) are treated as "not defined for this user" and left out.

Why the bootstrap is over users: users are the sampling unit of the benchmark (the
catalog is fixed), so "would the ranking of models hold on another draw of users
from the same population" is the question the interval answers. When the same user
appears several times (one row per seed), pass ``clusters`` so that the user is
resampled as one unit; the resampled statistic is then the ratio of summed values to
summed counts, which equals the plain mean when every cluster has one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

_CHUNK_CELLS = 4_000_000  # resample x cluster cells held in memory at once


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of sum(num[idx]) / sum(den[idx]) over resampled clusters."""
    c = len(num)
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // max(c, 1))
    out = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, c, size=(b, c))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + b] = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    return out


def _clustered(values: np.ndarray, clusters: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if clusters is None:
        return values, np.ones_like(values)
    codes, uniq = pd.factorize(pd.Series(clusters), sort=True)
    num = np.bincount(codes, weights=values, minlength=len(uniq))
    den = np.bincount(codes, minlength=len(uniq)).astype(np.float64)
    return num, den


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95, clusters: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval of the mean over users.

    Returns ``(mean, lo, hi)``; NaN entries are dropped first; an empty input gives
    three NaN. Deterministic for a fixed ``seed``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    v = np.asarray(values, dtype=np.float64).ravel()
    keep = ~np.isnan(v)
    cl = None if clusters is None else np.asarray(clusters).ravel()
    if cl is not None and len(cl) != len(v):
        raise ValueError(f"clusters has {len(cl)} entries for {len(v)} values")
    v = v[keep]
    cl = None if cl is None else cl[keep]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    num, den = _clustered(v, cl)
    dist = _bootstrap_ratio(num, den, n_boot, seed)
    a = (1 - level) / 2
    lo, hi = np.quantile(dist, [a, 1 - a])
    return float(v.mean()), float(lo), float(hi)


def paired_test(a: np.ndarray, b: np.ndarray, seed: int = 0, n_perm: int = 10_000) -> float:
    """Two-sided paired sign-flip (permutation) test of mean(a - b) = 0 over users.

    Why this test and not Wilcoxon: the benchmark reports *means* of per-user metrics,
    and those values are heavily tied and zero-inflated (HR is 0/1, P@3 takes four
    values). The sign-flip test uses the mean difference itself as statistic, needs no
    normal approximation and no rule for zero differences (a zero difference flips to
    itself), and is exact under the null that each user's difference is symmetric
    around 0. With at most 16 non-zero differences every sign pattern is enumerated
    (exact p); otherwise ``n_perm`` random patterns give ``(1 + #extreme) / (1 + n_perm)``.
    Pairs with a NaN on either side are dropped; no non-zero difference gives p = 1.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs equal-length arrays, got {a.shape} and {b.shape}")
    d = a - b
    d = d[~np.isnan(d)]
    scale = np.abs(d).max() if len(d) else 0.0
    d = d[np.abs(d) > 1e-12 * max(scale, 1e-300)]
    if len(d) == 0:
        return 1.0
    t_obs = abs(d.sum())
    tol = 1e-9 * np.abs(d).sum()
    if len(d) <= 16:
        patterns = ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1) * 2 - 1
        t = np.abs(patterns @ d)
        return float(np.mean(t >= t_obs - tol))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // len(d))
    extreme = 0
    for start in range(0, n_perm, chunk):
        bsz = min(chunk, n_perm - start)
        signs = rng.integers(0, 2, size=(bsz, len(d)), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ d) >= t_obs - tol).sum())
    return float((1 + extreme) / (1 + n_perm))


def holm(pvalues: Mapping[str, float] | Sequence[float] | np.ndarray):
    """Holm-Bonferroni step-down adjusted p-values (same keys / order as the input).

    Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    The running maximum keeps the adjusted values monotone in the raw ones, so
    "reject when adj <= alpha" is exactly Holm's procedure.
    """
    if isinstance(pvalues, Mapping):
        keys = list(pvalues)
        adj = holm(np.array([pvalues[k] for k in keys], dtype=np.float64))
        return {k: float(v) for k, v in zip(keys, adj)}
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must be in [0, 1] without NaN, got {p}")
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.empty(m)
    adj[order] = np.maximum.accumulate(stepped)
    return adj


def relative_improvement(
    model_runs: Sequence[np.ndarray],
    pop_runs: Sequence[np.ndarray],
    users_runs: Sequence[np.ndarray] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Relative improvement of a model over Popularity, ``mean(model) / mean(pop) - 1``.

    Inputs are one array per (seed, fold) run of per-user values of one metric, the
    model's and Popularity's paired (same users, same order within a run).

    * Point estimate: computed per run, ``mean(model_r) / mean(pop_r) - 1``, then
      averaged over runs (what the paper's tables report per run, averaged).
    * Interval: percentile bootstrap over users of the *pooled* relative improvement
      ``sum(model) / sum(pop) - 1`` over all runs' rows. Users are resampled as units
      (``users_runs`` gives the user id of every row; a user tested under several
      seeds carries all its rows), and model and Popularity values of a user move
      together, so the interval reflects the paired design.

    With one run, or equal-sized folds, the point estimate and the pooled ratio are
    close but not identical; the interval is about the pooled ratio. A run whose
    Popularity mean is 0 makes the ratio undefined: NaN is returned for the point.
    NaN pairs are dropped.
    """
    if len(model_runs) != len(pop_runs) or len(model_runs) == 0:
        raise ValueError(f"need the same non-zero number of runs, got {len(model_runs)} and {len(pop_runs)}")
    per_run, m_all, p_all, u_all = [], [], [], []
    for r, (m, p) in enumerate(zip(model_runs, pop_runs)):
        m = np.asarray(m, dtype=np.float64).ravel()
        p = np.asarray(p, dtype=np.float64).ravel()
        if m.shape != p.shape:
            raise ValueError(f"run {r}: model has {len(m)} users, popularity {len(p)}; values must be paired")
        u = np.asarray(users_runs[r]).astype(str).ravel() if users_runs is not None else np.array([f"{r}/{i}" for i in range(len(m))])
        if len(u) != len(m):
            raise ValueError(f"run {r}: {len(u)} user ids for {len(m)} values")
        ok = ~(np.isnan(m) | np.isnan(p))
        m, p, u = m[ok], p[ok], u[ok]
        pm = p.mean() if len(p) else np.nan
        per_run.append(m.mean() / pm - 1 if pm > 0 else np.nan)
        m_all.append(m), p_all.append(p), u_all.append(u)
    point = float(np.mean(per_run))
    m, p, u = np.concatenate(m_all), np.concatenate(p_all), np.concatenate(u_all)
    if len(m) == 0:
        return point, float("nan"), float("nan")
    num, _ = _clustered(m, u)
    den, _ = _clustered(p, u)
    dist = _bootstrap_ratio(num, den, n_boot, seed) - 1
    dist = dist[np.isfinite(dist)]
    if len(dist) == 0:
        return point, float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(dist, [a, 1 - a])
    return point, float(lo), float(hi)


def aggregate(
    per_user: pd.DataFrame,
    metrics: list[str],
    group_cols: Sequence[str] = ("scenario", "model"),
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    cluster_col: str | None = "user",
) -> pd.DataFrame:
    """Mean, bootstrap interval and user count per group and metric (long format).

    One row per (group..., metric) with columns ``mean, ci_lo, ci_hi, n_users``.
    ``n_users`` counts non-NaN values. When ``cluster_col`` is present in the frame
    (the user id), rows of one user across seeds are resampled together.
    """
    group_cols = list(group_cols)
    missing = [c for c in group_cols + list(metrics) if c not in per_user.columns]
    if missing:
        raise KeyError(f"aggregate: columns {missing} not in per-user frame (has {list(per_user.columns)})")
    use_clusters = cluster_col is not None and cluster_col in per_user.columns
    rows = []
    groups = per_user.groupby(group_cols, sort=True, dropna=False) if group_cols else [((), per_user)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        for metric in metrics:
            v = g[metric].to_numpy(dtype=np.float64)
            cl = g[cluster_col].to_numpy() if use_clusters else None
            mean, lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=seed, level=level, clusters=cl)
            rows.append((*key, metric, mean, lo, hi, int((~np.isnan(v)).sum())))
    return pd.DataFrame(rows, columns=group_cols + ["metric", "mean", "ci_lo", "ci_hi", "n_users"])
