"""MAP-2T: the modality-aware two-tower cold-start model (paper section 3; DESIGN 6).

What a cold user is scored from: the mean of the pretrained embeddings of their top-k
source items per modality (by value: most played artists/podcasts), each modality
through its own path, fused, and compared by temperature-scaled cosine with every
catalog item's adapted pretrained vector. Every component is switchable by config
so the ablations of DESIGN section 5 change exactly one thing.

Inputs (``view.source_emb`` / ``view.item_text_emb``, attached by the pipeline, else computed here as fallbacks):

* ``source_emb[domain]`` frozen source item vectors; fallback: SVD of
  ``view.source[domain]`` (all users' source rows are allowed input).
* ``item_text_emb`` text vectors of the catalog; fallback (and the rule on the real
  scenarios, which have no item text): SVD of ``target_train`` (training users only,
  minus the early-stopping holdout users), *not* length-normalised: the vector norm
  carries item popularity, which a cosine-only scorer cannot otherwise express
  (measured on a 2,000 x 5,000 synthetic fold: NDCG@10 0.042 -> 0.068).

Missing modalities are imputed with the embedding of the most popular item of that
modality ("top1") or the centroid of the ``impute_n`` most popular ("centroid");
popularity is counted over all users' source rows (over training users for book).
The same imputed vector is used in training and scoring. ``impute_all`` imputes a
modality for every user: in training and scoring (``impute_all_when="both"``) or,
as in the paper's MAP-2T(imputed_p) evaluation configuration, only when scoring
(``"score"``: trained like MAP-2T(full), evaluated with podcast inputs withheld).

The "book" input modality (audiobook history) is empty for every cold user, so it is
always imputed for them. For training users we split each user's positives by a
seeded coin into an input half and a target half, so no target is also an input.
This implies a train/test mismatch by design: training users have a real book input,
cold users never do (the paper reports this variant adds almost nothing).

Training: the (user, positive) pairs of training users, batched by user (a batch
holds ``batch_size`` users with all their positives: the same loss as pair batches,
but the full-catalog softmax is computed once per user, ~5-10x cheaper); the
regularisers of :func:`~benchmark.models.map2t.towers.regularised_loss`; Adam;
early stopping on NDCG@10 of a seeded ~10% of the *training* users held out as if
cold (the model never sees valid-user truth; the tuner uses valid users).
``fit_info`` records epochs, mean epoch time and the holdout curve.

Threads: the model leaves ``torch.set_num_threads`` alone. On a loaded 2-core box,
2 OpenMP threads per process can be 10-50x slower than 1 (spin-waiting); run
parallel trials with OMP_NUM_THREADS=1 / torch.set_num_threads(1).
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import scipy.sparse as sp
import torch

from benchmark.features.factorize import item_embeddings
from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender
from benchmark.models.common import ndcg_of_top, top_n_per_row
from benchmark.models.map2t.towers import ItemTower, UserTower, cosine_logits, regularised_loss

MODALITIES = ("music", "podcast", "book")


def topk_mean(matrix: sp.csr_matrix, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean embedding of each row's top-k items by value, and whether the row had any.

    Items whose embedding is all-zero (no pretrained vector) are skipped, so they
    neither count towards k nor shrink the mean.
    """
    if matrix.shape[1] != emb.shape[0]:
        raise ValueError(f"embedding rows ({emb.shape[0]}) do not match items ({matrix.shape[1]})")
    known = (np.abs(emb).sum(axis=1) > 0).astype(np.float64)
    m = sp.csr_matrix(matrix, dtype=np.float64) @ sp.diags(known)
    m.data = np.where(m.data > 0, m.data, 0.0)
    m = top_n_per_row(m, k)
    m.data[:] = 1.0
    counts = np.asarray(m.sum(axis=1)).ravel()
    inv = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    x = (sp.diags(inv) @ m @ emb.astype(np.float64)).astype(np.float32)
    return x, counts > 0


