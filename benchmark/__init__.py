"""cdrbench: a reproducible benchmark for domain-level cold-start recommendation.

The package is laid out like the pipeline it serves: ``fetch`` -> ``loaders``/``prepare``
-> ``scenarios`` -> ``protocol`` (folds) -> ``models`` -> ``evaluation`` -> ``report``.
"""

__version__ = "0.1.0"
