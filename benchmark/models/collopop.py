"""ColloPop: source-entity / target-item co-occurrence weighted by target popularity.

The production-style heuristic of the MAP-2T paper (section 5, "Baselines"):

    s(u, a) = sum_{i in A_u} coocc(i, a) * pop(a) ** alpha

``A_u`` is the set of the user's entities in one source domain (artists for
ColloPop-Artist, podcasts for ColloPop-Podcast), ``coocc(i, a)`` the number of
*training* users who have both entity ``i`` and a positive on target item ``a``, and
``pop(a)`` the number of training users with a positive on ``a``. Everything is
counted over the fold's training users only (DESIGN section 4): valid/test users'
rows of ``target_train`` are empty, and we also drop their source rows from the
count, so an entity known only to cold users contributes nothing.

It is a strong, honest baseline for the cold-start question because it uses the same
inputs as the transfer models and no learned parameters besides ``alpha``.

Scoring is two sparse products (``S_u @ C``, then a column scaling); no Python loops.
Users with no entity in the domain (e.g. no podcast history) have an all-zero
co-occurrence row: a tiny popularity tie-break, far below any co-occurrence gap,
gives them the Popularity ranking and orders ties for everyone else.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender
from benchmark.models.common import top_n_per_row


class ColloPop(Recommender):
    """Co-occurrence x popularity**alpha over one source domain (see module docstring)."""

    @dataclasses.dataclass
    class Config:
        domain: str = "music"  # source domain of the entities: "music" (Artist) or "podcast"
        alpha: float = 0.5  # popularity exponent; 0 = pure co-occurrence
        top_n: int | None = None  # keep each user's top-n entities by value; None = all (paper)

    def fit(self, view: TrainView) -> "ColloPop":
        cfg = self.config
        if cfg.domain not in view.source:
            raise ValueError(f"ColloPop domain {cfg.domain!r} absent from scenario {view.scenario!r}; source domains: {view.source_domains}")
        ent = top_n_per_row(view.source[cfg.domain], cfg.top_n)
        ent.data = (ent.data > 0).astype(np.float64)
        ent.eliminate_zeros()
        tgt = sp.csr_matrix(view.target_train, copy=True)
        tgt.data = (tgt.data > 0).astype(np.float64)
        tgt.eliminate_zeros()
        train = np.zeros(view.n_users, dtype=np.float64)
        train[view.train_users] = 1.0
        mask = sp.diags(train)
        # C[i, a] = #training users with entity i and a positive on a.
        self._cooc = (mask @ ent).T.tocsr() @ (mask @ tgt)
        self._entities = ent
        pop = np.asarray((mask @ tgt).sum(axis=0)).ravel()
        with np.errstate(divide="ignore"):
            weight = np.where(pop > 0, np.power(np.maximum(pop, 1e-300), cfg.alpha), 0.0)
        self._weight = weight
        # Tie-break: popularity scaled to < 1e-9, then catalog order, as in Popularity.
        n = len(pop)
        tb = pop / pop.max() if pop.max() > 0 else np.zeros(n)
        self._tiebreak = 1e-9 * tb - 1e-12 * np.arange(n) / max(n, 1)
        self._pop = pop
        return self

    def raw_scores(self, user_rows: np.ndarray) -> np.ndarray:
        """The paper's formula, unnormalised and without tie-break (for tests/inspection)."""
        rows = np.asarray(user_rows, dtype=int)
        co = (self._entities[rows] @ self._cooc).toarray()
        return co * self._weight[None, :]

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        raw = self.raw_scores(user_rows)
        # Scale each row to max 1 so the tie-break stays far below every real gap.
        top = raw.max(axis=1, keepdims=True)
        scaled = np.divide(raw, top, out=np.zeros_like(raw), where=top > 0)
        return scaled + self._tiebreak[None, :]
