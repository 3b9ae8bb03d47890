"""Import every model module so their ``@register`` decorators run.

Adding a model: one module in this package, one line here, one ``models/<key>.yaml``.
Modules whose optional heavy dependencies fail to import are reported, not hidden.
"""

from __future__ import annotations

import importlib

MODULES = [
    "popularity",
    "collopop",
    "map2t",
    "mtl",
    "recbole_adapter",
    "userknn",
]

for _m in MODULES:
    importlib.import_module(f"{__package__}.{_m}")
