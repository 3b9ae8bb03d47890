"""CMF: collective matrix factorisation (Singh & Gordon, "Relational Learning via Collective Matrix Factorization", KDD 2008).

The paper factorises several relations that share an entity type with one factor
matrix for that type, minimising a weighted sum of the per-relation losses,
alpha * L_1 + (1 - alpha) * L_2. Here the shared entity is the user and the two
relations are the source matrix (every source domain of the scenario, side by side)
and the book matrix:

    source ~ U V_s^T,   target ~ U V_t^T (+ b_t),
    L = alpha * L_source + (1 - alpha) * L_target,

each L a BPR loss (recbole's ``BPRLoss``) with negatives from its own domain
(:func:`~benchmark.models.cdr.common.bpr_triples` per matrix) plus recbole's
``EmbLoss`` on the batch's factors. Implicit feedback is why BPR replaces the paper's
Bregman (squared / logistic) losses.

Why this is the paper's cold user and nothing more: the source rows of *every* user
enter L_source (a valid/test user's source history is their input), but the book rows
are ``Domains.fit_target()``, training users' fitting part only. A valid/test user's
row of U is therefore shaped by the source loss alone, exactly the row of a user
"with no observations in one relation" of the paper, and their book scores are
U_u . V_t (+ b_t). The hold-out users for early stopping are in the same position (their
book rows are withheld, their U comes from their source rows).

Why one step holds both domains: the paper's alternating Newton updates have no
epoch; here every epoch passes over each domain's triples once, split into the same
number of steps, so each optimiser step sees a source batch and a book batch and the
alpha weighting applies at every step. The losses are per-triple means, so alpha is a
relative weight independent of the domains' sizes (the paper's sums would let the
larger matrix dominate whatever alpha says).

Why alpha still matters under Adam: Adam rescales each row's gradient, so a row fed
by one loss only (V_s, V_t, a cold user's U) moves the same whatever alpha is; alpha
acts where the two losses meet, on the rows of U of training users with both
histories, i.e. on how much of their factor is explained by their source taste, which
is exactly what a cold user's factor can carry over.

Why a small initialisation (``init_std`` 0.01) and a sizeable ``reg``: the directions
of U that the source loss never constrains keep their initial values in a cold user's
row, while V_t learns to use them for training users; with N(0, 0.1^2) factors that
noise dominated U_u . V_t (measured on epinions fold 0: valid NDCG@10 0.025-0.030
against 0.041-0.047 at 0.01, Popularity 0.043).

Why the optional book bias b_t: the paper's factor models allow offset terms; a book
bias is what lets a user whose U carries no signal (no source item) get a learned,
popularity-like ranking rather than ties, without a silent Popularity fall-back.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, RowAdam, bpr_triples, domains, holdout_ndcg
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView


class CMF(Recommender):
    """Collective MF: source ~ U V_s^T and book ~ U V_t^T with a shared U, weighted by alpha."""

    @dataclasses.dataclass
    class Config:
        dim: int = 64  # rank of the shared factorisation
        lr: float = 5e-3  # Adam
        reg: float = 0.1  # EmbLoss weight on the factors of each batch, in both domain losses
        alpha: float = 0.5  # the paper's relative weight: alpha * L_source + (1 - alpha) * L_target
        target_bias: bool = True  # learn a per-book offset b_t
        init_std: float = 0.01  # factors start N(0, init_std^2)
        batch_size: int = 4096  # largest per-domain batch; both domains pass once per epoch in the same steps
        max_epochs: int = 40
        patience: int = 3  # hold-out checks without improvement before stopping
        holdout_share: float = 0.1  # training users withheld (treated as cold) for early stopping
        eval_k: int = 10
        sources: str = "all"  # every source domain of the scenario, or one domain name
        threads: int = 1  # torch intra-op threads during fit/score; 0 = leave as is

    def _check(self) -> None:
        c = self.config
        if not 0 < c.alpha < 1:
            raise ValueError(f"CMF alpha must be in (0, 1), got {c.alpha!r}")
        if int(c.dim) < 1 or int(c.batch_size) < 1 or int(c.max_epochs) < 1 or not c.lr > 0 or c.reg < 0:
            raise ValueError(f"CMF needs dim, batch_size, max_epochs >= 1, lr > 0, reg >= 0 (got {c})")

    def fit(self, view: TrainView) -> "CMF":
        from recbole.model.loss import BPRLoss, EmbLoss

        self._check()
        c, t0 = self.config, time.perf_counter()
        d = domains(view, c.sources, holdout_share=float(c.holdout_share), seed=self.seed)
        target = d.fit_target()
        # bpr_triples pairs positives with negatives in storage order: canonical (sorted) order
        # keeps the triples a function of the matrices' contents (fit_target can come out unsorted).
        target.sort_indices()
        d.source.sort_indices()
        src_rows = np.flatnonzero(d.has_source)  # every user's source history, valid/test included
        tgt_rows = np.flatnonzero(np.asarray(target.getnnz(axis=1)) > 0)
        self.source_rows_ = src_rows
        self.target_rows_ = tgt_rows  # users whose book rows entered the loss: fitting training users only
        self._trained = np.zeros(view.n_users, dtype=bool)
        self._trained[src_rows] = True
        self._trained[tgt_rows] = True
        self._n_catalog = view.n_catalog
        if len(tgt_rows) == 0:
            raise ValueError(f"CMF: no fitting training user with a book positive in {view.scenario} {view.seed}/{view.fold}")

        with torch_threads(int(c.threads)):
            gen = torch.Generator().manual_seed(int(self.seed))
            shapes = {"user": view.n_users, "source": max(d.source.shape[1], 1), "target": view.n_catalog}
            self.factors = {k: torch.randn(n, int(c.dim), generator=gen) * float(c.init_std) for k, n in shapes.items()}
            self.factors["bias"] = torch.zeros(view.n_catalog, 1)
            opt = RowAdam(self.factors, float(c.lr))
            bpr, emb = BPRLoss(), EmbLoss()
            rng = np.random.default_rng([self.seed, 71])
            hold_truth = d.target[d.holdout_rows]
            stop = EarlyStop(int(c.patience), enabled=len(d.holdout_rows) > 0)
            epoch_times, losses = [], []
            for epoch in range(int(c.max_epochs)):
                te = time.perf_counter()
                losses.append(self._epoch(d.source, src_rows, target, tgt_rows, rng, opt, bpr, emb))
                epoch_times.append(time.perf_counter() - te)
                if stop.update(epoch, lambda: holdout_ndcg(self._scores(d.holdout_rows), hold_truth, int(c.eval_k)),
                               self.factors):
                    break
            if stop.best_state is not None:
                self.factors = stop.best_state
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "epochs": len(epoch_times), "epoch_time_s": round(float(np.mean(epoch_times)), 4),
            "fit_time_s": round(time.perf_counter() - t0, 3), "mapping_users": int(len(tgt_rows)),
            "source_users": int(len(src_rows)), "holdout_users": int(len(d.holdout_rows)),
            "no_source_users": int((~d.has_source[cold]).sum()), "source_domains": d.source_names,
            "losses": losses,
        }
        return self

    def _epoch(self, source: sp.csr_matrix, src_rows: np.ndarray, target: sp.csr_matrix, tgt_rows: np.ndarray,
               rng: np.random.Generator, opt: RowAdam, bpr, emb) -> list[float | None]:
        """One pass over both domains' triples in the same number of steps; returns mean (L_source, L_target)."""
        c = self.config
        trip = [tuple(torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in bpr_triples(m, r, rng))
                if len(r) else None for m, r in ((source, src_rows), (target, tgt_rows))]
        sizes = [0 if t is None else len(t[0]) for t in trip]
        steps = max(1, -(-max(sizes) // int(c.batch_size)))
        per = [-(-n // steps) for n in sizes]
        weights = [float(c.alpha), 1.0 - float(c.alpha)]
        seen: list[list[float]] = [[], []]
        for s in range(steps):
            batch = [None if trip[k] is None or s * per[k] >= sizes[k] else
                     tuple(a[s * per[k]:(s + 1) * per[k]] for a in trip[k]) for k in (0, 1)]
            users = torch.cat([b[0] for b in batch if b is not None])
            u_rows, u_leaf, u_inv = opt.gather("user", users)
            leaves, loss, at = [("user", u_rows, u_leaf)], torch.zeros(()), 0
            for k, name in enumerate(("source", "target")):
                if batch[k] is None:
                    continue
                u, p, n = batch[k]
                eu = u_leaf.index_select(0, u_inv[at:at + len(u)])
                at += len(u)
                i_rows, i_leaf, i_inv = opt.gather(name, torch.cat([p, n]))
                leaves.append((name, i_rows, i_leaf))
                ep, en = i_leaf.index_select(0, i_inv[:len(p)]), i_leaf.index_select(0, i_inv[len(p):])
                pos, neg = (eu * ep).sum(1), (eu * en).sum(1)
                if k == 1 and c.target_bias:
                    b_leaf = self.factors["bias"].index_select(0, i_rows).requires_grad_(True)
                    leaves.append(("bias", i_rows, b_leaf))
                    b = b_leaf.index_select(0, i_inv)[:, 0]
                    pos, neg = pos + b[:len(p)], neg + b[len(p):]
                part = bpr(pos, neg)
                seen[k].append(float(part.detach()))
                loss = loss + weights[k] * (part + float(c.reg) * emb(eu, ep, en, require_pow=True).squeeze())
            loss.backward()
            opt.step(leaves)
        return [round(float(np.mean(v)), 4) if v else None for v in seen]

    def _scores(self, rows: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """U_u . V_t + b_t; a user no loss ever touched (no source item, no book row) reads a zero U."""
        f = self.factors
        out = np.empty((len(rows), self._n_catalog), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                r = rows[s:s + chunk]
                u = f["user"][torch.from_numpy(r)] * torch.from_numpy(self._trained[r].astype(np.float32))[:, None]
                out[s:s + len(r)] = (u @ f["target"].T + f["bias"].T).numpy()
        return out

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "factors"):
            raise RuntimeError("CMF.score called before fit")
        rows = checked_rows(user_rows, len(self._trained), "CMF")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows.astype(np.int64))
