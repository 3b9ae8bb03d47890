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

Not in the paper's model: ads/promotions objectives, context and creative features.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from benchmark.features import factorize
from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender
from benchmark.models.common import ndcg_of_top, torch_threads

BALANCE_MODES = ("fixed", "uncertainty")


@dataclass
class Batch:
    """Rows of one optimisation step: the target task and the auxiliary tasks see different users."""

    target_rows: np.ndarray  # training users (fit part) only
    aux_rows: dict[str, np.ndarray]  # per source domain: any user with a held-out source item this epoch


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data = (out.data > 0).astype(np.float32)
    out.eliminate_zeros()
    return out


def mask_split(m: sp.csr_matrix, share: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each row's entries into (input, held-out): ~``share`` held out, at least one kept.

    Rows with fewer than two entries hold nothing out (nothing would be left to predict
    from). Vectorised: one random key per entry, ranked within its row.
    """
    m = sp.csr_matrix(m)
    nnz_row = np.diff(m.indptr)
    rows = np.repeat(np.arange(m.shape[0]), nnz_row)
    order = np.lexsort((rng.random(m.nnz), rows))
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - m.indptr[rows[order]]
    n_out = np.where(nnz_row >= 2, np.clip(np.rint(share * nnz_row), 1, nnz_row - 1), 0).astype(np.int64)
    out = rank < n_out[rows]
    # Copies of indices/indptr: eliminate_zeros works in place and must not touch the other.
    keep = sp.csr_matrix((np.where(out, 0, m.data), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    held = sp.csr_matrix((out.astype(np.float32), m.indices.copy(), m.indptr.copy()), shape=m.shape)
    keep.eliminate_zeros()
    held.eliminate_zeros()
    return keep, held


def _bag(m: sp.csr_matrix, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag inputs of ``rows``: a weighted mean (weights sum to 1) and a has-history flag."""
    sub = m[rows]
    sums = np.asarray(sub.sum(axis=1)).ravel()
    lens = np.diff(sub.indptr)
    w = sub.data / np.repeat(np.where(sums > 0, sums, 1.0), lens)
    flag = torch.from_numpy((lens > 0).astype(np.float32))[:, None]
    return (torch.from_numpy(sub.indices.astype(np.int64)), torch.from_numpy(sub.indptr[:-1].astype(np.int64)),
            torch.from_numpy(w.astype(np.float32)), flag)


def _log_prior(counts: np.ndarray) -> torch.Tensor:
    b = np.log1p(counts.astype(np.float64))
    return torch.from_numpy((b - b.mean()).astype(np.float32))


class MTLNet(nn.Module):
    """Shared encoder, one target tower and one auxiliary tower per source domain."""

    def __init__(self, source_init: list[np.ndarray], aux_init: list[np.ndarray], aux_prior: list[np.ndarray],
                 target_init: np.ndarray, target_prior: np.ndarray, dim: int, hidden: int, dropout: float,
                 train_source_emb: bool, n_losses: int):
        super().__init__()
        self.bags = nn.ModuleList()
        self.proj = nn.ModuleList()
        for e in source_init:
            bag = nn.EmbeddingBag(e.shape[0], e.shape[1], mode="sum")
            bag.weight.data.copy_(torch.from_numpy(e))
            bag.weight.requires_grad_(train_source_emb)
            self.bags.append(bag)
            self.proj.append(nn.Linear(e.shape[1], dim))
        n_d = len(source_init)
        self.shared = nn.Sequential(nn.Linear(n_d * (dim + 1), hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)

        def tower() -> nn.Module:
            return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim))

        self.target_tower = tower()
        self.target_items = nn.Parameter(torch.from_numpy(target_init))
        self.target_bias = nn.Parameter(_log_prior(target_prior))
        self.aux_towers = nn.ModuleList([tower() for _ in aux_init])
        self.aux_items = nn.ParameterList([nn.Parameter(torch.from_numpy(a)) for a in aux_init])
        self.aux_bias = nn.ParameterList([nn.Parameter(_log_prior(p)) for p in aux_prior])
        self.log_vars = nn.Parameter(torch.zeros(n_losses))  # used only by balance="uncertainty"
        # 1/sqrt(dim): the LayerNormed q has norm ~sqrt(dim) and item rows start unit-norm, so
        # the dot-product term starts in [-1, 1] and the log-popularity bias leads at init.
        self.scale = float(dim) ** -0.5

    def encode(self, bags: list[tuple]) -> torch.Tensor:
        parts = []
        for bag, proj, (idx, off, w, flag) in zip(self.bags, self.proj, bags):
            parts += [proj(bag(idx, off, per_sample_weights=w)) * flag, flag]
        return self.norm(self.shared(torch.cat(parts, dim=1)))

    def target_logits(self, h: torch.Tensor) -> torch.Tensor:
        q = h + self.target_tower(h)
        return (q @ self.target_items.T) * self.scale + self.target_bias

    def aux_logits(self, k: int, h: torch.Tensor) -> torch.Tensor:
        q = h + self.aux_towers[k](h)
        return (q @ self.aux_items[k].T) * self.scale + self.aux_bias[k]


