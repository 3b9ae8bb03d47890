"""NATR (Gao et al., "Cross-domain Recommendation Without Sharing User-relevant Data", WWW 2019).

The paper's setting: two platforms share items but may not share user data, so only
*item embeddings* cross from the source platform. NATR (Neural Attentive Transfer
Recommendation) represents a target-domain user by attentive aggregation of the
transferred embeddings of the items they interacted with (item-level attention), merges
that with the user's own target-domain representation (domain-level attention), and a
predictor scores target items. Its user side therefore needs target history.

Adaptation for a user with no target history (DESIGN 6b, dual-target family): the
history the attention reads is the user's *source* history, and the transferred item
embeddings are those of the source items:

1. **Transferred item embeddings.** BPR-MF per source domain
   (:func:`~benchmark.models.cdr.common.train_bpr_mf`) on every user with a history in
   that domain, cold valid/test users included (source data only; DESIGN 4 allows source
   item towers on all source data). Frozen afterwards, as the paper's transferred table.
2. **Item-level attention,** per source domain: an MLP scores each of the user's capped
   history items (``padded_history``, highest values first), softmax over the user's
   items, weighted sum, then a bias-free linear transfer layer per domain into one
   shared space (bias-free: an empty domain stays 0).
3. **Domain-level attention** over the source domains the user has (one source domain:
   weight 1). The paper's target-domain branch (a free user embedding learned from target
   rows) is dropped: for a cold user it would be an untrained vector.
4. **Predictor:** an MLP maps the merged representation to u, and s(u, j) = u . q_j + b_j
   with learned target item embeddings q and item bias b. The bias starts at
   ``log_count_bias`` of the fitting rows (not the paper; CLFM's measurement showed a
   zero start ranks cold users below Popularity for several epochs).

Training: BPR (recbole's ``BPRLoss``) on target triples of ``overlap_rows`` only
(``bpr_triples`` on ``Domains.fit_target()``: own-domain negatives), recbole's
``EmbLoss`` on the batch's q rows; best epoch on NDCG@10 of ``holdout_rows`` scored as
cold. A user with no source item gets u = MLP(0): one learned ranking shared by all such
users (counted in ``fit_info["no_source_users"]``), never a Popularity fall-back.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import (EarlyStop, bpr_triples, domains, holdout_ndcg, log_count_bias,
                                         padded_history, train_bpr_mf)
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView


def source_item_factors(matrix: sp.csr_matrix, rows: np.ndarray, dim: int, epochs: int, lr: float, reg: float,
                        batch_size: int, min_steps: int, sparse: bool, seed: int) -> tuple[np.ndarray, int]:
    """Frozen item factors of one source domain: ``train_bpr_mf`` on the sub-matrix of ``rows``; (factors, epochs).

    Why the sub-matrix: users without a history in this domain would only cost time.
    Why ``min_steps``: a small fold (the test fixtures: one batch an epoch) would otherwise
    get a handful of optimiser steps and near-random item factors.
    """
    sub = matrix[rows]
    per_epoch = max(1, -(-sub.nnz // int(batch_size)))
    epochs = max(int(epochs), -(-int(min_steps) // per_epoch))
    _, items = train_bpr_mf(sub, np.arange(len(rows)), dim=dim, epochs=epochs, lr=lr, reg=reg,
                            batch_size=batch_size, seed=seed, sparse=sparse)
    return items, epochs


class NATRNet(nn.Module):
    """Item-level attention per source domain, domain-level attention, predictor MLP, target items."""

    def __init__(self, n_domains: int, n_catalog: int, dim: int, attn_dim: int, hidden: int, gen: torch.Generator):
        from recbole.model.layers import MLPLayers

        super().__init__()
        self.item_attn = nn.ModuleList([MLPLayers([dim, attn_dim, 1], activation="relu", last_activation=False)
                                        for _ in range(n_domains)])
        self.transfer = nn.ModuleList([nn.Linear(dim, dim, bias=False) for _ in range(n_domains)])
        self.domain_attn = MLPLayers([dim, attn_dim, 1], activation="tanh", last_activation=False)
        self.predict = MLPLayers([dim, hidden, dim], activation="relu", last_activation=False)
        self.items = nn.Embedding(n_catalog, dim)
        nn.init.normal_(self.items.weight, std=0.1, generator=gen)
        self.bias = nn.Parameter(torch.zeros(n_catalog))

    def item_level(self, d: int, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention-weighted sum of one domain's history embeddings (B x L x dim) -> B x dim; empty rows give 0."""
        logits = self.item_attn[d](hist).squeeze(-1).masked_fill(~mask, -1e9)  # finite: empty rows stay finite
        w = torch.softmax(logits, dim=1) * mask  # an empty row: all weights 0
        return self.transfer[d]((w.unsqueeze(-1) * hist).sum(1))

    def user(self, hists: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, domain weights B x D): item level per domain, domain level over the domains the user has."""
        reps = torch.stack([self.item_level(d, h, m) for d, (h, m) in enumerate(zip(hists, masks))], dim=1)
        has = torch.stack([m.any(1) for m in masks], dim=1)
        logits = self.domain_attn(reps).squeeze(-1).masked_fill(~has, -1e9)
        w = torch.softmax(logits, dim=1) * has
        return self.predict((w.unsqueeze(-1) * reps).sum(1)), w

    def scores(self, u: torch.Tensor) -> torch.Tensor:
        return u @ self.items.weight.T + self.bias


class NATR(Recommender):
    """Attentive aggregation of transferred source-item embeddings, adapted to cold users."""

    @dataclasses.dataclass
    class Config:
        sources: str = "all"  # "all" (one attention per source domain, then domain level) or one domain name
        dim: int = 32  # transferred item embeddings, user vector and target item embeddings
        attn_dim: int = 32  # hidden width of the attention MLPs
        hidden: int = 64  # hidden width of the predictor MLP
        hist_len: int = 50  # source items per user and domain the attention reads (highest values first)
        lr: float = 1e-3  # Adam on the network and the target item table
        reg: float = 1e-4  # EmbLoss weight on the batch's target item embeddings
        weight_decay: float = 1e-4  # Adam L2 on the attention, transfer and predictor layers
        item_bias: bool = True  # learned target item bias b_j (not the paper)
        bias_init: bool = True  # b starts at centred log(1 + count) of the fitting rows (not the paper)
        batch_size: int = 1024  # target (user, pos, neg) triples per step, at most
        min_batches: int = 10  # small folds: smaller batches, at least this many steps per epoch
        max_epochs: int = 30
        patience: int = 3
        mf_epochs: int = 20  # BPR-MF epochs per source domain (the transferred embeddings)
        mf_lr: float = 0.01
        mf_reg: float = 1e-4
        mf_batch_size: int = 2048
        mf_min_steps: int = 300  # small folds: at least this many optimiser steps per source domain
        mf_sparse_above: int = 10000  # SparseAdam for source domains with more items (see _check)
        holdout_share: float = 0.1
        eval_k: int = 10
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        for name in ("dim", "attn_dim", "hidden", "hist_len", "batch_size", "min_batches", "max_epochs", "patience",
                     "mf_epochs", "mf_batch_size", "eval_k"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"NATR {name} must be >= 1, got {getattr(c, name)!r}")
        if not (c.lr > 0 and c.mf_lr > 0) or min(c.reg, c.weight_decay, c.mf_reg) < 0:
            raise ValueError(f"NATR needs lr, mf_lr > 0 and reg, weight_decay, mf_reg >= 0 "
                             f"(got {c.lr}, {c.mf_lr}, {c.reg}, {c.weight_decay}, {c.mf_reg})")
        if not 0 < c.holdout_share < 1:
            raise ValueError(f"NATR holdout_share must be in (0, 1), got {c.holdout_share}")

    def _users(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        r = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        hists = [emb[h[r]] for emb, h in zip(self.src_emb_, self.hist_)]
        return self.net.user(hists, [m[r] for m in self.mask_])

    def _scores(self, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
        self.net.eval()
        out = np.empty((len(rows), self.net.items.num_embeddings), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                out[s:s + chunk] = self.net.scores(self._users(rows[s:s + chunk])[0]).numpy()
        return out

    def fit(self, view: TrainView) -> "NATR":
        from recbole.model.loss import BPRLoss, EmbLoss

        self._check()
        c, t0, cpu0 = self.config, time.perf_counter(), time.process_time()
        if view.n_catalog == 0:
            raise ValueError("NATR: empty target catalog")
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(int(self.seed))
            D = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
            if not D.source_names:
                raise ValueError(f"NATR needs a source domain; scenario {view.scenario!r} has none")
            dim = int(c.dim)
            self.src_emb_, self.hist_, self.mask_, mf_epochs, src_rows = [], [], [], {}, []
            for k, d in enumerate(D.source_names):
                m = D.source[:, D.source_offsets[d]:D.source_offsets[d] + view.source[d].shape[1]].tocsr()
                rows = np.flatnonzero(np.asarray(m.getnnz(axis=1)) > 0)
                src_rows.append(rows)
                items, mf_epochs[d] = source_item_factors(
                    m, rows, dim, int(c.mf_epochs), float(c.mf_lr), float(c.mf_reg), int(c.mf_batch_size),
                    int(c.mf_min_steps), m.shape[1] > int(c.mf_sparse_above), seed=self.seed + 17 * k)
                self.src_emb_.append(torch.from_numpy(np.vstack([items, np.zeros((1, dim), np.float32)])))  # + pad row
                hist, mask = padded_history(sp.csr_matrix(view.source[d], dtype=np.float32), int(c.hist_len))
                self.hist_.append(torch.from_numpy(hist))
                self.mask_.append(torch.from_numpy(mask))
            t_pre = time.perf_counter() - t0
            target = D.fit_target()
            self.net = NATRNet(len(D.source_names), view.n_catalog, dim, int(c.attn_dim), int(c.hidden), gen)
            if c.item_bias and c.bias_init:
                with torch.no_grad():
                    self.net.bias.copy_(torch.from_numpy(log_count_bias(target)))
            self.net.bias.requires_grad_(bool(c.item_bias))
            self.target_rows_ = np.asarray(D.overlap_rows)
            self.source_rows_ = np.unique(np.concatenate(src_rows))
            if len(self.target_rows_) == 0:
                raise ValueError(f"NATR: no training user with both histories in fold {view.seed}/{view.fold}")

            layers = [p for n, p in self.net.named_parameters() if not n.startswith(("items", "bias"))]
            opt = torch.optim.Adam([{"params": layers, "weight_decay": float(c.weight_decay)},
                                    {"params": [self.net.items.weight, self.net.bias], "weight_decay": 0.0}],
                                   lr=float(c.lr))
            bpr, emb = BPRLoss(), EmbLoss()
            hold, stop = D.holdout_rows, EarlyStop(int(c.patience), enabled=len(D.holdout_rows) > 0)
            hold_truth = D.target[hold]
            rng = np.random.default_rng([self.seed, 73])
            losses = []
            for epoch in range(int(c.max_epochs)):
                self.net.train()
                u, p, n = bpr_triples(target, self.target_rows_, rng)
                total, bs = 0.0, max(1, min(int(c.batch_size), -(-len(u) // int(c.min_batches))))
                for s in range(0, len(u), bs):
                    bu, inv = np.unique(u[s:s + bs], return_inverse=True)
                    uv = self._users(bu)[0][torch.from_numpy(inv.ravel())]
                    bp, bn = torch.from_numpy(p[s:s + bs]), torch.from_numpy(n[s:s + bs])
                    qp, qn = self.net.items(bp), self.net.items(bn)
                    s_pos = (uv * qp).sum(1) + self.net.bias[bp]
                    s_neg = (uv * qn).sum(1) + self.net.bias[bn]
                    loss = bpr(s_pos, s_neg) + float(c.reg) * emb(qp, qn, require_pow=True).squeeze()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(bp)
                losses.append(round(total / max(len(u), 1), 5))
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(hold), hold_truth, int(c.eval_k)),
                               self.net.state_dict()):
                    break
            if stop.best_state is not None:
                self.net.load_state_dict(stop.best_state)
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": len(losses), "loss_curve": losses,
            "fit_time_s": round(time.perf_counter() - t0, 3), "fit_cpu_s": round(time.process_time() - cpu0, 3),
            "pretrain_time_s": round(t_pre, 3),
            "mf_epochs": mf_epochs, "mapping_users": int(len(self.target_rows_)),
            "source_mf_users": int(len(self.source_rows_)), "holdout_users": int(len(hold)),
            "no_source_users": int((~D.has_source[cold]).sum()), "source_domains": list(D.source_names),
            "item_bias": bool(c.item_bias),
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("NATR.score called before fit")
        rows = checked_rows(user_rows, self.hist_[0].shape[0], "NATR")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows)
