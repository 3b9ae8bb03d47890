"""PTUPCDR (Zhu et al., "Personalized Transfer of User Preferences for Cross-domain Recommendation", WSDM 2022).

EMCDR-style models map every user through one shared bridge; PTUPCDR argues that users
transfer differently, so a meta network writes a *personalised* bridge from what the user
did in the source domain:

1. **Pretraining.** Per-domain BPR-MF (:func:`~benchmark.models.cdr.common.train_bpr_mf`).
   Source: every user with a source history, cold valid/test users included: the paper
   scores a cold user from their source embedding, so it must exist; this is source data
   only (allowed by the protocol). Target: ``fit_rows`` only.
2. **Characteristic encoder.** Attention over the source-item embeddings of the user's
   history (capped at ``hist_len`` items, highest values first: the "positive" items of
   rated sources; no timestamps reach the view): a small MLP scores each item, softmax over
   the user's items, weighted sum p_u.
3. **Meta network.** MLP p_u -> dim*dim, reshaped to the bridge W_u; u_t = u_s @ W_u
   (``affine=True``, not the paper: u_t = [u_s, 1] @ W_u, see :class:`MetaNet`). Strong
   L2 (``weight_decay``): measured, the unregularised bridges overfit the ~1-2k mapping
   users within an epoch or two and fall below even one shared bridge.
4. **Task-oriented loss** on the target positives of ``overlap_rows`` only, with the
   pretrained embeddings frozen: the transferred vector must rank the user's target items.
   The paper regresses explicit ratings (MSE); the target here is implicit, so the default
   is BPR with own-domain target negatives (``loss="bpr"``); ``loss="mse"`` is the paper's
   loss on implicit labels (1 for a positive, 0 for its sampled negative).
5. **Epoch selection** on ``holdout_rows`` (training users treated as cold), not on test
   users as the reference code does.

Option ``item_bias`` (not the paper; as in the zoo's EMCDR): the target MF also learns an
item bias b, kept frozen, and scores are u_t . v + b.

A cold user's scores are u_t . V_t. A user with no source item has u_s = 0 and hence
u_t = 0 (affine: the learned constant row): constant scores (item_bias: b), counted in
``fit_info["no_source_users"]``; no Popularity fallback.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, bpr_triples, domains, holdout_ndcg, padded_history, train_bpr_mf
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView

LOSSES = ("bpr", "mse")


def _mf(matrix: sp.csr_matrix, rows: np.ndarray, min_steps: int,
        **kw) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``train_bpr_mf`` on the sub-matrix of ``rows``: (user factors of ``rows``, item factors, item bias, epochs).

    Why the sub-matrix: its dense Adam updates every user row each step, so rows without
    history in this domain only cost time; the triples are the same. Why ``min_steps``: an
    epoch is one pass over the positives, so a small fold (the test fixtures: one batch)
    would get a handful of optimiser steps; it gets at least ``min_steps``. The bias is
    zeros unless ``item_bias``.
    """
    sub = matrix[rows]
    per_epoch = max(1, -(-sub.nnz // int(kw["batch_size"])))
    kw["epochs"] = max(int(kw["epochs"]), -(-int(min_steps) // per_epoch))
    out = train_bpr_mf(sub, np.arange(len(rows)), **kw)
    bias = out[2] if kw.get("item_bias") else np.zeros(matrix.shape[1], dtype=np.float32)
    return out[0], out[1], bias, kw["epochs"]


class MetaNet(nn.Module):
    """Characteristic encoder (attention over history items) and meta network (p_u -> W_u).

    ``affine`` (not the paper) gives W_u one more row, multiplied by a constant 1 appended
    to u_s: u_t = [u_s, 1] W_u. Why offered: the paper's u_t is linear in u_s, so no
    bridge can give every user the shared "popular" direction of the target space; the
    extra row can (and is what a user without source items then gets).
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, affine: bool = False):
        from recbole.model.layers import MLPLayers

        super().__init__()
        self.dim, self.rows = dim, dim + int(affine)
        self.attn = MLPLayers([dim, dim, 1], activation="relu", last_activation=False)
        self.meta = MLPLayers([dim, hidden, self.rows * dim], dropout=dropout, activation="relu", last_activation=False)

    def bridge(self, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """W_u (B x rows x dim) from the history embeddings (B x L x dim) and their mask."""
        logits = self.attn(hist).squeeze(-1).masked_fill(~mask, -1e9)  # finite: empty rows stay finite
        p = (torch.softmax(logits, dim=1).unsqueeze(-1) * hist).sum(1)
        return self.meta(p).view(-1, self.rows, self.dim)

    def forward(self, u_s: torch.Tensor, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.rows > self.dim:
            u_s = torch.cat([u_s, torch.ones(len(u_s), 1)], dim=1)
        return torch.bmm(u_s.unsqueeze(1), self.bridge(hist, mask)).squeeze(1)


class PTUPCDR(Recommender):
    """Meta-learned personalised bridges from source to target MF spaces."""

    @dataclasses.dataclass
    class Config:
        sources: str = "all"  # source domains read: "all" (concatenated) or one domain name
        dim: int = 16  # MF width in both domains (the paper: 10)
        meta_hidden: int = 64  # meta-network hidden width (the paper: 50)
        hist_len: int = 50  # source items per user the attention reads (highest values first)
        lr: float = 1e-3  # meta network (Adam)
        weight_decay: float = 0.3  # Adam L2 on the meta network: without it the bridges overfit within 1-2 epochs
        dropout: float = 0.0  # before each meta-network layer
        affine: bool = False  # u_t = [u_s, 1] W_u instead of the paper's u_s W_u (see MetaNet)
        loss: str = "bpr"  # "bpr" or "mse" (the paper's loss on implicit labels)
        batch_size: int = 512  # target (user, pos, neg) triples per step, at most
        min_batches: int = 10  # small folds: smaller batches, at least this many steps per epoch
        max_epochs: int = 40
        patience: int = 4
        mf_epochs: int = 20  # BPR-MF pretraining epochs, each domain
        mf_lr: float = 0.01
        mf_reg: float = 1e-4
        mf_batch_size: int = 2048
        item_bias: bool = False  # target MF learns an item bias b (not the paper): score = u_t . v + b
        sparse: bool = False  # sparse embedding gradients + SparseAdam in the MFs (faster, another optimiser)
        mf_min_steps: int = 300  # small folds: more epochs, at least this many optimiser steps per domain
        holdout_share: float = 0.1
        eval_k: int = 10
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        if c.loss not in LOSSES:
            raise ValueError(f"PTUPCDR loss must be one of {LOSSES}, got {c.loss!r}")
        for name in ("dim", "meta_hidden", "hist_len", "batch_size", "max_epochs", "patience", "mf_epochs"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"PTUPCDR {name} must be >= 1, got {getattr(c, name)!r}")
        if not (c.lr > 0 and c.mf_lr > 0):
            raise ValueError(f"PTUPCDR needs lr > 0 and mf_lr > 0 (got {c.lr}, {c.mf_lr})")

    def _user_vectors(self, rows: np.ndarray) -> torch.Tensor:
        """Transferred target vectors u_t of ``rows``."""
        r = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        h = self.hist_[r]
        return self.net(self.u_src_[r], self.v_src_[h], self.mask_[r])

    def _scores(self, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
        self.net.eval()
        out = np.empty((len(rows), self.v_tgt_.shape[0]), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                out[s:s + chunk] = (self._user_vectors(rows[s:s + chunk]) @ self.v_tgt_.T + self.b_tgt_).numpy()
        return out

    def fit(self, view: TrainView) -> "PTUPCDR":
        self._check()
        c, t0, cpu0 = self.config, time.perf_counter(), time.process_time()
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            D = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
            if D.source.shape[1] == 0:
                raise ValueError(f"PTUPCDR needs a source domain; scenario {view.scenario!r} has none")
            dim = int(c.dim)
            src_rows = np.flatnonzero(D.has_source)
            mf = dict(dim=dim, epochs=int(c.mf_epochs), lr=float(c.mf_lr), reg=float(c.mf_reg),
                      batch_size=int(c.mf_batch_size), min_steps=int(c.mf_min_steps), sparse=bool(c.sparse))
            u_s = np.zeros((view.n_users, dim), np.float32)
            u_s[src_rows], v_s, _, ep_s = _mf(D.source, src_rows, seed=self.seed, **mf)
            tgt_rows = D.fit_rows[np.asarray(D.target[D.fit_rows].getnnz(axis=1)) > 0]
            _, v_t, b_t, ep_t = _mf(D.target, tgt_rows, seed=self.seed + 1, item_bias=bool(c.item_bias), **mf)
            t_pre, cpu_pre = time.perf_counter() - t0, time.process_time() - cpu0
            raw = sp.hstack([sp.csr_matrix(view.source[d], dtype=np.float32) for d in D.source_names], format="csr")
            hist, mask = padded_history(raw, int(c.hist_len))
            self.hist_, self.mask_ = torch.from_numpy(hist), torch.from_numpy(mask)
            self.u_src_ = torch.from_numpy(u_s)
            self.v_src_ = torch.from_numpy(np.vstack([v_s, np.zeros((1, dim), np.float32)]))  # + padding row
            self.v_tgt_, self.b_tgt_ = torch.from_numpy(v_t), torch.from_numpy(b_t)
            self.net = MetaNet(dim, int(c.meta_hidden), float(c.dropout), bool(c.affine))
            self.mapping_rows_ = np.asarray(D.overlap_rows)
            self.target_rows_ = tgt_rows
            self.source_rows_ = src_rows

            from recbole.model.loss import BPRLoss

            bpr = BPRLoss()
            opt = torch.optim.Adam(self.net.parameters(), lr=float(c.lr), weight_decay=float(c.weight_decay))
            stop = EarlyStop(int(c.patience), enabled=len(D.holdout_rows) > 0)
            hold_truth = D.target[D.holdout_rows]
            rng = np.random.default_rng([self.seed, 71])
            losses = []
            for epoch in range(int(c.max_epochs)):
                self.net.train()
                u, p, n = bpr_triples(D.target, self.mapping_rows_, rng)
                total, bs = 0.0, max(1, min(int(c.batch_size), -(-len(u) // int(c.min_batches))))
                for s in range(0, len(u), bs):
                    bu, inv = np.unique(u[s:s + bs], return_inverse=True)
                    ut = self._user_vectors(bu)[torch.from_numpy(inv.ravel())]
                    bp, bn = torch.from_numpy(p[s:s + len(inv)]), torch.from_numpy(n[s:s + len(inv)])
                    s_pos = (ut * self.v_tgt_[bp]).sum(1) + self.b_tgt_[bp]
                    s_neg = (ut * self.v_tgt_[bn]).sum(1) + self.b_tgt_[bn]
                    loss = bpr(s_pos, s_neg) if c.loss == "bpr" else ((s_pos - 1).pow(2) + s_neg.pow(2)).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(inv)
                losses.append(round(total / max(len(u), 1), 5))
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(D.holdout_rows), hold_truth, int(c.eval_k)),
                               self.net.state_dict()):
                    break
            if stop.best_state is not None:
                self.net.load_state_dict(stop.best_state)
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": len(losses), "loss_curve": losses,
            "fit_time_s": round(time.perf_counter() - t0, 3), "fit_cpu_s": round(time.process_time() - cpu0, 3),
            "pretrain_time_s": round(t_pre, 3), "pretrain_cpu_s": round(cpu_pre, 3),
            "mf_epochs": {"source": ep_s, "target": ep_t}, "mapping_users": int(len(self.mapping_rows_)),
            "target_users": int(len(self.target_rows_)), "source_mf_users": int(len(src_rows)),
            "holdout_users": int(len(D.holdout_rows)), "no_source_users": int((~D.has_source[cold]).sum()),
            "sources": list(D.source_names), "loss": c.loss, "affine": bool(c.affine), "item_bias": bool(c.item_bias),
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("PTUPCDR.score called before fit")
        rows = checked_rows(user_rows, self.hist_.shape[0], "PTUPCDR")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows)
