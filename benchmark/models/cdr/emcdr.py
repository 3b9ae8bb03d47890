"""EMCDR: embedding and mapping for cross-domain recommendation (Man et al., IJCAI 2017).

The paper's three steps, on this benchmark's cold-start protocol:

1. **Latent factor modelling**, one matrix factorisation per domain (the paper's
   MF/BPR option, here BPR through :func:`~benchmark.models.cdr.common.train_bpr_mf`).
   Each *source* domain is factorised on every user with a history in it, cold
   valid/test users included: their source history is their input, and the paper
   obtains a cold user's source factor exactly this way (the cold user is an ordinary
   user of the source domain). One MF per source domain, not one over the concatenated
   sources, so a negative is always an item of the positive's own domain; a user's
   source factor is the concatenation of their per-domain factors (zeros for a domain
   they never used). The *target* MF sees ``Domains.fit_rows`` only.
2. **Mapping** f: source factor -> target factor, ``linear`` or ``mlp`` (one tanh
   hidden layer of ``hidden_mult * dim`` units, the paper's two options), fitted with
   MSE on ``Domains.overlap_rows`` only (the "entities with sufficient data" of the
   paper: training users with both a source and a target history).
3. **Cold-start inference**: a cold user's book scores are f(source factor) . target
   item factors, nothing else (no popularity term, no fall-back).

Early stopping of the mapping uses what the benchmark measures, not the MSE: the
hold-out users' (``Domains.holdout_rows``) mapped vectors are scored over the catalog
and compared with their withheld book positives (``holdout_ndcg``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, domains, holdout_ndcg, train_bpr_mf
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView

MAPPINGS = ("mlp", "linear")


def build_mapping(kind: str, n_in: int, dim: int, hidden: int) -> nn.Module:
    """The paper's two mapping functions: a linear map, or an MLP with one tanh hidden layer.

    The MLP's output layer is linear: BPR factors are unbounded, a squashing output
    could not reach them.
    """
    if kind == "linear":
        return nn.Linear(n_in, dim)
    from recbole.model.layers import MLPLayers

    return nn.Sequential(MLPLayers([n_in, hidden], activation="tanh"), nn.Linear(hidden, dim))


class EMCDR(Recommender):
    """Per-domain BPR-MF, a source->target user-factor mapping on overlapping training users."""

    @dataclasses.dataclass
    class Config:
        sources: str = "all"  # every source domain of the scenario, or one domain name
        dim: int = 32  # latent factors per domain (the paper's K)
        mf_lr: float = 0.01  # Adam learning rate of both domains' BPR-MF
        mf_reg: float = 1e-4  # L2 weight of the BPR-MF factors
        source_epochs: int = 10
        target_epochs: int = 30
        mf_batch_size: int = 8192  # BPR triples per step
        item_bias: bool = False  # target MF learns an item bias b: score = f(u_s)·v + b (tuned; see fit)
        sparse: bool = False  # sparse embedding gradients + SparseAdam in the MFs (faster, not the same optimiser)
        mapping: str = "mlp"  # "mlp" | "linear"
        hidden_mult: int = 2  # MLP hidden width = hidden_mult * dim (the paper: 2K)
        map_lr: float = 1e-3
        map_reg: float = 0.0  # weight decay of the mapping's parameters
        map_batch_size: int = 128
        map_epochs: int = 200  # cap; early stopping usually ends sooner
        eval_every: int = 2  # mapping epochs between hold-out checks
        patience: int = 5  # checks without a hold-out gain before stopping
        holdout_share: float = 0.1
        min_holdout_users: int = 3
        eval_k: int = 10
        threads: int = 1  # torch intra-op threads during fit/score; 0 = leave as is

    def _check_config(self) -> None:
        c = self.config
        if c.mapping not in MAPPINGS:
            raise ValueError(f"EMCDR mapping must be one of {MAPPINGS}, got {c.mapping!r}")
        for name in ("dim", "hidden_mult", "mf_batch_size", "map_batch_size", "map_epochs", "eval_every",
                     "patience", "eval_k"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"EMCDR {name} must be >= 1, got {getattr(c, name)!r}")
        if int(c.source_epochs) < 1 or int(c.target_epochs) < 1:
            raise ValueError(f"EMCDR needs source_epochs, target_epochs >= 1 (got {c.source_epochs}, {c.target_epochs})")
        if not (c.mf_lr > 0 and c.map_lr > 0 and c.mf_reg >= 0 and c.map_reg >= 0):
            raise ValueError(f"EMCDR needs positive learning rates and non-negative regularisation, got {c}")

    # ---- step 1: latent factors ---------------------------------------------------------
    def _source_factors(self, d) -> np.ndarray:
        """Per source domain BPR-MF on every user with a history there; user factors side by side."""
        c, parts, self.source_rows_ = self.config, [], {}
        bounds = [*d.source_offsets.values(), d.source.shape[1]]
        for k, name in enumerate(d.source_names):
            m = d.source[:, bounds[k]:bounds[k + 1]].tocsr()
            rows = np.flatnonzero(m.getnnz(axis=1) > 0)
            self.source_rows_[name] = rows
            if len(rows) == 0:
                parts.append(np.zeros((m.shape[0], int(c.dim)), dtype=np.float32))
                continue
            u = train_bpr_mf(m, rows, int(c.dim), int(c.source_epochs), float(c.mf_lr), float(c.mf_reg),
                             batch_size=int(c.mf_batch_size), seed=self.seed * 1000 + 1 + k, sparse=bool(c.sparse))[0]
            parts.append(u)
        return np.concatenate(parts, axis=1)

    # ---- step 2: mapping ------------------------------------------------------------------
    def _fit_mapping(self, d, u_src: np.ndarray, u_tgt: np.ndarray) -> EarlyStop:
        c = self.config
        rows = d.overlap_rows
        x, y = torch.from_numpy(u_src[rows]), torch.from_numpy(u_tgt[rows])
        hold_x = torch.from_numpy(u_src[d.holdout_rows])
        hold_truth = d.target[d.holdout_rows]
        # L2 on the weights only: shrinking the biases too would pull every mapped vector
        # towards zero instead of towards the overlap users' mean target factor.
        weights = [p for n, p in self.mapping_.named_parameters() if not n.endswith("bias")]
        biases = [p for n, p in self.mapping_.named_parameters() if n.endswith("bias")]
        opt = torch.optim.AdamW([{"params": weights, "weight_decay": float(c.map_reg)},
                                 {"params": biases, "weight_decay": 0.0}], lr=float(c.map_lr))
        gen = torch.Generator().manual_seed(self.seed * 1000 + 7)
        stop = EarlyStop(int(c.patience), enabled=len(d.holdout_rows) > 0)
        bs = int(c.map_batch_size)
        for epoch in range(1, int(c.map_epochs) + 1):
            self.mapping_.train()
            order = torch.randperm(len(rows), generator=gen)
            for s in range(0, len(rows), bs):
                b = order[s:s + bs]
                loss = nn.functional.mse_loss(self.mapping_(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch % int(c.eval_every) and epoch != int(c.map_epochs):
                continue
            self.mapping_.eval()

            def value() -> float:
                with torch.no_grad():
                    return holdout_ndcg((self.mapping_(hold_x) @ self.target_items_.T + self.target_bias_).numpy(),
                                        hold_truth, int(c.eval_k))

            if stop.update(epoch, value, self.mapping_.state_dict()):
                break
        self.mapping_.load_state_dict(stop.best_state)
        self.mapping_.eval()
        return stop

    def fit(self, view: TrainView) -> "EMCDR":
        self._check_config()
        t0, c = time.perf_counter(), self.config
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            d = domains(view, c.sources, float(c.holdout_share), int(c.min_holdout_users), seed=self.seed)
            if len(d.overlap_rows) == 0:
                raise ValueError(f"EMCDR: no training user with both a source and a target history in {view.scenario}")
            u_src = self._source_factors(d)
            # The item bias: plain BPR-MF has no popularity term, and on epinions-m2b the
            # target MF's mean user vector ranked held-out users below Popularity; with b
            # a mapped vector near the mean starts from the popular books.
            out = train_bpr_mf(d.fit_target(), d.fit_rows, int(c.dim), int(c.target_epochs), float(c.mf_lr),
                               float(c.mf_reg), batch_size=int(c.mf_batch_size), seed=self.seed * 1000,
                               item_bias=bool(c.item_bias), sparse=bool(c.sparse))
            u_tgt, v_tgt = out[0], out[1]
            self.target_bias_ = torch.from_numpy(out[2] if c.item_bias else np.zeros(v_tgt.shape[0], dtype=np.float32))
            self.target_items_ = torch.from_numpy(v_tgt)
            self.target_rows_ = d.fit_rows
            self.mapping_rows_ = d.overlap_rows
            self.holdout_rows_ = d.holdout_rows
            self.source_factors_ = u_src
            self.mapping_ = build_mapping(c.mapping, u_src.shape[1], int(c.dim), int(c.hidden_mult) * int(c.dim))
            stop = self._fit_mapping(d, u_src, u_tgt)
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "mapping": c.mapping, "mapping_users": int(len(d.overlap_rows)),
            "target_users": int(len(d.fit_rows)), "holdout_users": int(len(d.holdout_rows)),
            "source_users": {k: int(len(v)) for k, v in self.source_rows_.items()},
            "no_source_users": int((~d.has_source[cold]).sum()), "fit_time_s": round(time.perf_counter() - t0, 3),
        }
        return self

    # ---- step 3: cold-start inference ---------------------------------------------------
    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """f(source factor) . target item factors + item bias; a user without source items maps the zero vector."""
        if not hasattr(self, "mapping_"):
            raise RuntimeError("EMCDR.score called before fit")
        rows = checked_rows(user_rows, self.source_factors_.shape[0], "EMCDR")
        with torch_threads(int(self.config.threads)), torch.no_grad():
            mapped = self.mapping_(torch.from_numpy(self.source_factors_[rows.astype(np.int64)]))
            return (mapped @ self.target_items_.T + self.target_bias_).numpy().astype(np.float64)
