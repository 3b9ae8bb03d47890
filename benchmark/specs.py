"""Model specs: ``models/<key>.yaml`` files that name a registered class plus a config.

One class can back several keys (MAP-2T's ablation variants are configs, not forks).
A spec fixes part of the config, declares the search space the tuner explores with the
common budget, and may reuse another key's tuned config (``tune_from``) so an ablation
changes exactly one component.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .models.base import make_config, model_class

SPACE_TYPES = {"uniform", "loguniform", "choice", "randint"}
FAMILIES = {"baseline", "heuristic", "transfer", "recbole", "neighbour"}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    key: str
    cls: str
    family: str
    description: str
    card: str = ""
    applies_to: tuple[str, ...] = ()
    config: dict = dataclasses.field(default_factory=dict)
    search_space: dict = dataclasses.field(default_factory=dict)
    tune_from: str | None = None
    train_cohort: str | None = None

    def applicable(self, source_domains: list[str]) -> bool:
        return all(d in source_domains for d in self.applies_to)

    def build(self, overrides: dict[str, Any] | None = None, seed: int = 0):
        """Instantiate the model with fixed config + tuned overrides (typed, typo-proof)."""
        klass = model_class(self.cls)
        values = {**self.config, **(overrides or {})}
        return klass(make_config(klass.Config, values), seed=seed)


def _check_space(key: str, space: dict) -> None:
    for name, dist in space.items():
        if not isinstance(dist, dict) or dist.get("type") not in SPACE_TYPES:
            raise ValueError(f"models/{key}.yaml: search_space.{name} needs type in {sorted(SPACE_TYPES)}, got {dist!r}")
        if dist["type"] == "choice" and not dist.get("values"):
            raise ValueError(f"models/{key}.yaml: search_space.{name} (choice) needs a non-empty 'values'")
        if dist["type"] != "choice" and not ("low" in dist and "high" in dist and dist["low"] < dist["high"]):
            raise ValueError(f"models/{key}.yaml: search_space.{name} needs low < high")


def load_spec(key: str, root: Path = paths.MODEL_CARDS) -> ModelSpec:
    path = Path(root) / f"{key}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in Path(root).glob("*.yaml"))
        raise FileNotFoundError(f"no model spec {path}; known keys: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    allowed = {f.name for f in dataclasses.fields(ModelSpec)} | {"class"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}")
    if raw.get("key", key) != key:
        raise ValueError(f"{path}: key {raw.get('key')!r} does not match the file name {key!r}")
    family = raw.get("family", "")
    if family not in FAMILIES:
        raise ValueError(f"{path}: family must be one of {sorted(FAMILIES)}, got {family!r}")
    space = raw.get("search_space") or {}
    _check_space(key, space)
    spec = ModelSpec(
        key=key,
        cls=raw["class"],
        family=family,
        description=raw.get("description", ""),
        card=raw.get("card", ""),
        applies_to=tuple(raw.get("applies_to") or ()),
        config=raw.get("config") or {},
        search_space=space,
        tune_from=raw.get("tune_from"),
        train_cohort=raw.get("train_cohort"),
    )
    spec.build()  # fail now, not mid-run, on a config key the class does not know
    return spec


def load_specs(keys: list[str], root: Path = paths.MODEL_CARDS) -> list[ModelSpec]:
    """Specs in an order where every ``tune_from`` target precedes its users."""
    specs = {k: load_spec(k, root) for k in keys}
    for s in specs.values():
        if s.tune_from and s.tune_from not in specs:
            raise ValueError(f"models/{s.key}.yaml: tune_from {s.tune_from!r} is not in the params model list")
    ordered = [s for s in specs.values() if not s.tune_from]
    ordered += [s for s in specs.values() if s.tune_from]
    return ordered
