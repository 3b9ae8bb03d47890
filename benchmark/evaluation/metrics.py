"""Top-K ranking metrics as pure functions of (ranked lists, truth).

STYLE item 4: a metric is ``(ranked, truth) -> per-user values``; aggregation,
intervals and significance live in :mod:`benchmark.evaluation.stats`. Everything
here is vectorised over users (one small loop over the K values, never over users
or items) so that evaluating the full catalog stays cheap next to scoring it.

Conventions (binary relevance; a truth entry counts as a positive when its stored
value is > 0, whatever the value):

* ``topk`` is an ``(n_users, w)`` int array of catalog column indices, best first.
  Entries of ``-1`` mean "no item at this rank" (short submissions, catalogs smaller
  than K) and count as misses. For K > w the missing ranks count as misses too; the
  denominators below do not change.
* ``P@K  = hits@K / K``.
* ``R@K  = hits@K / n_pos``. The denominator is the number of positives, not
  ``min(n_pos, K)``: a user with 30 positives cannot reach R@3 = 1. This is the
  textbook definition (and RecBole's); the capped variant would hide that the
  short list misses most of what the user read.
* ``F1@K = 2 P R / (P + R)``, and 0 when P = R = 0.
* ``HR@K = 1`` if at least one hit in the top K.
* ``NDCG@K``: DCG with gain 1 and discount ``1 / log2(rank + 1)``, divided by the
  ideal DCG of ``min(n_pos, K)`` hits at ranks 1.. (so a perfect list scores 1).
* ``MAP@K``: sum over hit ranks r <= K of ``P@r``, divided by ``min(n_pos, K)``
  (the largest number of hits a K-list can hold, so a perfect list scores 1).
  RecBole's ``MAP.metric_info`` computes the same normaliser (its docstring says
  ``min(|R_hat(u)|, K)`` but the code uses the positive count); tests compare.

Users with no positives make recall and NDCG undefined; the protocol drops them
before evaluation, so meeting one here is an error, not a silent NaN. The
popularity breakdown is different: a user may have no *tail* positive, and then
the tail metrics are NaN for that user (excluded from means by the aggregator).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

METRIC_NAMES = ("P", "R", "F1", "HR", "NDCG", "MAP")
_TIE_CHUNK_CELLS = 4_000_000  # rows x catalog cells of the tie-break pass held at once


def metric_columns(ks: list[int], names: tuple[str, ...] = METRIC_NAMES) -> list[str]:
    """Column names in the canonical order: all metrics at the first K, then the next K."""
    return [f"{name}@{k}" for k in ks for name in names]


def check_ks(ks) -> list[int]:
    ks = [int(k) for k in ks]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks}")
    return ks


def topk_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best catalog columns of every row, best first.

    Ties are broken deterministically: on equal scores the lower catalog index ranks
    first (as ``np.argsort(-scores, kind="stable")`` would), including at the K
    boundary where ``argpartition`` alone picks an arbitrary subset of tied items.
    Models with integer scores (counts, co-occurrences) tie a lot, and an unstable
    tie-break would make metrics change between runs and machines.

    Cost: one ``argpartition`` (linear in the catalog) plus, only for rows whose
    K-th value is tied with items left outside the list, one extra linear pass.
    Returns ``(n, min(k, n_catalog))`` int64.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x catalog), got shape {scores.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n, m = scores.shape
    if m == 0:
        raise ValueError("scores has an empty catalog (0 columns)")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; cannot rank")
    if n == 0:
        return np.zeros((0, min(k, m)), dtype=np.int64)
    if k >= m:
        return np.argsort(-scores, axis=1, kind="stable").astype(np.int64)

    part = np.argpartition(scores, m - k, axis=1)[:, m - k :]
    vals = np.take_along_axis(scores, part, axis=1)
    kth = vals.min(axis=1)  # the K-th largest score of each row
    n_eq_sel = (vals == kth[:, None]).sum(axis=1)
    n_eq_all = (scores == kth[:, None]).sum(axis=1)
    amb_all = np.flatnonzero(n_eq_all > n_eq_sel)
    step = max(1, _TIE_CHUNK_CELLS // m)  # bounds the temporaries of tie-heavy batches
    for start in range(0, len(amb_all), step):
        amb = amb_all[start : start + step]
        # Rows where the K-th value is tied with items left outside: keep every item
        # strictly above it plus the n_eq_sel lowest-index tied items. The mask has
        # exactly k True per row and nonzero() walks it row-major, so the indices
        # reshape straight into (rows, k).
        sub = scores[amb]
        eq = sub == kth[amb, None]
        keys = np.where(eq, np.arange(m), m)
        smallest = np.sort(np.partition(keys, k - 1, axis=1)[:, :k], axis=1)
        last_kept = smallest[np.arange(len(amb)), n_eq_sel[amb] - 1]
        sel = (sub > kth[amb, None]) | (eq & (np.arange(m)[None, :] <= last_kept[:, None]))
        p2 = np.nonzero(sel)[1].reshape(len(amb), k)
        part[amb] = p2
        vals[amb] = np.take_along_axis(sub, p2, axis=1)
    # Order the selected k: by score descending, then by index ascending.
    order = np.argsort(part, axis=1, kind="stable")
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def binary_truth(truth, n_rows: int | None = None) -> sp.csr_matrix:
    if not sp.issparse(truth):
        raise TypeError(f"truth must be a scipy.sparse matrix, got {type(truth).__name__}")
    t = sp.csr_matrix(truth, copy=True)
    t.data = (t.data > 0).astype(np.float32)
    t.eliminate_zeros()
    t.sum_duplicates()
    t.sort_indices()
    if n_rows is not None and t.shape[0] != n_rows:
        raise ValueError(f"truth has {t.shape[0]} rows but topk has {n_rows} (one row per user, same order)")
    return t


def _check_topk(topk: np.ndarray, n_items: int) -> np.ndarray:
    topk = np.asarray(topk)
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (users x ranks), got shape {topk.shape}")
    if topk.size and not np.issubdtype(topk.dtype, np.integer):
        raise TypeError(f"topk must hold integer catalog indices, got dtype {topk.dtype}")
    topk = topk.astype(np.int64, copy=False)
    if topk.size and (topk.min() < -1 or topk.max() >= n_items):
        raise ValueError(f"topk indices must be in [0, {n_items}) or -1 for an empty rank; got [{topk.min()}, {topk.max()}]")
    if topk.shape[1] > 1:
        s = np.sort(topk, axis=1)
        dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise ValueError(f"topk row {row} lists the same item twice: a ranked list must not repeat items")
    return topk


def hit_matrix(topk: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n, w)``: is the item at each rank a positive of that user.

    Vectorised membership test: (row, item) pairs are encoded as ``row * m + item``,
    which is sorted for a CSR matrix with sorted indices, so one ``searchsorted``
    answers all of them.
    """
    t = binary_truth(truth, len(topk))
    topk = _check_topk(topk, t.shape[1])
    n, m = t.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(t.indptr))
    keys = rows * m + t.indices.astype(np.int64)
    q = np.arange(n, dtype=np.int64)[:, None] * m + topk
    pos = np.searchsorted(keys, q)
    pos = np.minimum(pos, max(len(keys) - 1, 0))
    hits = (keys[pos] == q) if len(keys) else np.zeros(q.shape, dtype=bool)
    return hits & (topk >= 0)


