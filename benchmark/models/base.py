"""The one contract every model implements, and the registry that names them.

A model is trained on a fold's :class:`~benchmark.protocol.TrainView` and scores a
batch of user rows over that fold's target catalog. It never sees the evaluator or
the held-out truth (STYLE: the evaluator is a function apart from the models).

Hyperparameters live in a typed dataclass (``Config``) per model class, so a typo in
``models/<key>.yaml`` is an error at load time instead of a silent default.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..protocol import TrainView

_REGISTRY: dict[str, type["Recommender"]] = {}


def register(name: str):
    """Class decorator: make a model class available to ``models/*.yaml`` as ``class: name``."""

    def deco(cls: type[Recommender]) -> type[Recommender]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model class name {name!r} registered twice")
        cls.class_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def model_class(name: str) -> type["Recommender"]:
    from . import _import_all  # noqa: F401  (populates the registry)

    if name not in _REGISTRY:
        raise KeyError(f"unknown model class {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def registered_classes() -> dict[str, type["Recommender"]]:
    from . import _import_all  # noqa: F401

    return dict(_REGISTRY)


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
    class_name: ClassVar[str] = ""
    # True when the model ignores the user's source history (Popularity): the
    # contract test "different histories, different rankings" skips it.
    history_free: ClassVar[bool] = False

    def __init__(self, config: Any | None = None, seed: int = 0):
        self.config = config if config is not None else self.Config()
        self.seed = seed

    @abstractmethod
    def fit(self, view: TrainView) -> "Recommender":
        """Learn from the training view only."""

    @abstractmethod
    def score(self, user_rows: np.ndarray) -> np.ndarray:
        """Scores (len(user_rows) x view.n_catalog), higher is better, finite."""
