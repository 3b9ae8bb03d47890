"""Source-history user-kNN: recommend what the training users with the most
similar music/podcast histories read.

Why it is here: it is the simplest model that uses a cold user's source history
at all, with no training loop to tune badly. If a transfer model cannot beat it,
the transfer is not buying anything over "people who listen like you read X".

Method (per fold):

1. Each user's source history is a vector over the concatenated source items of
   the configured domains, weighted tf-idf: tf = log(1 + value) (play counts and
   ratings are heavy-tailed; ``tf: binary|raw`` are options), idf =
   log((1 + n_train) / (1 + df)) + 1 with document frequencies ``df`` counted over
   training users only (DESIGN section 4: statistics come from training users).
   Rows are L2-normalised, so a dot product is a cosine similarity.
2. For each scored user, cosine similarity to every training user (itself
   excluded), keep the top ``k`` positive ones (``np.partition`` selection, linear per row).
3. knn(u, i) = sum over neighbours v of sim(u, v) * [v read i] (binary target
   positives from ``view.target_train``), divided by its row maximum.
4. s = (1 - pop_weight) * knn_norm + pop_weight * pop / max(pop), plus
   1e-9 * pop / max(pop) so that items no neighbour read are ordered by
   popularity instead of catalog position. A user with no source history (or
   no similar training user) thus gets the popularity ranking.

Everything is sparse products on batches of users; no Python loop per user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from benchmark.scenarios.protocol import TrainView
from benchmark.features.factorize import idf_weight
from benchmark.models.base import Recommender

TIE_BREAK = 1e-9


@dataclass
class UserKNNConfig:
    k: int = 50  # neighbours kept per scored user
    pop_weight: float = 0.1  # w in s = (1 - w) * knn_norm + w * pop_norm
    tf: str = "log"  # log | binary | raw
    idf: bool = True
    source_domains: list[str] | None = None  # None = every source domain of the scenario
    batch_size: int = 1024  # scored users per dense similarity block


def tfidf_rows(m: sp.csr_matrix, train_rows: np.ndarray, tf: str = "log", idf: bool = True) -> sp.csr_matrix:
    """tf-idf weight and L2-normalise the rows of a users x items matrix.

    Document frequencies come from ``train_rows`` only. All-zero rows stay zero.
    """
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    m.data = np.abs(m.data)
    if tf == "log":
        m.data = np.log1p(m.data)
    elif tf == "binary":
        m.data = np.ones_like(m.data)
    elif tf != "raw":
        raise ValueError(f"tf must be 'log', 'binary' or 'raw', got {tf!r}")
    m.eliminate_zeros()
    if idf:
        m = idf_weight(m, log_values=False, fit_rows=train_rows, sort_indices=False)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv) @ m)


def top_k_dense(sim: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest positive entries of each row, zero the rest.

    Ties at the k-th value are broken by column order (lower training-user
    position wins), so the result is fully determined by the input.
    """
    n = sim.shape[1]
    if k >= n:
        keep = np.ones_like(sim, dtype=bool)
    else:
        kth = np.partition(sim, n - k, axis=1)[:, n - k][:, None]  # k-th largest per row
        greater = sim > kth
        equal = sim == kth
        room = k - greater.sum(axis=1, keepdims=True)
        keep = greater | (equal & (np.cumsum(equal, axis=1) <= room))
    return np.where(keep & (sim > 0), sim, 0.0)


class UserKNN(Recommender):
    Config = UserKNNConfig

    def fit(self, view: TrainView) -> "UserKNN":
        cfg: UserKNNConfig = self.config
        if cfg.k < 1:
            raise ValueError(f"userknn: k must be >= 1, got {cfg.k}")
        if not 0.0 <= cfg.pop_weight <= 1.0:
            raise ValueError(f"userknn: pop_weight must be in [0, 1], got {cfg.pop_weight}")
        domains = list(view.source_domains) if cfg.source_domains is None else list(cfg.source_domains)
        missing = [d for d in domains if d not in view.source]
        if missing or not domains:
            raise ValueError(f"userknn: source domains {missing or domains} not in scenario {view.scenario!r} (has {view.source_domains})")
        x = sp.hstack([view.source[d] for d in domains], format="csr")
        self._train = np.asarray(view.train_users, dtype=np.int64)
        self._x = tfidf_rows(x, self._train, cfg.tf, cfg.idf)
        self._xt = self._x[self._train].T.tocsr()  # items x training users
        self._y = (view.target_train[self._train] > 0).astype(np.float64).tocsr()
        pop = view.popularity()
        self._pop = pop / pop.max() if pop.max() > 0 else pop
        # Position of each user row among training users (-1 if not training): used to
        # drop self-similarity when training users themselves are scored.
        self._train_pos = np.full(view.n_users, -1, dtype=np.int64)
        self._train_pos[self._train] = np.arange(len(self._train))
        return self

    def knn_scores(self, user_rows: np.ndarray) -> np.ndarray:
        """Row-max-normalised neighbour votes (len(user_rows) x n_catalog), in [0, 1]."""
        k = int(self.config.k)
        out = np.zeros((len(user_rows), self._y.shape[1]))
        bs = max(1, int(self.config.batch_size))
        for s in range(0, len(user_rows), bs):
            rows = user_rows[s : s + bs]
            # Rounded so that cosines equal in exact arithmetic (common with binary
            # histories) are exact ties, broken by training-user order in top_k_dense,
            # instead of by the last bit of a sparse product's summation order.
            sim = np.round((self._x[rows] @ self._xt).toarray(), 12)
            own = self._train_pos[rows]
            is_train = own >= 0
            sim[np.flatnonzero(is_train), own[is_train]] = 0.0
            votes = (sp.csr_matrix(top_k_dense(sim, k)) @ self._y).toarray()
            top = votes.max(axis=1, keepdims=True)
            out[s : s + len(rows)] = np.divide(votes, top, out=np.zeros_like(votes), where=top > 0)
        return out

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        user_rows = np.asarray(user_rows, dtype=np.int64)
        w = float(self.config.pop_weight)
        return (1.0 - w) * self.knn_scores(user_rows) + (w + TIE_BREAK) * self._pop[None, :]
