"""Resolve a spec's class path and build a configured model instance.

Specs (:mod:`benchmark.config.specs`) name classes by import path; this is the one
place that imports them, so only the experiment layer ever depends on concrete
models. Loading a spec here also builds it once with its fixed config, so a config key
the class does not know fails at load time, not mid-run.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from benchmark.config import paths
from benchmark.config.specs import ModelSpec, SpecError, load_spec, load_specs
from benchmark.models.base import Recommender, make_config


def model_class(path: str) -> type[Recommender]:
    """The class at ``"benchmark.models.<module>:<Class>"``."""
    module, _, name = path.partition(":")
    try:
        klass = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise SpecError(f"model class {path!r} cannot be imported: {e}") from e
    if not (isinstance(klass, type) and issubclass(klass, Recommender)):
        raise SpecError(f"model class {path!r} is not a benchmark.models.base.Recommender")
    return klass


def build(spec: ModelSpec, overrides: dict[str, Any] | None = None, seed: int = 0) -> Recommender:
    """Instantiate the model with fixed config + tuned overrides (typed, typo-proof)."""
    klass = model_class(spec.cls)
    values = {**spec.config, **(overrides or {})}
    try:
        config = make_config(klass.Config, values)
    except (TypeError, ValueError) as e:
        raise SpecError(f"models/{spec.key}.yaml: {e}") from e
    return klass(config, seed=seed)


def checked_spec(key: str, root: Path = paths.MODEL_CARDS) -> ModelSpec:
    spec = load_spec(key, root)
    build(spec)
    return spec


def checked_specs(keys: list[str], root: Path = paths.MODEL_CARDS) -> list[ModelSpec]:
    specs = load_specs(keys, root)
    for s in specs:
        build(s)
    return specs
