"""cdrbench: a reproducible benchmark for domain-level cold-start recommendation.

One folder per pipeline stage, so the tree reads like the data flow, and imports only
point upstream (checked by ``tests/test_layout.py``):

``config`` (paths, typed params, model specs) -> ``data`` (fetch, loaders, prepare) ->
``scenarios`` (recipes, schema, folds/TrainView) -> ``features`` (pretrain, embed) ->
``models`` (one contract, one module per model) -> ``evaluation`` (metrics, records) ->
``experiment`` (registry, tuning, runner) / ``submission`` (validate, score) ->
``report``; ``cli`` wraps each stage for DVC.
"""

__version__ = "0.1.0"
