"""Building blocks of the multi-task transfer model (:mod:`benchmark.models.mtl`).

Kept apart from the model class so that ``mtl.py`` reads as the model (data preparation,
training loop, scoring) and this module holds the pieces it is built from:

* sparse batching: binarising, the per-epoch masked split of source histories, and the
  ``EmbeddingBag`` inputs of a batch of users;
* the network: shared encoder, book tower, one auxiliary tower per auxiliary task;
* the losses: full-catalog softmax cross-entropy on sparse labels, and loss balancing
  (``fixed`` weights or Kendall et al. 2018 uncertainty weighting);
* the early-stopping metric (NDCG@k of score rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.common import ndcg_of_top

BALANCE_MODES = ("fixed", "uncertainty")


# ---- sparse batching -------------------------------------------------------------------
@dataclass
class Batch:
    """Rows of one optimisation step: the target task and the auxiliary tasks see different users."""

    target_rows: np.ndarray  # training users (fit part) only
    aux_rows: dict[str, np.ndarray]  # per auxiliary domain: any user with a held-out source item this epoch


def binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


def mask_split(m: sp.csr_matrix, share: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each row's entries into (input, held-out): ~``share`` held out, at least one kept.

    Rows with fewer than two entries hold nothing out (nothing would be left to predict
    from). Vectorised: one random key per entry, ranked within its row.
    """
    m = sp.csr_matrix(m)
    nnz_row = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), nnz_row)
    order = np.lexsort((rng.random(m.nnz), rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - m.indptr[rows[order]]
    n_out = np.where(nnz_row >= 2, np.clip(np.rint(share * nnz_row), 1, nnz_row - 1), 0).astype(np.int64)
    out = rank < n_out[rows]
    # Copies of indices/indptr: eliminate_zeros works in place and must not touch the other.
    keep = sp.csr_matrix((np.where(out, 0, m.data), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    held = sp.csr_matrix((out.astype(np.float32), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    keep.eliminate_zeros()
    held.eliminate_zeros()
    return keep, held


def bag(m: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs of ``rows``: a weighted mean (weights sum to 1) and a has-history flag."""
    sub = m[rows]
    sums = np.asarray(sub.sum(axis=1)).ravel()
    lens = np.diff(sub.indptr)
    w = sub.data / np.repeat(np.where(sums > 0, sums, 1.0), lens)
    flag = torch.from_numpy((lens > 0).astype(np.float32))[:, None]
    return (torch.from_numpy(sub.indices.astype(np.int64)), torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
            torch.from_numpy(w.astype(np.float32)), flag)


# ---- the network -----------------------------------------------------------------------
def _log_prior(counts: np.ndarray) -> torch.Tensor:
    b = np.log1p(counts.astype(np.float64))
    return torch.from_numpy((b - b.mean()).astype(np.float32))


class MTLNet(nn.Module):
    """Shared encoder, one target tower and one auxiliary tower per entry of ``aux_init`` (none: no aux task)."""

    def __init__(self, source_init: list[np.ndarray], aux_init: list[np.ndarray], aux_prior: list[np.ndarray],
                 target_init: np.ndarray, target_prior: np.ndarray, dim: int, hidden: int, dropout: float,
                 train_source_emb: bool, n_losses: int):
        super().__init__()
        self.bags = nn.ModuleList()
        self.proj = nn.ModuleList()
        for e in source_init:
            b = nn.EmbeddingBag(e.shape[0], e.shape[1], mode="sum")
            b.weight.data.copy_(torch.from_numpy(e))
            b.weight.requires_grad_(train_source_emb)
            self.bags.append(b)
            self.proj.append(nn.Linear(e.shape[1], dim))
        n_d = len(source_init)
        self.shared = nn.Sequential(nn.Linear(n_d * (dim + 1), hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)

        def tower() -> nn.Module:
            return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))

        self.target_tower = tower()
        self.target_items = nn.Parameter(torch.from_numpy(target_init))
        self.target_bias = nn.Parameter(_log_prior(target_prior))
        self.aux_towers = nn.ModuleList([tower() for _ in aux_init])
        self.aux_items = nn.ParameterList([nn.Parameter(torch.from_numpy(a)) for a in aux_init])
        self.aux_bias = nn.ParameterList([nn.Parameter(_log_prior(p)) for p in aux_prior])
        self.log_vars = nn.Parameter(torch.zeros(n_losses))  # used only by balance="uncertainty"
        # 1/sqrt(dim): the LayerNormed q has norm ~sqrt(dim) and item rows start unit-norm, so
        # the dot-product term starts in [-1, 1] and the log-popularity bias leads at init.
        self.scale = float(dim) ** -0.5

    def encode(self, bags: list[tuple]) -> torch.Tensor:
        parts = []
        for b, proj, (idx, off, w, flag) in zip(self.bags, self.proj, bags):
            parts += [proj(b(idx, off, per_sample_weights=w)) * flag, flag]
        return self.norm(self.shared(torch.cat(parts, dim=1)))

    def target_logits(self, h: torch.Tensor) -> torch.Tensor:
        q = h + self.target_tower(h)
        return (q @ self.target_items.T) * self.scale + self.target_bias

    def aux_logits(self, k: int, h: torch.Tensor) -> torch.Tensor:
        q = h + self.aux_towers[k](h)
        return (q @ self.aux_items[k].T) * self.scale + self.aux_bias[k]


# ---- losses and balancing ----------------------------------------------------------------
def _coo(m: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return torch.from_numpy(rows), torch.from_numpy(m.indices.astype(np.int64))


def softmax_ce(logits: torch.Tensor, labels: sp.csr_matrix, exclude: sp.csr_matrix | None = None) -> torch.Tensor:
    """Multinomial cross-entropy: mean over labelled rows of -sum_j y_j log softmax(z)_j / sum_j y_j.

    Labels and exclusions stay sparse (gathered by index): dense batch x catalog label
    matrices cost more than the logits themselves on 40k-item catalogs. Excluded logits
    get a large finite value, not -inf, so nothing turns into NaN.
    """
    if exclude is not None and exclude.nnz:
        logits = logits.index_put(_coo(exclude), torch.tensor(-1e9))
    r, c = _coo(labels)
    nll = torch.logsumexp(logits, dim=1)[r] - logits[r, c]
    n = torch.from_numpy(np.diff(labels.indptr).astype(np.float32))
    per_row = torch.zeros(logits.shape[0]).index_add(0, r, nll)
    has = n > 0
    return (per_row[has] / n[has]).mean()


def combine_losses(losses: list[torch.Tensor | None], prior: list[float], balance: str,
                   log_vars: torch.Tensor) -> torch.Tensor:
    """The optimised total of the task losses present in a step (None: task idle in this batch).

    ``fixed``: sum of prior_k * L_k. ``uncertainty`` (Kendall et al. 2018, classification
    form): sum of prior_k * (exp(-s_k) L_k + s_k / 2) with learnable log-variances s_k; the
    prior weights stay multipliers, so a zero weight still switches a task off.
    """
    total = torch.zeros(())
    for k, loss in enumerate(losses):
        if loss is None:
            continue
        if balance == "uncertainty":
            s = log_vars[k]
            total = total + prior[k] * (torch.exp(-s) * loss + 0.5 * s)
        else:
            total = total + prior[k] * loss
    return total


def ndcg_at(scores: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k of score rows against binary truth rows (early-stopping signal only)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # top-k without a full sort of the catalog
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable"), axis=1)
    return ndcg_of_top(top, truth)