def _metrics_from_hits(hits: np.ndarray, n_pos: np.ndarray, ks: list[int]) -> dict[str, np.ndarray]:
    n, w = hits.shape
    kmax = max(ks)
    if w < kmax:  # missing ranks are misses
        hits = np.concatenate([hits, np.zeros((n, kmax - w), dtype=bool)], axis=1)
    h = hits[:, :kmax].astype(np.float64)
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    disc = 1.0 / np.log2(ranks + 1.0)
    cum_hits = np.cumsum(h, axis=1)
    cum_dcg = np.cumsum(h * disc, axis=1)
    cum_ap = np.cumsum(h * cum_hits / ranks, axis=1)  # sum of P@r over hit ranks r
    ideal = np.cumsum(disc)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            nh = cum_hits[:, k - 1]
            cap = np.minimum(n_pos, k).astype(np.int64)
            p = nh / k
            r = nh / n_pos
            out[f"P@{k}"] = p
            out[f"R@{k}"] = r
            out[f"F1@{k}"] = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)
            out[f"HR@{k}"] = (nh > 0).astype(np.float64)
            out[f"NDCG@{k}"] = cum_dcg[:, k - 1] / ideal[np.maximum(cap, 1) - 1]
            out[f"MAP@{k}"] = cum_ap[:, k - 1] / np.maximum(cap, 1)
    # Reorder to the canonical column order (metric names within each K).
    return {c: out[c] for c in metric_columns(ks)}