def popular_vector(matrix: sp.csr_matrix, emb: np.ndarray, how: str, n: int) -> np.ndarray:
    """Imputation vector: embedding of the most popular item, or centroid of the top n.

    Popularity = number of rows with a positive value; items without an embedding are
    ineligible; ties go to the lower item index (deterministic).
    """
    pop = np.asarray((matrix > 0).sum(axis=0)).ravel().astype(np.float64)
    pop[np.abs(emb).sum(axis=1) == 0] = -1.0
    order = np.lexsort((np.arange(len(pop)), -pop))
    eligible = order[pop[order] > 0]
    if len(eligible) == 0:
        raise ValueError("cannot impute: no item of this modality has both users and an embedding")
    take = eligible[:1] if how == "top1" else eligible[: max(1, n)]
    return emb[take].mean(axis=0).astype(np.float32)


def split_rows(matrix: sp.csr_matrix, rows: np.ndarray, share: float, rng: np.random.Generator) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split the nonzeros of ``rows`` by a seeded coin into (input part, target part).

    Each row keeps at least one target entry when it has any (a row's single positive
    is a target, not an input). Rows not listed are empty in both parts.
    """
    sub = sp.diags(np.isin(np.arange(matrix.shape[0]), rows).astype(np.float32)) @ matrix
    coo = sp.csr_matrix(sub).tocoo()
    is_in = rng.random(coo.nnz) < share
    # Guarantee a target per row: the row's first entry (in a seeded order) is a target.
    order = np.lexsort((rng.random(coo.nnz), coo.row))
    first = order[np.r_[True, coo.row[order][1:] != coo.row[order][:-1]]] if coo.nnz else order
    is_in[first] = False

    def part(sel: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[sel], (coo.row[sel], coo.col[sel])), shape=matrix.shape)

    return part(is_in), part(~is_in)


def ndcg_at(scores: torch.Tensor, truth: sp.csr_matrix, k: int = 10) -> float:
    """Mean binary NDCG@k of score rows against truth rows (internal early stopping)."""
    return ndcg_of_top(torch.topk(scores, min(k, scores.shape[1]), dim=1).indices.numpy(), truth)


class MAP2T(Recommender):
    """Two towers over frozen pretrained inputs; see the module docstring."""

    @dataclasses.dataclass
    class Config:
        modalities: list[str] = dataclasses.field(default_factory=lambda: ["music", "podcast"])
        fusion: str = "gated"  # "gated" (paper) or "concat" (ablation)
        top_k: int = 10  # top-k source items per modality averaged into the user input
        dim: int = 64  # shared latent size d
        emb_dim: int = 64  # size of fallback SVD embeddings when features are missing
        impute: str = "centroid"  # "centroid" of the impute_n most popular items (paper sec. 5), or "top1"
        impute_n: int = 10
        impute_all: list[str] = dataclasses.field(default_factory=list)  # modalities imputed for every user
        impute_all_when: str = "both"  # "both" (fit and score) or "score" (paper's imputed_p evaluation)
        book_input_share: float = 0.5  # share of a training user's book positives used as input
        tau: float = 0.1  # cosine temperature
        lambda_ls: float = 0.1  # label smoothing weight
        lambda_kl: float = 0.1  # KL(p || popularity prior) weight
        prior_beta: float = 0.5  # popularity prior is pop ** prior_beta, normalised
        lambda_ent: float = 0.01  # entropy bonus weight
        lr: float = 5e-3
        weight_decay: float = 1e-5
        dropout: float = 0.0
        batch_size: int = 128  # users per batch (each with all its positives)
        max_epochs: int = 25
        patience: int = 4
        holdout_share: float = 0.1  # training users held out (as if cold) for early stopping

    def _check(self, view: TrainView) -> None:
        c = self.config
        mods = list(c.modalities)
        if not mods or len(set(mods)) != len(mods) or not set(mods) <= set(MODALITIES):
            raise ValueError(f"modalities must be distinct names from {MODALITIES}, got {mods}")
        absent = [m for m in mods if m != "book" and m not in view.source]
        if absent:
            raise ValueError(f"MAP-2T modalities {absent} absent from scenario {view.scenario!r} (source domains {view.source_domains})")
        checks = {
            "fusion": c.fusion in ("gated", "concat"),
            "impute": c.impute in ("top1", "centroid"),
            "impute_all": set(c.impute_all) <= set(mods),
            "impute_all_when": c.impute_all_when in ("both", "score"),
            "tau": c.tau > 0,
            "top_k": c.top_k >= 1,
            "book_input_share": 0.0 < c.book_input_share < 1.0,
            "holdout_share": 0.0 <= c.holdout_share < 0.5,
            "batch_size": c.batch_size >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"MAP-2T: invalid config values for {bad}: {dataclasses.asdict(c)}")

    def _inputs(self, view: TrainView, item_x: np.ndarray, book_in: sp.csr_matrix | None, fit_rows: np.ndarray) -> tuple[dict, dict]:
        """Per-modality user input arrays (n_users x d_m) for fitting and for scoring."""
        c = self.config
        fit_in, score_in = {}, {}
        self.imputed_ = {}
        for m in c.modalities:
            if m == "book":
                emb, hist = item_x, book_in
                pop_src = sp.diags(np.isin(np.arange(view.n_users), fit_rows).astype(np.float32)) @ view.target_train
            else:
                emb = (view.source_emb or {}).get(m)
                if emb is None:
                    emb = item_embeddings(view.source[m], c.emb_dim, self.seed)
                emb = np.asarray(emb, dtype=np.float32)
                hist = pop_src = view.source[m]
            x, has = topk_mean(hist, emb, c.top_k)
            imputed = popular_vector(pop_src, emb, c.impute, c.impute_n)
            x[~has] = imputed
            self.imputed_[m] = imputed
            xs = x.copy()
            if m in c.impute_all:
                xs[:] = imputed
                if c.impute_all_when == "both":
                    x[:] = imputed
            fit_in[m], score_in[m] = x, xs
        return fit_in, score_in

    def fit(self, view: TrainView) -> "MAP2T":
        self._check(view)
        c = self.config
        rng = np.random.default_rng([self.seed, 2])
        pos = sp.csr_matrix(view.target_train > 0, dtype=np.float32)
        # Cohort-restricted training (MAP-2T(music_podcast)) arrives as a view whose
        # train_users are that cohort only (benchmark.scenarios.protocol.restrict_training).
        fit_rows = view.train_users[pos[view.train_users].getnnz(axis=1) > 0]
        if len(fit_rows) == 0:
            raise ValueError(f"MAP-2T: no training user with a target positive in {view.scenario!r}")
        n_hold = int(round(c.holdout_share * len(fit_rows))) if len(fit_rows) >= 20 else 0
        perm = rng.permutation(fit_rows)
        hold_rows, learn_rows = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])

        learn_mask = sp.diags(np.isin(np.arange(view.n_users), learn_rows).astype(np.float32))
        item_x = view.item_text_emb
        if item_x is None:  # collaborative item vectors; holdout users left out so stopping is honest
            item_x = item_embeddings(learn_mask @ view.target_train, c.emb_dim, self.seed, normalize=False)
        item_x = np.asarray(item_x, dtype=np.float32)
        if item_x.shape[0] != view.n_catalog:
            raise ValueError(f"item_text_emb has {item_x.shape[0]} rows, catalog has {view.n_catalog}")
        book_in = None
        if "book" in c.modalities:
            book_in, targets = split_rows(view.target_train, learn_rows, c.book_input_share, rng)
        else:
            targets = (learn_mask @ pos).tocsr()
        targets = targets.tocsr()
        targets.data[:] = 1.0
        fit_in, score_in = self._inputs(view, item_x, book_in, learn_rows)

        pop = np.asarray((learn_mask @ pos).sum(axis=0)).ravel()
        prior = np.maximum(pop, 1.0) ** c.prior_beta
        log_prior = torch.from_numpy(np.log(prior / prior.sum()).astype(np.float32))
        hold_truth = pos[hold_rows]

        # Seed torch without touching the caller's global RNG. We do not switch on
        # torch.use_deterministic_algorithms: its first call imports torch._inductor
        # (~10 s here) and every op used here is already deterministic on CPU for a
        # fixed thread count (the determinism test checks it).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.user_tower = UserTower({m: fit_in[m].shape[1] for m in c.modalities}, c.dim, c.fusion, c.dropout)
            self.item_tower = ItemTower(item_x.shape[1], c.dim, c.dropout)
            self._train(fit_in, score_in, item_x, targets, log_prior, hold_rows, hold_truth, rng)
        self._score_in = {m: torch.from_numpy(x) for m, x in score_in.items()}
        self.inputs_ = {"fit": fit_in, "score": score_in}  # per-modality user inputs, for inspection
        self.item_tower.eval()
        with torch.no_grad():
            self._item_vecs = self.item_tower(torch.from_numpy(item_x))
        return self

    def _train(self, fit_in, score_in, item_x, targets, log_prior, hold_rows, hold_truth, rng) -> None:
        """Epochs of shuffled user batches (all of a user's pairs together, see
        :func:`regularised_loss`); keep the state with the best holdout NDCG@10."""
        c = self.config
        x_fit = {m: torch.from_numpy(x) for m, x in fit_in.items()}
        # Holdout users are scored with the *fit* inputs (their book input is imputed
        # there too, as for cold users), so impute_all_when="score" trains exactly the
        # model of "both"/no impute_all and changes only what scoring sees.
        x_hold = {m: torch.from_numpy(x[hold_rows]) for m, x in fit_in.items()}
        x_item = torch.from_numpy(item_x)
        users = np.flatnonzero(targets.getnnz(axis=1) > 0)
        params = list(self.user_tower.parameters()) + list(self.item_tower.parameters())
        opt = torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        best_val, best_state, best_epoch, stale = -np.inf, None, 0, 0
        times, losses, vals = [], [], []
        for epoch in range(1, c.max_epochs + 1):
            t0 = time.perf_counter()
            self.user_tower.train()
            self.item_tower.train()
            order = rng.permutation(users)
            total = 0.0
            for s in range(0, len(order), c.batch_size):
                b = order[s : s + c.batch_size]
                pos = targets[b].tocoo()
                u = self.user_tower({m: x[torch.from_numpy(b)] for m, x in x_fit.items()})
                logits = cosine_logits(u, self.item_tower(x_item), c.tau)
                rows, cols = torch.from_numpy(pos.row.astype(np.int64)), torch.from_numpy(pos.col.astype(np.int64))
                loss = regularised_loss(logits, rows, cols, log_prior, c.lambda_ls, c.lambda_kl, c.lambda_ent)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            times.append(time.perf_counter() - t0)
            losses.append(total / max(len(order), 1))
            if len(hold_rows) == 0:
                best_epoch = epoch
                continue
            self.user_tower.eval()
            self.item_tower.eval()
            with torch.no_grad():
                val = ndcg_at(cosine_logits(self.user_tower(x_hold), self.item_tower(x_item), c.tau), hold_truth, 10)
            vals.append(val)
            if val > best_val:
                best_val, best_epoch, stale = val, epoch, 0
                best_state = (copy.deepcopy(self.user_tower.state_dict()), copy.deepcopy(self.item_tower.state_dict()))
            else:
                stale += 1
                if stale >= c.patience:
                    break
        if best_state is not None:
            self.user_tower.load_state_dict(best_state[0])
            self.item_tower.load_state_dict(best_state[1])
        self.fit_info = {
            "epochs": len(times),
            "best_epoch": best_epoch,
            "epoch_time_s": float(np.mean(times)) if times else 0.0,
            "fit_time_s": float(np.sum(times)),
            "n_pairs": int(targets.nnz),
            "n_fit_users": int(len(users)),
            "n_holdout_users": int(len(hold_rows)),
            "holdout_ndcg10": [round(v, 5) for v in vals],
            "train_loss": [round(v, 5) for v in losses],
        }

    def user_vectors(self, user_rows: np.ndarray) -> torch.Tensor:
        """Fused user representations (scoring inputs, so imputation as in ``score``)."""
        rows = torch.from_numpy(np.ascontiguousarray(user_rows, dtype=np.int64))  # a reversed view has negative strides
        self.user_tower.eval()
        with torch.no_grad():
            return self.user_tower({m: x[rows] for m, x in self._score_in.items()})

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(user_rows, dtype=np.int64)
        out = np.empty((len(rows), self._item_vecs.shape[0]), dtype=np.float64)
        for s in range(0, len(rows), 2048):
            u = self.user_vectors(rows[s : s + 2048])
            out[s : s + 2048] = cosine_logits(u, self._item_vecs, self.config.tau).numpy()
        return out
