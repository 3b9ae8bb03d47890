"""RecBole's single-domain models (BPR, LightGCN, EASE, ItemKNN, MultiVAE) on the
merged source+target graph of a fold.

Why these belong in a cross-domain cold-start benchmark: they are the strong
simple baselines a transfer method must beat. Put on one graph where cold users
carry only source items and training users carry both, an ordinary collaborative
model already transfers: a cold user's music items pull their embedding (BPR,
LightGCN), their input vector (MultiVAE) or their item-item weights (EASE,
ItemKNN) towards the books that co-occur with that music among training users.

Pipeline per fold (RecBole 1.2.1's own classes throughout):

1. :func:`~benchmark.models.recbole.data.merged_graph` + ``write_atomic`` into a
   temporary folder (also RecBole's checkpoint dir; deleted after fit).
2. ``Config`` with no filtering (no k-core, no value/interaction-count
   intervals), ``create_dataset``, ``dataset.build()`` with split
   ``RS: [1, 0, 0]`` grouped by nothing: *every* interaction is a training
   interaction. We do not need RecBole's validation split: tuning happens on our
   own valid users through the benchmark's evaluator, and an internal split would
   hide part of each cold user's source history from the model.
3. RecBole's trainer class for the model, ``fit(train_data, valid_data=None,
   saved=False)``: no early stopping, a fixed epoch cap from the model card.
4. Scoring: ``model.full_sort_predict`` on the cold users' internal ids, columns
   picked by ``dataset.token2id`` of the catalog tokens.

Valid/test users are ordinary nodes of the training graph (transductive), which
the protocol allows: their source history is input; their target rows are empty.
Users with no edge in the graph (no kept source item) are not in RecBole's
vocabulary; they get the popularity ranking, and their count is in
``self.fit_info["fallback_users"]``.

Popularity blend (``pop_blend``: the "+Pop" rows, ``models/<key>-pop.yaml``, each inheriting
its base row's tuned configuration; on douban-m2b fold 0 under the older, narrower search
spaces it picked w = 1, i.e. Popularity itself, for ItemKNN and BPR). None of these five models has a
popularity term, and on domain-level cold start the popularity head is strong. The blend
``(1 - w) * rank(model) + w * rank(popularity)`` on per-user rank-normalised scores
(a weighted Borda count) is scale-free: EASE weights, BPR dot products and Mult-VAE logits
live on unrelated scales and heavy tails (an EASE user with one strong neighbour) would
swamp a z-score, whereas ranks put both lists on [0, 1] for every user and model alike.
w comes from a grid, chosen by NDCG@10 on the seeded hold-out *training* users (the
early-stopping hold-out; for EASE and ItemKNN the blend turns it on, so their targets leave
the fit too), against the popularity of the fit without them. w = 0 is the model, w = 1
Popularity's ranking, exactly.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender
from benchmark.models.common import holdout_ndcg, torch_threads
from benchmark.models.recbole.ease import CholeskyEASE
from benchmark.models.recbole.itemknn import LeanItemKNN
from benchmark.models.recbole.sampling import OwnDomainSampler, item_domains
from benchmark.models.recbole.data import DATASET_NAME, merged_graph, quiet_recbole, write_atomic
from benchmark.models.recbole.ranks import row_ranks, tie_broken
from benchmark.models.recbole.settings import SUPPORTED, recbole_settings

PAIRWISE = ("BPR", "LightGCN")  # trained with sampled negatives
TRAINED = ("BPR", "LightGCN", "MultiVAE")  # epoch-based: early stopping applies


@dataclass
class RecBoleConfig:
    model: str = "BPR"
    epochs: int = 20  # cap; traditional models (EASE, ItemKNN) fit in one pass anyway
    train_batch_size: int = 2048
    learning_rate: float = 0.001
    weight_decay: float = 0.0  # RecBole's trainer setting (Adam's L2), tuned for BPR/LightGCN/MultiVAE
    embedding_size: int | None = None  # BPR, LightGCN
    n_layers: int | None = None  # LightGCN
    reg_weight: float | None = None  # LightGCN (L2), EASE (ridge, ~100-1000)
    k: int | None = None  # ItemKNN neighbourhood size
    shrink: float | None = None  # ItemKNN cosine shrinkage
    latent_dimension: int | None = None  # MultiVAE
    mlp_hidden_size: list[int] | None = None  # MultiVAE
    dropout_prob: float | None = None  # MultiVAE
    anneal_cap: float | None = None  # MultiVAE
    total_anneal_steps: int | None = None  # MultiVAE
    # Pairwise models (BPR, LightGCN): draw each negative from the positive's own domain
    # (benchmark/models/recbole/sampling.py) instead of RecBole's uniform draw over all items.
    own_domain_negatives: bool = True
    # Early stopping of the trained models (BPR, LightGCN, MultiVAE): a seeded share of the
    # training users with source and target history is held out of the graph's target side
    # and scored as cold users every `eval_every` epochs; the best epoch's weights are kept.
    # 0 disables it (all `epochs` run). EASE and ItemKNN fit in one pass.
    holdout_share: float = 0.1
    eval_every: int = 2
    patience: int = 3
    min_source_support: int = 1  # keep source items held by >= this many training users
    max_source_items: int | None = None  # keep only the most supported source items (EASE cost)
    score_batch_size: int = 1024
    # Intra-op threads while fitting/scoring (restored afterwards). These models are
    # small; on the shared 2-core machine two threads under load were 4x slower
    # per epoch than one (measured: BPR 5.6 s vs 1.4 s per epoch).
    torch_threads: int | None = 1
    extra: dict = field(default_factory=dict)  # any other RecBole setting, passed verbatim
    # "+Pop" rows: blend the per-user rank-normalised scores with training popularity,
    # (1 - w) * rank(model) + w * rank(popularity), w from `pop_blend_grid` (values in [0, 1])
    # by NDCG@10 on the hold-out training users (turned on for EASE and ItemKNN too, so
    # `holdout_share` must be > 0); ties go to the smaller w (the model unless the hold-out
    # shows a gain). False: the plain model.
    pop_blend: bool = False
    # Dense near 1: on per-user ranks a model weight of 0.1 already reorders Popularity's top few
    # hundred items of a few-thousand-item catalog, so the useful blends sit at w >= 0.95
    # (measured on ciao-me2b: BPR+Pop at w = 0.9 was still 47% below Popularity).
    pop_blend_grid: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(10)]
                                        + [0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 1.0])

    def __post_init__(self):
        if not 0.0 <= float(self.holdout_share) < 1.0:
            raise ValueError(f"holdout_share must be in [0, 1), got {self.holdout_share}")
        grid = [float(w) for w in self.pop_blend_grid]
        if not grid or any(not 0.0 <= w <= 1.0 for w in grid) or len(set(grid)) != len(grid):
            raise ValueError(f"pop_blend_grid must be distinct weights in [0, 1], got {self.pop_blend_grid}")
        if self.pop_blend and self.holdout_share <= 0:
            raise ValueError("pop_blend chooses its weight on hold-out training users: holdout_share must be > 0")


def _without_target_rows(view: TrainView, rows: np.ndarray) -> TrainView:
    """``view`` whose rows ``rows`` are no longer training users (their target rows emptied)."""
    if not len(rows):
        return view
    import scipy.sparse as sp

    keep = np.ones(view.n_users, dtype=np.float32)
    keep[rows] = 0.0
    target = sp.diags(keep).dot(view.target_train).tocsr()
    target.eliminate_zeros()
    return dataclasses.replace(view, train_users=np.setdiff1d(view.train_users, rows), target_train=target)


def _reset_cache(model) -> None:
    """LightGCN caches propagated embeddings for scoring; a weight change must drop them."""
    for name in ("restore_user_e", "restore_item_e"):
        if hasattr(model, name):
            setattr(model, name, None)


class RecBoleModel(Recommender):
    """One registered class for every RecBole model; ``config.model`` picks it."""

    Config = RecBoleConfig

    def fit(self, view: TrainView) -> "RecBoleModel":
        from recbole.config import Config
        from recbole.data import create_dataset
        from recbole.data.utils import create_samplers, get_dataloader
        from recbole.utils import get_model, get_trainer, init_seed

        cfg: RecBoleConfig = self.config
        t0 = time.perf_counter()
        pop = view.popularity()
        self._fallback = tie_broken(pop)
        self._w = 0.0  # no blend while fitting (early stopping scores the model itself)
        held_out = cfg.model in TRAINED or cfg.pop_blend
        stop_rows = self._holdout(view) if held_out else np.zeros(0, dtype=np.int64)
        self.holdout_rows_ = stop_rows
        fit_view = _without_target_rows(view, stop_rows)
        graph = merged_graph(fit_view, cfg.min_source_support, cfg.max_source_items)
        with tempfile.TemporaryDirectory(prefix="cdrbench-recbole-") as tmp, quiet_recbole(), torch_threads(cfg.torch_threads):
            write_atomic(graph, Path(tmp), DATASET_NAME)
            config = Config(model=cfg.model, dataset=DATASET_NAME, config_dict=recbole_settings(cfg, tmp, self.seed))
            # EASE: RecBole's class with a Cholesky inverse (benchmark/models/recbole/ease.py);
            # ItemKNN: RecBole's scores without its all-users score matrix (.../itemknn.py).
            model_cls = CholeskyEASE if cfg.model == "EASE" else LeanItemKNN if cfg.model == "ItemKNN" else get_model(config["model"])
            trainer_cls = get_trainer(config["MODEL_TYPE"], config["model"])
            init_seed(config["seed"], config["reproducibility"])
            dataset = create_dataset(config)
            built = dataset.build()
            train_ds = built[0]
            if len(train_ds) != graph.n_interactions:
                raise RuntimeError(f"RecBole kept {len(train_ds)} of {graph.n_interactions} interactions; a filter is active")
            train_sampler, _, _ = create_samplers(config, dataset, built)
            if cfg.model in PAIRWISE and cfg.own_domain_negatives:
                vocab = set(dataset.field2token_id[dataset.iid_field])
                tokens = np.array([t for t in graph.item_tokens if t in vocab], dtype=object)
                iid = dataset.token2id(dataset.iid_field, list(tokens))
                pairs = (train_ds.inter_feat[dataset.uid_field].numpy(), train_ds.inter_feat[dataset.iid_field].numpy())
                train_sampler = OwnDomainSampler(train_sampler, item_domains(tokens, iid, dataset.item_num), pairs)
            self.sampler_ = train_sampler
            train_data = get_dataloader(config, "train")(config, train_ds, train_sampler, shuffle=config["shuffle"])
            init_seed(config["seed"], config["reproducibility"])
            model = model_cls(config, train_ds).to(config["device"])
            trainer = trainer_cls(config, model)
            self._map_ids(dataset, graph, view)
            self._model, self._uid_field = model, config["USER_ID_FIELD"]
            if cfg.model in TRAINED:
                stop = self._train_with_early_stopping(trainer, train_data, view, stop_rows)
            else:
                trainer.fit(train_data, valid_data=None, verbose=False, saved=False, show_progress=False)
                stop = {"holdout_users": int(len(stop_rows))} if held_out else {}
        model.eval()
        self._blend_inputs = (view, fit_view, stop_rows) if held_out else None
        if cfg.pop_blend:
            stop.update(self._choose_blend(view, fit_view, stop_rows))
        self.fit_info = {
            "fit_seconds": time.perf_counter() - t0,
            "n_interactions": graph.n_interactions,
            "n_items": int(len(graph.item_tokens)),
            "source_items_kept": graph.n_source_kept,
            "source_items_dropped": graph.n_source_dropped,
            "fallback_users": int(np.sum(self._uid[np.concatenate([view.valid_users, view.test_users])] < 0)),
            "negatives": ("own-domain" if cfg.own_domain_negatives else "uniform over all items") if cfg.model in PAIRWISE else None,
            **stop,
        }
        return self

    @classmethod
    def shares_fit(cls, config: RecBoleConfig, other: RecBoleConfig) -> bool:
        """A trained model without the blend serves its "+Pop" row: both hold out the same seeded
        training users (early stopping needs them), so their fits are the same; only the blend
        weight, chosen after the fit, differs. ItemKNN and EASE hold users out only for the
        blend, so their plain and "+Pop" fits differ and are never shared."""
        return (config.model in TRAINED and not config.pop_blend and bool(other.pop_blend)
                and dataclasses.replace(other, pop_blend=False, pop_blend_grid=config.pop_blend_grid) == config)

    def derive(self, other: RecBoleConfig) -> "RecBoleModel":
        if not self.shares_fit(self.config, other) or getattr(self, "_blend_inputs", None) is None:
            raise ValueError(f"a fitted {self.config.model} cannot become {other}")
        t0 = time.perf_counter()
        twin = copy.copy(self)
        twin.config = other
        twin.fit_info = dict(self.fit_info)
        twin.fit_info.update(twin._choose_blend(*self._blend_inputs))
        twin.fit_info["fit_seconds"] = self.fit_info["fit_seconds"] + (time.perf_counter() - t0)
        return twin

    def _holdout(self, view: TrainView) -> np.ndarray:
        """Training users held out as cold for early stopping: seeded, with source and target history."""
        cfg = self.config
        if cfg.holdout_share <= 0:
            return np.zeros(0, dtype=np.int64)
        train = np.sort(view.train_users)
        has_src = view.source_lengths(train) > 0
        has_tgt = np.asarray(view.target_train[train].getnnz(axis=1)) > 0
        cand = train[has_src & has_tgt]
        n = int(round(cfg.holdout_share * len(cand)))
        if n < 3:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.random.default_rng([self.seed, 63]).choice(cand, size=n, replace=False))

    def _train_with_early_stopping(self, trainer, train_data, view: TrainView, stop_rows: np.ndarray) -> dict:
        """RecBole's own epoch (``trainer._train_epoch``), our check on hold-out users every few epochs."""
        cfg = self.config
        model = self._model
        self.holdout_rows_ = np.asarray(stop_rows)
        truth = (view.target_train[stop_rows] > 0).astype(np.float32).tocsr()
        best, best_epoch, best_state, bad, curve = -np.inf, cfg.epochs - 1, None, 0, []
        every = max(1, int(cfg.eval_every))
        for epoch in range(int(cfg.epochs)):
            trainer._train_epoch(train_data, epoch, show_progress=False)
            last = epoch == cfg.epochs - 1
            if not len(stop_rows) or not ((epoch + 1) % every == 0 or last):
                continue
            model.eval()
            value = holdout_ndcg(self._model_scores(stop_rows), truth, 10)
            _reset_cache(model)
            curve.append((epoch, round(value, 5)))
            if value > best:
                best, best_epoch, best_state, bad = value, epoch, copy.deepcopy(model.state_dict()), 0
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
            _reset_cache(model)
        return {"chosen_epoch": int(best_epoch), "epochs_run": int(epoch + 1), "holdout_users": int(len(stop_rows)),
                "best_holdout_ndcg": None if best == -np.inf else float(best), "holdout_curve": curve}

    def _choose_blend(self, view: TrainView, fit_view: TrainView, rows: np.ndarray) -> dict:
        """The blend weight with the best NDCG@10 on the hold-out training users ``rows``.

        Their truth is their own target rows (in ``view``, absent from ``fit_view`` and so from
        the fit); the popularity blended here is ``fit_view``'s, which does not count them
        either. Valid and test users are never scored. The weight then applies with the full
        training popularity (Popularity's own ranking at w = 1).
        """
        grid = sorted(float(w) for w in self.config.pop_blend_grid)
        self.blend_rows_ = np.asarray(rows)
        if not len(rows):  # too few training users with both histories to hold any out
            return {"pop_blend_w": 0.0, "pop_blend_curve": [], "pop_blend_note": "no hold-out users: w = 0 (the model)"}
        pop_rank = row_ranks(tie_broken(fit_view.popularity())[None, :])[0]
        model_rank = row_ranks(self._model_scores(rows))
        model_rank[self._uid[rows] <= 0] = pop_rank  # fallback users: the fit's popularity, not the fold's
        truth = (view.target_train[rows] > 0).astype(np.float32).tocsr()
        curve = [(w, holdout_ndcg((1.0 - w) * model_rank + w * pop_rank, truth, 10)) for w in grid]
        best = max(v for _, v in curve)
        self._w = min(w for w, v in curve if v == best)
        self._pop_rank = row_ranks(self._fallback[None, :])[0]
        return {"pop_blend_w": self._w, "pop_blend_curve": [(w, round(v, 5)) for w, v in curve],
                "pop_blend_holdout_users": int(len(rows)), "pop_blend_scale": "per-user rank / n_catalog"}

    def _map_ids(self, dataset, graph, view: TrainView) -> None:
        """Our rows/columns -> RecBole internal ids, via RecBole's own vocabulary."""
        uid_field, iid_field = dataset.uid_field, dataset.iid_field
        known = set(dataset.field2token_id[uid_field])
        self._uid = np.full(view.n_users, -1, dtype=np.int64)
        has = np.array([t in known for t in graph.user_tokens])
        if has.any():
            self._uid[has] = dataset.token2id(uid_field, list(graph.user_tokens[has]))
        # A catalog item held only by early-stopping hold-out users has no edge in the graph,
        # so RecBole never saw it: it gets id 0 and ranks below every item RecBole scored.
        items = set(dataset.field2token_id[iid_field])
        cat = graph.item_tokens[: graph.n_catalog]
        seen = np.array([t in items for t in cat])
        in_graph = np.zeros(graph.n_catalog, dtype=bool)
        in_graph[np.unique(graph.cols[graph.cols < graph.n_catalog])] = True
        if not np.array_equal(seen, in_graph):
            raise RuntimeError("RecBole's item vocabulary differs from the graph's catalog edges (id mapping bug)")
        self._iid = np.zeros(graph.n_catalog, dtype=np.int64)
        if seen.any():
            self._iid[seen] = dataset.token2id(iid_field, list(cat[seen]))
        self._unseen = ~seen
        self._n_items = int(dataset.item_num)
        if np.any(self._iid[seen] <= 0) or len(np.unique(self._iid[seen])) != int(seen.sum()):
            raise RuntimeError("catalog items are missing from RecBole's vocabulary (id mapping bug)")

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """The model's scores, or with ``pop_blend`` and w > 0 the blend of their per-user ranks with popularity's."""
        scores = self._model_scores(user_rows)
        if self._w == 0.0:
            return scores
        return (1.0 - self._w) * row_ranks(scores) + self._w * self._pop_rank

    def _model_scores(self, user_rows: np.ndarray) -> np.ndarray:
        import torch
        from recbole.data.interaction import Interaction

        user_rows = np.asarray(user_rows, dtype=np.int64)
        out = np.empty((len(user_rows), len(self._iid)), dtype=np.float64)
        uids = self._uid[user_rows]
        known = np.flatnonzero(uids > 0)
        out[uids <= 0] = self._fallback
        bs = max(1, int(self.config.score_batch_size))
        with torch.no_grad(), quiet_recbole(), torch_threads(self.config.torch_threads):
            for s in range(0, len(known), bs):
                pos = known[s : s + bs]
                inter = Interaction({self._uid_field: torch.as_tensor(uids[pos])})
                full = self._model.full_sort_predict(inter).reshape(len(pos), self._n_items)
                block = full[:, torch.as_tensor(self._iid)].double().cpu().numpy()
                if self._unseen.any():
                    block[:, self._unseen] = block[:, ~self._unseen].min(axis=1, keepdims=True) - 1.0
                out[pos] = block
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"RecBole {self.config.model} produced non-finite scores (diverged training?)")
        return out