def ranking_metrics(topk: np.ndarray, truth: sp.csr_matrix, ks: list[int]) -> dict[str, np.ndarray]:
    """Per-user P, R, F1, HR, NDCG, MAP at every K (see the module docstring).

    Raises if any user has no positive: the protocol must drop such users first.
    """
    ks = check_ks(ks)
    t = binary_truth(truth, len(np.asarray(topk)))
    n_pos = np.diff(t.indptr).astype(np.float64)
    if (n_pos == 0).any():
        bad = np.flatnonzero(n_pos == 0)
        raise ValueError(
            f"{len(bad)} user(s) have no positive in truth (first rows {bad[:5].tolist()}); "
            "the protocol drops them before evaluation, so this is a caller bug"
        )
    return _metrics_from_hits(hit_matrix(topk, t), n_pos, ks)


def head_tail_masks(popularity: np.ndarray, head_share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Split the catalog into head (the ``ceil(head_share * n)`` most popular items) and tail.

    Popularity is the training-user count per catalog item (``TrainView.popularity``).
    Ties are broken by lower catalog index so the split is deterministic. A share of
    *items* (not of interactions) keeps the head the same size for every model and
    fold, which makes "gain on the tail" comparable across scenarios.
    """
    pop = np.asarray(popularity, dtype=np.float64).ravel()
    if not 0 < head_share < 1:
        raise ValueError(f"head_share must be in (0, 1), got {head_share}")
    if len(pop) == 0 or np.isnan(pop).any():
        raise ValueError("popularity must be a non-empty array without NaN")
    n_head = int(np.ceil(head_share * len(pop)))
    order = np.argsort(-pop, kind="stable")
    head = np.zeros(len(pop), dtype=bool)
    head[order[:n_head]] = True
    return head, ~head


def breakdown_metrics(topk: np.ndarray, truth: sp.csr_matrix, ks: list[int], item_mask: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
    """Recall and hit rate on the positives inside ``item_mask`` (e.g. the tail).

    The ranked list is the model's full list (not filtered to the mask): the question
    is whether the model surfaces the user's tail items at all. Users with no positive
    inside the mask get NaN. Names: ``<prefix>/R@k``, ``<prefix>/HR@k``.
    """
    ks = check_ks(ks)
    mask = np.asarray(item_mask, dtype=bool).ravel()
    t = binary_truth(truth, len(np.asarray(topk)))
    if len(mask) != t.shape[1]:
        raise ValueError(f"item_mask has {len(mask)} entries but the catalog has {t.shape[1]}")
    t = (t @ sp.diags(mask.astype(np.float32))).tocsr()
    t.eliminate_zeros()
    n_pos = np.diff(t.indptr).astype(np.float64)
    hits = hit_matrix(topk, t)
    kmax = max(ks)
    if hits.shape[1] < kmax:
        hits = np.concatenate([hits, np.zeros((len(hits), kmax - hits.shape[1]), dtype=bool)], axis=1)
    cum = np.cumsum(hits, axis=1)
    out = {}
    none = n_pos == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in ks:
            nh = cum[:, k - 1].astype(np.float64)
            out[f"{prefix}/R@{k}"] = np.where(none, np.nan, nh / np.where(none, 1, n_pos))
            out[f"{prefix}/HR@{k}"] = np.where(none, np.nan, (nh > 0).astype(np.float64))
    return out
