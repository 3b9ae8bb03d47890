"""The one contract every model implements.

A model is trained on a fold's :class:`~benchmark.scenarios.protocol.TrainView` and
scores a batch of user rows over that fold's target catalog. It never sees the
evaluator or the held-out truth (STYLE: the evaluator is a function apart from the
models), and it is named by nothing but its spec: ``models/<key>.yaml`` gives the
class's import path, so there is no registry to edit.

Hyperparameters live in a typed dataclass (``Config``) per model class, so a typo in
``models/<key>.yaml`` is an error at load time instead of a silent default. What a fit
wants the run record to carry (epochs run, users scored by a fall-back, ...) goes in
``fit_info``; the runner copies it into every record.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from benchmark.scenarios.protocol import TrainView


@dataclasses.dataclass
class BaseConfig:
    """Configs are plain dataclasses; subclasses add fields with defaults."""


def make_config(cls: type, values: dict[str, Any] | None) -> Any:
    """Build a config dataclass from a dict, rejecting unknown keys."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__qualname__}: unknown config keys {unknown}; known: {sorted(names)}")
    return cls(**values)


class Recommender(ABC):
    """Fit on a fold, score users over the catalog."""

    Config: ClassVar[type] = BaseConfig
    # True when the model ignores the user's source history (Popularity): the
    # contract test "different histories, different rankings" skips it, and the
    # planted oracle expects it to fail.
    history_free: ClassVar[bool] = False

    def __init__(self, config: Any | None = None, seed: int = 0):
        self.config = config if config is not None else self.Config()
        self.seed = seed
        # JSON-able facts about the last fit (numpy scalars are fine); copied into the run record.
        self.fit_info: dict[str, Any] = {}

    @abstractmethod
    def fit(self, view: TrainView) -> "Recommender":
        """Learn from the training view only."""

    @abstractmethod
    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """Scores (len(user_rows) x view.n_catalog), higher is better, finite."""

    @classmethod
    def shares_fit(cls, config: Any, other: Any) -> bool:
        """True when a model fitted with ``config`` can become one fitted with ``other`` without refitting.

        Why: some rows of the leaderboard differ from another row only after the fit (the
        "+Pop" rows blend a fitted model with Popularity). Fitting such a pair once halves
        their cost; :meth:`derive` must then give exactly what a separate fit with ``other``
        and the same seed gives (tests/test_shared_fit.py). Default: never.
        """
        return False

    def derive(self, other: Any) -> "Recommender":
        """The fitted model for config ``other`` (see :meth:`shares_fit`), built from this fitted one."""
        raise NotImplementedError(f"{type(self).__name__} shares no fit")