def _coo(m: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return torch.from_numpy(rows), torch.from_numpy(m.indices.astype(np.int64))


def _softmax_ce(logits: torch.Tensor, labels: sp.csr_matrix, exclude: sp.csr_matrix | None = None) -> torch.Tensor:
    """Multinomial cross-entropy: mean over labelled rows of -sum_j y_j log softmax(z)_j / sum_j y_j.

    Labels and exclusions stay sparse (gathered by index): dense batch x catalog label
    matrices cost more than the logits themselves on 40k-item catalogs. Excluded logits
    get a large finite value, not -inf, so nothing turns into NaN.
    """
    if exclude is not None and exclude.nnz:
        logits = logits.index_put(_coo(exclude), torch.tensor(-1e9))
    r, c = _coo(labels)
    nll = torch.logsumexp(logits, dim=1)[r] - logits[r, c]
    n = torch.from_numpy(np.diff(labels.indptr).astype(np.float32))
    per_row = torch.zeros(logits.shape[0]).index_add(0, r, nll)
    has = n > 0
    return (per_row[has] / n[has]).mean()


def _ndcg(scores: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k of score rows against binary truth rows (early-stopping signal only)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # top-k without a full sort of the catalog
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable"), axis=1)
    return ndcg_of_top(top, truth)


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
        aux_weight: float = 0.5  # 0 switches the auxiliary tasks off (single-task ablation)
        aux_mask_share: float = 0.2  # share of each user's source items hidden and predicted
        holdout_share: float = 0.1  # training users held out for early stopping
        min_holdout_users: int = 3  # fewer would-be hold-out users than this: no early stopping
        eval_k: int = 20
        train_source_emb: bool = True  # fine-tune the frozen-initialised source item tables
        threads: int = 1  # torch intra-op threads during fit/score (restored after); 0 = leave as is

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

    # ---- data preparation -------------------------------------------------------------
    def _prepare(self, view: TrainView) -> None:
        c, dim = self.config, int(self.config.dim)
        if not view.source_domains:
            raise ValueError(f"MTL needs at least one source domain; scenario {view.scenario!r} has none")
        if view.n_catalog == 0:
            raise ValueError("MTL: empty target catalog")
        self._n_catalog = view.n_catalog
        self._domains = list(view.source_domains)
        self._inputs = [factorize.idf_weight(view.source[d]).astype(np.float32) for d in self._domains]
        self._consumed = [_binary(view.source[d]) for d in self._domains]
        # Fit / hold-out users: training users with a book positive, split by a seeded draw.
        target = _binary(view.target_train)
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
        for k, d in enumerate(self._domains):
            if d in emb:
                e = np.asarray(emb[d], dtype=np.float32).copy()
                if e.shape[0] != len(view.source_items[d]):
                    raise ValueError(f"source_emb[{d!r}] has {e.shape[0]} rows, expected {len(view.source_items[d])} (view.source_items)")
                if d in masks:
                    e[~np.asarray(masks[d], dtype=bool)] = 0.0
            else:
                e = factorize.item_embeddings(view.source[d], dim, self.seed)
            src_init.append(e)
            if e.shape[1] == dim:
                aux_init.append(e.copy())
            else:  # Johnson-Lindenstrauss projection keeps the pretrained geometry at width dim
                proj = np.random.default_rng([self.seed, 13, k]).normal(size=(e.shape[1], dim)) / np.sqrt(dim)
                aux_init.append((e @ proj).astype(np.float32))
        aux_prior = [np.asarray(m.sum(axis=0)).ravel() for m in self._consumed]
        tgt_init = factorize.item_embeddings(self._target, dim, self.seed)
        n_losses = 1 + len(self._domains)
        self.net = MTLNet(src_init, aux_init, aux_prior, tgt_init, np.asarray(self._target.sum(axis=0)).ravel(),
                          dim, int(c.hidden), float(c.dropout), bool(c.train_source_emb), n_losses)

    def plan_epoch(self, epoch: int) -> tuple[list[Batch], list[sp.csr_matrix], list[sp.csr_matrix]]:
        """The batches of one epoch and that epoch's (input, held-out) source split per domain.

        Deterministic in (seed, epoch). Every user appears once per epoch; the target
        task gets only the batch's fitting training users, each auxiliary task every user
        of the batch who has a held-out item in that domain.
        """
        rng = np.random.default_rng([self.seed, 17, epoch])
        use_aux = self.config.aux_weight > 0
        kept, held = [], []
        for m, b in zip(self._inputs, self._consumed):
            if use_aux:
                k_in, h = mask_split(b, float(self.config.aux_mask_share), rng)
                keep_mask = _binary(k_in)
                kept.append(m.multiply(keep_mask).tocsr())
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
            batches.append(Batch(rows[is_fit[rows]], {d: rows[a[rows]] for d, a in zip(self._domains, has_aux)}))
        return batches, kept, held

    # ---- training -----------------------------------------------------------------------
    def _step_loss(self, batch: Batch, kept: list[sp.csr_matrix], held: list[sp.csr_matrix]) -> tuple[torch.Tensor, list[float]]:
        c, net = self.config, self.net
        losses: list[torch.Tensor | None] = [None] * (1 + len(self._domains))
        if len(batch.target_rows):
            h = net.encode([_bag(m, batch.target_rows) for m in self._inputs])
            losses[0] = _softmax_ce(net.target_logits(h), self._target[batch.target_rows])
        aux_union = np.unique(np.concatenate([np.empty(0, np.int64), *batch.aux_rows.values()]))
        if c.aux_weight > 0 and len(aux_union):
            h = net.encode([_bag(m, aux_union) for m in kept])
            for k, d in enumerate(self._domains):
                rows = batch.aux_rows[d]
                if len(rows) == 0:
                    continue
                pos = np.searchsorted(aux_union, rows)
                losses[1 + k] = _softmax_ce(net.aux_logits(k, h[torch.from_numpy(pos)]), held[k][rows], exclude=kept[k][rows])
        prior = [float(c.target_weight)] + [float(c.aux_weight)] * len(self._domains)
        total = torch.zeros(())
        for k, loss in enumerate(losses):
            if loss is None:
                continue
            if c.balance == "uncertainty":
                s = net.log_vars[k]
                total = total + prior[k] * (torch.exp(-s) * loss + 0.5 * s)
            else:
                total = total + prior[k] * loss
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
            for d in self._domains:
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
            seen: dict[str, list] = {"target": [], **{d: [] for d in self._domains}}
            best, best_state, best_epoch, bad, times, history = -np.inf, None, 0, 0, [], []
            for epoch in range(int(c.max_epochs)):
                te = time.perf_counter()
                row = {"epoch": epoch, "losses": self._run_epoch(opt, epoch, seen)}
                times.append(time.perf_counter() - te)
                history.append(row)
                if not len(self._hold_rows):
                    best_epoch = epoch
                    continue
                row["holdout_ndcg"] = round(_ndcg(self._scores(self._hold_rows), self._hold_truth, int(c.eval_k)), 5)
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
        self.rows_seen = {"target": cat(seen["target"]), "aux": {d: cat(seen[d]) for d in self._domains}}
        weights = (torch.exp(-self.net.log_vars.detach()).tolist() if c.balance == "uncertainty"
                   else [float(c.target_weight)] + [float(c.aux_weight)] * len(self._domains))
        self.fit_info = {
            "epochs": len(history), "best_epoch": best_epoch, "epoch_time_s": round(float(np.mean(times)), 4),
            "fit_time_s": round(time.perf_counter() - t0, 3), "holdout_users": int(len(self._hold_rows)),
            "best_holdout_ndcg": None if best == -np.inf else best, "fit_users": int(len(self._fit_rows)),
            "loss_weights": dict(zip(["target", *self._domains], weights)), "history": history,
        }
        return self

    # ---- scoring ------------------------------------------------------------------------
    def _scores(self, rows: np.ndarray, chunk: int = 1024) -> np.ndarray:
        self.net.eval()
        out = np.empty((len(rows), self._n_catalog), dtype=np.float64)
        with torch.no_grad():
            for s in range(0, len(rows), chunk):
                r = rows[s:s + chunk]
                out[s:s + len(r)] = self.net.target_logits(self.net.encode([_bag(m, r) for m in self._inputs])).numpy()
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
