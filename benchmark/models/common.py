"""Small pieces several models share: sparse top-n, torch thread control, early-stopping NDCG.

Models may not import the evaluator (STYLE item 5: a model never holds one), yet the
neural models stop early on a held-out share of their *training* users. The NDCG they
use for that is here, computed from top-k indices the model selects itself; the
benchmark's metrics stay in :mod:`benchmark.evaluation.metrics`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp


def top_n_per_row(matrix: sp.csr_matrix, n: int | None) -> sp.csr_matrix:
    """Keep each row's ``n`` largest values (ties: lower column first); ``None`` keeps all.

    Vectorised with one lexsort, so it scales to large user counts.
    """
    m = sp.csr_matrix(matrix, copy=True)
    m.eliminate_zeros()
    if n is None or m.nnz == 0:
        return m
    if n < 1:
        raise ValueError(f"top_n must be >= 1 or None, got {n}")
    coo = m.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))
    rows = coo.row[order]
    starts = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - starts
    keep = order[rank < n]
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` torch intra-op threads (None or 0: unchanged), then restore.

    Why: the batches here are small, so intra-op threads buy little, while on a
    shared 2-core machine OpenMP spin-waiting under load made epochs ~10x slower
    (measured: 2.7 s vs 0.2-0.36 s per epoch on the test fixture). One thread is
    also what a Ray Tune trial with one CPU gets.
    """
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def ndcg_of_top(top: np.ndarray, truth: sp.csr_matrix) -> float:
    """Mean binary NDCG of ranked index rows ``top`` (best first) against truth rows."""
    k = top.shape[1]
    rel = np.take_along_axis(truth.toarray() > 0, top, axis=1)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (rel * disc).sum(axis=1)
    n_pos = np.minimum(np.asarray(truth.getnnz(axis=1)), k)
    idcg = np.cumsum(disc)[np.maximum(n_pos - 1, 0)] * (n_pos > 0)
    return float(np.mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)))


def holdout_ndcg(scores: np.ndarray, truth: sp.csr_matrix, k: int = 10) -> float:
    """NDCG@k of score rows against binary truth rows (the early-stopping signal, never a reported metric)."""
    import torch

    k = min(int(k), scores.shape[1])
    top = torch.topk(torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)), k, dim=1).indices.numpy()
    return ndcg_of_top(top, truth)


def checked_rows(user_rows, n_users: int, model: str) -> np.ndarray:
    """``user_rows`` as int64 row indices, or a one-line error naming ``model`` (bad shape, type or range)."""
    rows = np.asarray(user_rows)
    if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
        raise ValueError(f"{model}: user_rows must be a 1-d array of integer row indices, got shape {rows.shape} dtype {rows.dtype}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n_users):
        raise ValueError(f"{model}: user_rows out of range [0, {n_users}): min {rows.min()}, max {rows.max()}")
    return rows.astype(np.int64)
