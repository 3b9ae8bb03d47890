"""Model specs: ``models/<key>.yaml``, the single source of everything about a model key.

A spec names the implementing class by import path (``class: benchmark.models.popularity:Popularity``),
its display name and family (what the leaderboard prints), the fixed part of its config,
the search space the tuner explores with the common budget, and its model card. The
registry is the folder itself: :func:`discover` lists every spec, so adding a model is
one module plus one spec and nothing else.

This module only parses and checks the YAML; it never imports a model class, so the
report can read display names without importing models (the class is resolved by
:mod:`benchmark.experiment.registry`). One class can back several keys: MAP-2T's
ablation variants are configs, not forks; ``tune_from`` lets an ablation reuse another
key's tuned config so it changes exactly one component.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from benchmark.config import paths

SPACE_TYPES = {"uniform", "loguniform", "choice", "randint"}
FAMILIES = {"baseline", "heuristic", "transfer", "recbole", "neighbour", "mapping", "shared-factors", "dual-target"}
_CLASS_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(ValueError):
    """A model spec file is malformed (one line naming the file and the key)."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    key: str
    cls: str  # import path, "benchmark.models.<module>:<Class>"
    display_name: str
    family: str
    description: str
    card: str = ""
    applies_to: tuple[str, ...] = ()
    config: dict = dataclasses.field(default_factory=dict)
    search_space: dict = dataclasses.field(default_factory=dict)
    tune_from: str | None = None
    train_cohort: str | None = None
    # True when the paper's inference needs target history and this module scores a
    # zero-history user by an adaptation its card names (DESIGN 6b, dual-target family);
    # the leaderboard marks such rows.
    adapted: bool = False

    def applicable(self, source_domains: list[str]) -> bool:
        return all(d in source_domains for d in self.applies_to)


_REQUIRED = ("class", "display_name", "family", "description")
_OPTIONAL = {"key", "card", "applies_to", "config", "search_space", "tune_from", "train_cohort", "adapted"}


def _check_space(path: Path, space: dict) -> None:
    if not isinstance(space, dict):
        raise SpecError(f"{path}: search_space must be a mapping, got {type(space).__name__}")
    for name, dist in space.items():
        if not isinstance(dist, dict) or dist.get("type") not in SPACE_TYPES:
            raise SpecError(f"{path}: search_space.{name} needs type in {sorted(SPACE_TYPES)}, got {dist!r}")
        if dist["type"] == "choice" and not dist.get("values"):
            raise SpecError(f"{path}: search_space.{name} (choice) needs a non-empty 'values'")
        if dist["type"] != "choice" and not ("low" in dist and "high" in dist and dist["low"] < dist["high"]):
            raise SpecError(f"{path}: search_space.{name} needs low < high")


def discover(root: Path = paths.MODEL_CARDS) -> list[str]:
    """Every model key with a spec under ``root``, sorted."""
    return sorted(p.stem for p in Path(root).glob("*.yaml"))


def load_spec(key: str, root: Path = paths.MODEL_CARDS) -> ModelSpec:
    path = Path(root) / f"{key}.yaml"
    if not path.exists():
        raise SpecError(f"no model spec {path}; known keys: {discover(root)}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a mapping of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_REQUIRED) - _OPTIONAL)
    if unknown:
        raise SpecError(f"{path}: unknown keys {unknown}; allowed {sorted(set(_REQUIRED) | _OPTIONAL)}")
    missing = [k for k in _REQUIRED if not raw.get(k)]
    if missing:
        raise SpecError(f"{path}: missing required keys {missing}")
    if raw.get("key", key) != key:
        raise SpecError(f"{path}: key {raw.get('key')!r} does not match the file name {key!r}")
    if raw["family"] not in FAMILIES:
        raise SpecError(f"{path}: family must be one of {sorted(FAMILIES)}, got {raw['family']!r}")
    if not _CLASS_PATH.match(str(raw["class"])):
        raise SpecError(f"{path}: class must be an import path 'package.module:Class' (e.g. benchmark.models.popularity:Popularity), got {raw['class']!r}")
    space = raw.get("search_space") or {}
    _check_space(path, space)
    if not isinstance(raw.get("adapted", False), bool):
        raise SpecError(f"{path}: adapted must be true or false, got {raw['adapted']!r}")
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise SpecError(f"{path}: config must be a mapping, got {type(config).__name__}")
    return ModelSpec(
        key=key,
        cls=str(raw["class"]),
        display_name=str(raw["display_name"]),
        family=raw["family"],
        description=str(raw["description"]),
        card=raw.get("card", "") or "",
        applies_to=tuple(raw.get("applies_to") or ()),
        config=config,
        search_space=space,
        tune_from=raw.get("tune_from"),
        train_cohort=raw.get("train_cohort"),
        adapted=bool(raw.get("adapted", False)),
    )


def load_specs(keys: list[str], root: Path = paths.MODEL_CARDS) -> list[ModelSpec]:
    """Specs in an order where every ``tune_from`` target precedes its users."""
    specs = {k: load_spec(k, root) for k in keys}
    for s in specs.values():
        if s.tune_from and s.tune_from not in specs:
            raise SpecError(f"models/{s.key}.yaml: tune_from {s.tune_from!r} is not in the params model list")
    ordered = [s for s in specs.values() if not s.tune_from]
    ordered += [s for s in specs.values() if s.tune_from]
    return ordered


def display_names(root: Path = paths.MODEL_CARDS) -> dict[str, str]:
    """key -> display name of every spec (the report's only view of the model zoo)."""
    return {k: load_spec(k, root).display_name for k in discover(root)}
