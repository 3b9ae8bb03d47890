"""A multi-task transfer model after Spotify's unified MTL targeting model (arXiv 2601.02306).

The paper trains one network with a *shared* user representation and task-specific
towers on several objectives, so that data-rich tasks shape the representation a
low-data (cold) task reads from, with the task losses balanced. Here:

* **Shared encoder**: per source domain, an idf-weighted bag of the user's items pooled
  through a learnable table initialised from the frozen pretrained vectors
  (``view.source_emb``, else a PureSVD), projected; with a has-history flag
  per domain, through a shared MLP + LayerNorm: h_u.
* **Target tower** (the cold task): residual MLP on h_u, dot product with a book table
  (PureSVD of the fitting users' positives) plus a log-popularity-initialised bias;
  softmax cross-entropy over the full catalog, on training users' book rows only.
* **Auxiliary towers** (data-rich tasks), one per source domain: masked reconstruction.
  Each epoch a seeded share of every user's source items is hidden and predicted from
  the rest. Source data only, so ALL users train it, valid/test included (DESIGN 4
  allows it): the channel through which cold users' behaviour shapes the shared space.
* **Loss balancing**: ``fixed`` (target_weight * L_t + aux_weight * sum L_aux) or
  ``uncertainty`` (Kendall et al. 2018, classification form exp(-s_k) L_k + s_k / 2 with
  learnable log-variances; the weights stay as prior multipliers, so aux_weight = 0
  still switches the auxiliary tasks off).
* **Early stopping** on a seeded ~10% of training users whose book positives are hidden
  from all training: user-level, because the model only ever scores users without book
  history (an interaction-level hold-out would measure a warm task it never performs).

Ablations (the paper's "ancillary objectives and feature groups"), as config fields so
that specs with ``tune_from: mtl`` reuse the tuned lr / aux_weight / dim unchanged:
``aux_off`` builds no auxiliary tower at all (shared encoder + book tower only), and
``domains`` restricts the source domains the encoder and the auxiliary towers read.
The network, batching and loss helpers live in :mod:`benchmark.models.mtl_parts`.

Not in the paper's model: ads/promotions objectives, context and creative features.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch

from benchmark.features import factorize
from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender
from benchmark.models.common import torch_threads
from benchmark.models.mtl_parts import (BALANCE_MODES, Batch, MTLNet, bag, binary, combine_losses, mask_split, ndcg_at,
                                        softmax_ce)

__all__ = ["MTL", "Batch", "mask_split"]


class MTL(Recommender):
    """Multi-task transfer: shared encoder of source histories, book tower + source reconstruction towers."""

    @dataclasses.dataclass
    class Config:
        dim: int = 64  # shared representation and item-table width
        hidden: int = 128  # shared MLP width
        lr: float = 3e-3
        weight_decay: float = 0.0
        dropout: float = 0.1
        batch_size: int = 256
        max_epochs: int = 40
        patience: int = 3  # epochs without hold-out improvement before stopping
        balance: str = "fixed"  # "fixed" or "uncertainty" (Kendall et al. 2018)
        target_weight: float = 1.0
        aux_weight: float = 0.5  # 0 leaves the auxiliary towers in place but idle
        aux_mask_share: float = 0.2  # share of each user's source items hidden and predicted
        holdout_share: float = 0.1  # training users held out for early stopping
        min_holdout_users: int = 3  # fewer would-be hold-out users than this: no early stopping
        eval_k: int = 20
        train_source_emb: bool = True  # fine-tune the frozen-initialised source item tables
        threads: int = 1  # torch intra-op threads during fit/score (restored after); 0 = leave as is
        # Ablations (not tuned; specs with tune_from: mtl set them):
        aux_off: bool = False  # no auxiliary towers or losses at all: shared encoder + book tower only
        domains: list[str] | None = None  # source domains read by encoder and aux towers; None = all of the view

    def _check_config(self) -> None:
        c = self.config
        if c.balance not in BALANCE_MODES:
            raise ValueError(f"MTL balance must be one of {BALANCE_MODES}, got {c.balance!r}")
        for name in ("dim", "hidden", "batch_size", "max_epochs", "patience", "eval_k", "threads"):
            if int(getattr(c, name)) < (0 if name == "threads" else 1):
                raise ValueError(f"MTL {name} must be >= {0 if name == 'threads' else 1}, got {getattr(c, name)!r}")
        if not c.lr > 0 or c.aux_weight < 0 or c.target_weight <= 0:
            raise ValueError(f"MTL needs lr > 0, aux_weight >= 0, target_weight > 0 (got {c.lr}, {c.aux_weight}, {c.target_weight})")
        if not 0 < c.aux_mask_share < 1 or not 0 <= c.holdout_share < 0.5:
            raise ValueError(f"MTL needs 0 < aux_mask_share < 1 and 0 <= holdout_share < 0.5 (got {c.aux_mask_share}, {c.holdout_share})")
        if not isinstance(c.aux_off, (bool, np.bool_)):
            raise ValueError(f"MTL aux_off must be true or false, got {c.aux_off!r}")
        d = c.domains
        if d is not None and (isinstance(d, str) or not isinstance(d, (list, tuple)) or not d
                              or not all(isinstance(x, str) for x in d) or len(set(d)) != len(d)):
            raise ValueError(f"MTL domains must be null or a non-empty list of distinct domain names, got {d!r}")

    # ---- data preparation -------------------------------------------------------------
    def _prepare(self, view: TrainView) -> None:
        c, dim = self.config, int(self.config.dim)
        if not view.source_domains:
            raise ValueError(f"MTL needs at least one source domain; scenario {view.scenario!r} has none")
        missing = [d for d in (c.domains or []) if d not in view.source_domains]
        if missing:
            raise ValueError(f"MTL domains {missing} not in scenario {view.scenario!r} (source domains {list(view.source_domains)})")
        if view.n_catalog == 0:
            raise ValueError("MTL: empty target catalog")
        self._n_catalog = view.n_catalog
        # View order, whatever the listing order: a subset model is the full model minus domains.
        self._domains = [d for d in view.source_domains if c.domains is None or d in c.domains]
        self._aux_domains = [] if c.aux_off else list(self._domains)  # one auxiliary task per entry
        self._inputs = [factorize.idf_weight(view.source[d]).astype(np.float32) for d in self._domains]
        self._consumed = [binary(view.source[d]) for d in self._domains]
        # Fit / hold-out users: training users with a book positive, split by a seeded draw.
        target = binary(view.target_train)
        train = np.asarray(view.train_users, dtype=np.int64)
        with_pos = train[target[train].getnnz(axis=1) > 0]
        rng = np.random.default_rng([self.seed, 11])
        n_hold = int(round(c.holdout_share * len(with_pos)))
        if n_hold < c.min_holdout_users:
            n_hold = 0
        hold = np.sort(rng.choice(with_pos, size=n_hold, replace=False)) if n_hold else np.empty(0, np.int64)
        self._fit_rows = np.setdiff1d(with_pos, hold)
        self._hold_rows = hold
        if len(self._fit_rows) == 0:
            raise ValueError(f"MTL: no training user with a target positive in fold {view.seed}/{view.fold}")
        fit_mask = np.zeros(view.n_users, dtype=np.float32)
        fit_mask[self._fit_rows] = 1.0
        self._target = sp.diags(fit_mask).dot(target).tocsr()  # hold-out and cold rows are empty
        self._target.eliminate_zeros()
        self._hold_truth = target[hold]

        emb = view.source_emb or {}
        masks = view.source_emb_mask or {}
        src_init, aux_init = [], []
        for d in self._domains:
            if d in emb:
                e = np.asarray(emb[d], dtype=np.float32).copy()
                if e.shape[0] != len(view.source_items[d]):
                    raise ValueError(f"source_emb[{d!r}] has {e.shape[0]} rows, expected {len(view.source_items[d])} (view.source_items)")
                if d in masks:
                    e[~np.asarray(masks[d], dtype=bool)] = 0.0
            else:
                e = factorize.item_embeddings(view.source[d], dim, self.seed)
            src_init.append(e)
            if d not in self._aux_domains:
                continue
            if e.shape[1] == dim:
                aux_init.append(e.copy())
            else:  # Johnson-Lindenstrauss projection keeps the pretrained geometry at width dim
                k = view.source_domains.index(d)  # seeded by the view's domain index: same matrix in every variant
                proj = np.random.default_rng([self.seed, 13, k]).normal(size=(e.shape[1], dim)) / np.sqrt(dim)
                aux_init.append((e @ proj).astype(np.float32))
        aux_prior = [np.asarray(m.sum(axis=0)).ravel() for d, m in zip(self._domains, self._consumed) if d in self._aux_domains]
        tgt_init = factorize.item_embeddings(self._target, dim, self.seed)
        self.net = MTLNet(src_init, aux_init, aux_prior, tgt_init, np.asarray(self._target.sum(axis=0)).ravel(),
                          dim, int(c.hidden), float(c.dropout), bool(c.train_source_emb), 1 + len(self._aux_domains))

    def plan_epoch(self, epoch: int) -> tuple[list[Batch], list[sp.csr_matrix], list[sp.csr_matrix]]:
        """The batches of one epoch and that epoch's (input, held-out) source split per domain.

        Deterministic in (seed, epoch). Every user appears once per epoch; the target
        task gets only the batch's fitting training users, each auxiliary task every user
        of the batch who has a held-out item in that domain (no auxiliary task: nothing is
        held out and only the fitting users are planned).
        """
        rng = np.random.default_rng([self.seed, 17, epoch])
        use_aux = bool(self._aux_domains) and self.config.aux_weight > 0
        kept, held = [], []
        for m, b in zip(self._inputs, self._consumed):
            if use_aux:
                k_in, h = mask_split(b, float(self.config.aux_mask_share), rng)
                kept.append(m.multiply(binary(k_in)).tocsr())
                held.append(h)
            else:
                kept.append(m)
                held.append(sp.csr_matrix(m.shape, dtype=np.float32))
        is_fit = np.zeros(self._target.shape[0], dtype=bool)
        is_fit[self._fit_rows] = True
        has_aux = [np.asarray(h.getnnz(axis=1)) > 0 for h in held]
        active = np.flatnonzero(is_fit | np.any(has_aux, axis=0))
        perm = active[rng.permutation(len(active))]
        bs = int(self.config.batch_size)
        batches = []
        for s in range(0, len(perm), bs):
            rows = np.sort(perm[s:s + bs])
            batches.append(Batch(rows[is_fit[rows]], {d: rows[a[rows]] for d, a in zip(self._aux_domains, has_aux)}))
        return batches, kept, held

    # ---- training -----------------------------------------------------------------------
    def _step_loss(self, batch: Batch, kept: list[sp.csr_matrix], held: list[sp.csr_matrix]) -> tuple[torch.Tensor, list[float]]:
        c, net = self.config, self.net
        losses: list[torch.Tensor | None] = [None] * (1 + len(self._aux_domains))
        if len(batch.target_rows):
            h = net.encode([bag(m, batch.target_rows) for m in self._inputs])
            losses[0] = softmax_ce(net.target_logits(h), self._target[batch.target_rows])
        aux_union = np.unique(np.concatenate([np.empty(0, np.int64), *batch.aux_rows.values()]))
        if c.aux_weight > 0 and len(aux_union):
            h = net.encode([bag(m, aux_union) for m in kept])
            for k, d in enumerate(self._aux_domains):  # aux task k reconstructs domain d (= self._domains[k])
                rows = batch.aux_rows[d]
                if len(rows) == 0:
                    continue
                pos = np.searchsorted(aux_union, rows)
                losses[1 + k] = softmax_ce(net.aux_logits(k, h[torch.from_numpy(pos)]), held[k][rows], exclude=kept[k][rows])
        prior = [float(c.target_weight)] + [float(c.aux_weight)] * len(self._aux_domains)
        total = combine_losses(losses, prior, c.balance, net.log_vars)
        return total, [float(x.detach()) if x is not None else float("nan") for x in losses]

    def _run_epoch(self, opt: torch.optim.Optimizer, epoch: int, seen: dict[str, list]) -> list[float | None]:
        """One pass over the epoch's batches; returns the mean of each task loss (None: task idle)."""
        self.net.train()
        batches, kept, held = self.plan_epoch(epoch)
        parts = []
        for b in batches:
            if len(b.target_rows) and not np.isin(b.target_rows, self._fit_rows).all():
                raise AssertionError("MTL: a target batch holds a row outside the fitting training users")
            seen["target"].append(b.target_rows)
            for d in self._aux_domains:
                seen[d].append(b.aux_rows[d])
            loss, p = self._step_loss(b, kept, held)
            opt.zero_grad()
            loss.backward()
            opt.step()
            parts.append(p)
        arr = np.array(parts, dtype=float).reshape(len(parts), -1)
        return [round(float(col[~np.isnan(col)].mean()), 4) if (~np.isnan(col)).any() else None for col in arr.T]

    def fit(self, view: TrainView) -> "MTL":
        self._check_config()
        t0, c = time.perf_counter(), self.config
        with torch.random.fork_rng(devices=[]), torch_threads(int(c.threads)):  # seeded, caller's RNG untouched
            torch.manual_seed(self.seed)
            self._prepare(view)
            params = [p for n, p in self.net.named_parameters() if p.requires_grad and n != "log_vars"]
            groups = [{"params": params, "weight_decay": float(c.weight_decay)}]
            if c.balance == "uncertainty":
                groups.append({"params": [self.net.log_vars], "weight_decay": 0.0})
            opt = torch.optim.AdamW(groups, lr=float(c.lr), foreach=True)
            seen: dict[str, list] = {"target": [], **{d: [] for d in self._aux_domains}}
            best, best_state, best_epoch, bad, times, history = -np.inf, None, 0, 0, [], []
            for epoch in range(int(c.max_epochs)):
                te = time.perf_counter()
                row = {"epoch": epoch, "losses": self._run_epoch(opt, epoch, seen)}
                times.append(time.perf_counter() - te)
                history.append(row)
                if not len(self._hold_rows):
                    best_epoch = epoch
                    continue
                row["holdout_ndcg"] = round(ndcg_at(self._scores(self._hold_rows), self._hold_truth, int(c.eval_k)), 5)
                if row["holdout_ndcg"] > best:
                    best, best_epoch, bad = row["holdout_ndcg"], epoch, 0
                    best_state = copy.deepcopy(self.net.state_dict())
                else:
                    bad += 1
                if bad >= int(c.patience):
                    break
            if best_state is not None:
                self.net.load_state_dict(best_state)
        self.net.eval()
        cat = lambda v: np.unique(np.concatenate([np.empty(0, np.int64), *v]))  # noqa: E731
        self.rows_seen = {"target": cat(seen["target"]), "aux": {d: cat(seen[d]) for d in self._aux_domains}}
        weights = (torch.exp(-self.net.log_vars.detach()).tolist() if c.balance == "uncertainty"
                   else [float(c.target_weight)] + [float(c.aux_weight)] * len(self._aux_domains))
        aux_params = sum(p.numel() for n, p in self.net.named_parameters() if n.startswith("aux_"))
        self.fit_info = {
            "epochs": len(history), "best_epoch": best_epoch, "epoch_time_s": round(float(np.mean(times)), 4),
            "fit_time_s": round(time.perf_counter() - t0, 3), "holdout_users": int(len(self._hold_rows)),
            "best_holdout_ndcg": None if best == -np.inf else best, "fit_users": int(len(self._fit_rows)),
            "loss_weights": dict(zip(["target", *self._aux_domains], weights)), "history": history,
            # What the ablation fields did: domains the encoder read, auxiliary tasks and their size.
            "domains": list(self._domains), "aux_tasks": list(self._aux_domains), "aux_params": int(aux_params),
        }
        return self

    # ---- scoring ------------------------------------------------------------------------
    def _scores(self, rows: np.ndarray, chunk: int = 1024) -> np.ndarray:
        self.net.eval()
        out = np.empty((len(rows), self._n_catalog), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                r = rows[s:s + chunk]
                out[s:s + len(r)] = self.net.target_logits(self.net.encode([bag(m, r) for m in self._inputs])).numpy()
        return out

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "net"):
            raise RuntimeError("MTL.score called before fit")
        rows = np.asarray(user_rows)
        if rows.ndim != 1 or (len(rows) and not np.issubdtype(rows.dtype, np.integer)):
            raise ValueError(f"user_rows must be a 1-d array of integer row indices, got shape {rows.shape} dtype {rows.dtype}")
        n = self._target.shape[0]
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"user_rows out of range [0, {n}): min {rows.min()}, max {rows.max()}")
        with torch_threads(int(self.config.threads)):
            return self._scores(rows.astype(np.int64))
