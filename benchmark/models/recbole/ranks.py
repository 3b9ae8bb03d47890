"""Rank helpers of the "+Pop" blend: a model's scores and Popularity's, each as per-row
ranks in (0, 1], mixed with one weight (benchmark/models/recbole/adapter.py).

Ranks, not raw scores, because the two live on unrelated scales; Popularity's tie-break
is the Popularity model's (catalog position), so a weight of 1 reproduces its ranking.
"""

from __future__ import annotations

import numpy as np


def tie_broken(pop: np.ndarray) -> np.ndarray:
    """Popularity with the catalog-position tie-break of the Popularity model (distinct values)."""
    return (pop - 1e-9 * np.arange(len(pop))).astype(np.float64)


def row_ranks(scores: np.ndarray) -> np.ndarray:
    """Each row's scores as ranks in (0, 1] (1 = best; ties share their average rank)."""
    from scipy.stats import rankdata

    return rankdata(scores, method="average", axis=1) / scores.shape[1]
