"""Tuned values at the edge of their search range: a flag for an under-explored space.

Why: a reviewer's first question about a baseline far below Popularity is whether it
was tuned. A chosen value on the boundary of its range (ItemKNN's ``k`` at the largest
of its choices, a regulariser at the top of its log range) says the optimum may lie
outside the space searched, so the row is a lower bound on that model, not its best.
The check reads the spec's ``search_space`` (models/<key>.yaml) and the configurations
the runs chose; it changes no number.
"""

from __future__ import annotations

import math
from functools import lru_cache

from benchmark.config.specs import SpecError, load_spec

TOL = 0.01  # share of the (log-)range that still counts as "at" a bound of a continuous range


def _number(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def at_edge(value, dist: dict) -> str | None:
    """"top"/"bottom" when ``value`` sits on a bound of ``dist`` (a search_space entry), else None."""
    x = _number(value)
    if x is None:
        return None
    kind = dist.get("type")
    if kind == "choice":
        nums = [n for n in map(_number, dist.get("values") or []) if n is not None]
        # Two choices: every pick is an edge; three: two picks in three are, so the flag would
        # say little about the space. From four numeric choices on, an edge pick is news.
        if len(nums) < 4 or len(nums) != len(dist["values"]):
            return None
        return "top" if x == max(nums) else "bottom" if x == min(nums) else None
    low, high = _number(dist.get("low")), _number(dist.get("high"))
    if low is None or high is None or high <= low:
        return None
    if kind == "loguniform":
        if x <= 0 or low <= 0:
            return None
        pos = (math.log(x) - math.log(low)) / (math.log(high) - math.log(low))
    else:
        pos = (x - low) / (high - low)
    return "top" if pos >= 1 - TOL else "bottom" if pos <= TOL else None


@lru_cache(maxsize=None)
def _space(model: str) -> dict:
    """The search space a model's configuration came from (its own, else its ``tune_from`` base's), read once."""
    try:
        spec = load_spec(model)
    except SpecError:  # an external submission or a removed spec: nothing to compare with
        return {}
    space = dict(spec.search_space)
    if not space and spec.tune_from:
        space = dict(load_spec(spec.tune_from).search_space)
    return space


def edge_note(model: str, chosen: list[dict]) -> str:
    """"k at the top of its range in 10 of 10 runs"-style note for a model's chosen configs ("" when none)."""
    space = _space(model)
    counts: dict[tuple[str, str], int] = {}
    for cfg in chosen:
        for name, dist in space.items():
            side = at_edge((cfg or {}).get(name), dist)
            if side:
                counts[(name, side)] = counts.get((name, side), 0) + 1
    n = len(chosen)
    return "; ".join(f"{name} at the {side} of its range in {c} of {n} runs" for (name, side), c in sorted(counts.items()))
