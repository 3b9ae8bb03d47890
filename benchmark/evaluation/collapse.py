"""The collapse detector: is a model's output personal, or Popularity's list for everyone?

On these data Popularity is strong for users without target history, so a model that
ends up at Popularity's score is easy to mistake for one that transfers. The
fair-baselines investigation found MultiVAE at -0.1% NDCG@10 against Popularity on
douban-m2b with 6 distinct top-10 lists among 517 test users: parity by collapse.
Three figures, computed on every run's test users from what the evaluator already
has (the top-K lists, the fold's popularity, the mean score per item), make it
visible in every record:

* ``distinct_share``: distinct top-10 lists (as ordered lists) / evaluated users;
* ``pop_overlap``: mean share of a user's top 10 that is in Popularity's top 10;
* ``score_pop_spearman``: Spearman correlation between the model's mean score per
  catalog item (over the evaluated users) and the item's training popularity.

A run is flagged ``collapsed`` when its lists are near-identical across users
(``distinct_share <= 0.05``) or near-identical to Popularity's
(``pop_overlap >= 0.9``): either way nobody should read its score as transfer.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from benchmark.evaluation.metrics import topk_indices

K = 10
MAX_DISTINCT_SHARE = 0.05
MAX_POP_OVERLAP = 0.9


def collapse_stats(topk: np.ndarray, popularity: np.ndarray, mean_scores: np.ndarray | None = None, k: int = K) -> dict:
    """The three figures and the flag (see the module docstring); pure, JSON-able."""
    topk = np.asarray(topk)
    pop = np.asarray(popularity, dtype=np.float64).ravel()
    n = len(topk)
    k = min(int(k), topk.shape[1] if topk.ndim == 2 else 0, len(pop))
    if n == 0 or k == 0:
        return {"k": k, "n_users": n, "distinct_lists": 0, "distinct_share": None, "pop_overlap": None,
                "score_pop_spearman": None, "collapsed": False}
    lists = topk[:, :k]
    distinct = int(len(np.unique(lists, axis=0)))
    pop_top = topk_indices((pop - 1e-9 * np.arange(len(pop)))[None, :], k)[0]
    overlap = float(np.isin(lists, pop_top).sum(axis=1).mean() / k)
    rho = None
    if mean_scores is not None:
        ms = np.asarray(mean_scores, dtype=np.float64).ravel()
        if len(ms) == len(pop) and np.ptp(ms) > 0 and np.ptp(pop) > 0:
            rho = float(spearmanr(ms, pop).statistic)
    share = distinct / n
    return {"k": k, "n_users": n, "distinct_lists": distinct, "distinct_share": round(share, 5),
            "pop_overlap": round(overlap, 5), "score_pop_spearman": None if rho is None else round(rho, 5),
            "collapsed": bool(share <= MAX_DISTINCT_SHARE or overlap >= MAX_POP_OVERLAP)}
