"""Popularity: rank the catalog by the number of training users with a positive.

The reference every relative number is computed against. On domain-level cold start
it is strong, because book consumption is heavily concentrated in the head.
"""

from __future__ import annotations

import numpy as np

from benchmark.scenarios.protocol import TrainView
from benchmark.models.base import Recommender


class Popularity(Recommender):
    history_free = True

    def fit(self, view: TrainView) -> "Popularity":
        pop = view.popularity()
        # A tiny deterministic tie-break by catalog position keeps rankings stable.
        self._scores = (pop - 1e-9 * np.arange(len(pop))).astype(np.float64)
        return self

    def score(self, user_rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._scores, (len(user_rows), len(self._scores))).copy()
