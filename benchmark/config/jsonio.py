"""One canonical JSON form for everything the pipeline writes (records, meta, cards).

Numpy scalars and arrays, paths and dataclasses become plain JSON values; NaN and
infinities become ``null`` unless the caller keeps them (dataset cards print them as
``NaN``). Sorted keys and no timestamps keep rewritten files byte-identical.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np


def jsonable(obj, nan_to_none: bool = True):
    """``obj`` as nested dict/list/str/int/float/bool/None; TypeError on anything else."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj), nan_to_none)
    if isinstance(obj, dict):
        return {str(k): jsonable(v, nan_to_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, nan_to_none) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v, nan_to_none) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), nan_to_none)
    if isinstance(obj, float) and not math.isfinite(obj) and nan_to_none:
        return None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"value of type {type(obj).__name__} has no JSON form: {obj!r}")
