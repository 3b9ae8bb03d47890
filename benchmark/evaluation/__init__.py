"""Evaluation: metrics (pure functions of ranked lists and truth), the evaluator that
turns a fitted model into per-user metric values, statistics over users, and run records.

Models never import this package (STYLE item 5); the runner and the report do.
"""

from benchmark.evaluation.evaluate import evaluate_model, evaluate_topk
from benchmark.evaluation.metrics import breakdown_metrics, head_tail_masks, metric_columns, ranking_metrics, topk_indices
from benchmark.evaluation.records import collect_runs, config_hash, provenance, read_record, topk_frame, write_run
from benchmark.evaluation.stats import aggregate, bootstrap_ci, holm, paired_test, relative_improvement

__all__ = [
    "aggregate",
    "bootstrap_ci",
    "breakdown_metrics",
    "collect_runs",
    "config_hash",
    "evaluate_model",
    "evaluate_topk",
    "head_tail_masks",
    "holm",
    "metric_columns",
    "paired_test",
    "provenance",
    "ranking_metrics",
    "read_record",
    "relative_improvement",
    "topk_frame",
    "topk_indices",
    "write_run",
]
