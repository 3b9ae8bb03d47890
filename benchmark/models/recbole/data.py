"""The merged source+target graph of one fold, as RecBole atomic files.

RecBole's single-domain models know nothing about domains or cold start. We give
them one interaction graph per fold that holds

* every user's source-domain interactions (valid/test users included: their
  source history is the input they are scored from), and
* the training users' target positives over the fold's catalog.

A valid/test user is thus an ordinary RecBole user whose items happen to be
source items only, and "recommend books to a cold user" becomes "rank the
catalog columns of that user's ordinary full-sort scores".

Tokens are synthetic (``u<row>``, ``t<col>``, ``s<d>_<col>``) rather than the real
ids: real user names (e.g. podcast reviewer nicknames) may hold quotes, tabs or
spaces that RecBole's CSV reader would split or unquote, which would silently
merge or drop users. The maps back to our rows/columns are kept beside the files,
and every lookup goes through RecBole's own ``token2id`` (tested).

The module also holds :func:`quiet_recbole`, which keeps RecBole from reading
``sys.argv``, writing tensorboard/log folders into the working directory, and
printing INFO lines to the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import scipy.sparse as sp

from benchmark.scenarios.protocol import TrainView

DATASET_NAME = "cdrfold"


@dataclass
class MergedGraph:
    """One fold's interaction graph with synthetic tokens.

    ``rows``/``cols`` index users (``view.users`` rows) and merged items;
    ``item_tokens[:n_catalog]`` are the catalog columns in catalog order.
    """

    user_tokens: np.ndarray  # token of every view row (whether or not it has edges)
    item_tokens: np.ndarray  # merged item vocabulary: catalog first, then kept source items
    rows: np.ndarray
    cols: np.ndarray
    n_catalog: int
    n_source_kept: int
    n_source_dropped: int

    @property
    def n_interactions(self) -> int:
        return len(self.rows)

    def users_with_edges(self) -> np.ndarray:
        return np.unique(self.rows)


def merged_graph(view: TrainView, min_source_support: int = 1, max_source_items: int | None = None) -> MergedGraph:
    """Build the merged graph of a fold.

    Source items are kept when at least ``min_source_support`` *training* users
    have them (DESIGN section 4: support filters are learned from training users
    only). An item no training user has cannot co-occur with any target item, so
    the default of 1 loses no cross-domain signal and keeps the item vocabulary
    small. ``max_source_items`` further keeps only the most supported ones, which
    bounds the cubic cost of EASE. Edges are binary (RecBole's implicit
    feedback); play counts and ratings are not used as weights.
    """
    if min_source_support < 1:
        raise ValueError(f"min_source_support must be >= 1, got {min_source_support}")
    if not view.source_domains:
        raise ValueError(f"scenario {view.scenario!r} has no source domain: nothing to build a merged graph from")
    train_mask = np.zeros(view.n_users, dtype=bool)
    train_mask[view.train_users] = True

    blocks, tokens, supports = [], [], []
    for d_idx, dom in enumerate(view.source_domains):
        m = (view.source[dom] != 0).astype(np.float32).tocsr()
        supp = np.asarray(m[train_mask].sum(axis=0)).ravel()
        blocks.append(m)
        supports.append(supp)
        tokens.append(np.array([f"s{d_idx}_{j}" for j in range(m.shape[1])], dtype=object))
    src = sp.hstack(blocks, format="csr")
    support = np.concatenate(supports)
    src_tokens = np.concatenate(tokens)

    keep = np.flatnonzero(support >= min_source_support)
    if max_source_items is not None and len(keep) > max_source_items:
        # Most supported first; ties broken by column order so the choice is deterministic.
        order = np.lexsort((keep, -support[keep]))
        keep = np.sort(keep[order[:max_source_items]])
    src = src[:, keep].tocoo()

    tgt = view.target_train.tocoo()
    tgt_pos = tgt.data > 0
    n_cat = view.n_catalog
    rows = np.concatenate([tgt.row[tgt_pos], src.row]).astype(np.int64)
    cols = np.concatenate([tgt.col[tgt_pos], n_cat + src.col]).astype(np.int64)
    # Canonical edge order. The COO order of a csr matrix depends on whether scipy has
    # sorted its indices in place yet (some operations do so lazily), and RecBole
    # assigns ids in order of first appearance: without this sort, refitting on the
    # same view gave different internal ids and different sampled negatives.
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    item_tokens = np.concatenate([np.array([f"t{j}" for j in range(n_cat)], dtype=object), src_tokens[keep]])
    user_tokens = np.array([f"u{r}" for r in range(view.n_users)], dtype=object)
    return MergedGraph(user_tokens, item_tokens, rows, cols, n_cat, len(keep), len(support) - len(keep))


def write_atomic(graph: MergedGraph, data_path: Path, name: str = DATASET_NAME) -> Path:
    """Write ``<data_path>/<name>/<name>.inter`` (user_id:token, item_id:token)."""
    folder = Path(data_path) / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.inter"
    lines = ["user_id:token\titem_id:token"]
    lines += [f"{u}\t{i}" for u, i in zip(graph.user_tokens[graph.rows], graph.item_tokens[graph.cols])]
    path.write_text("\n".join(lines) + "\n")
    return path


class _NullWriter:
    """Stands in for tensorboard's SummaryWriter, which RecBole's Trainer would
    otherwise create under ``./log_tensorboard`` in the working directory."""

    def __getattr__(self, _name):
        return lambda *a, **k: None


@contextlib.contextmanager
def quiet_recbole():
    """Run RecBole without side effects on the terminal, argv or the repo.

    * ``sys.argv`` is hidden: RecBole's Config parses ``--key=value`` arguments of
      whatever program imported it (our CLI, pytest) as RecBole settings.
    * The tensorboard writer is replaced by a no-op (no ``log_tensorboard/``).
    * RecBole logs to the root logger; its level is raised to WARNING for the
      duration and restored afterwards.
    * Deprecation/future warnings from RecBole's pandas/torch calls are muted.
    * ``CUDA_VISIBLE_DEVICES``, which RecBole's Config overwrites, is restored.
    """
    cuda_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(max(old_level, logging.WARNING))
    try:
        with mock.patch.object(sys, "argv", sys.argv[:1]), mock.patch(
            "recbole.trainer.trainer.get_tensorboard", lambda *a, **k: _NullWriter()
        ), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", category=UserWarning, module=r"(recbole|torch)(\.|$)")
            yield
    finally:
        root.setLevel(old_level)
        if cuda_env is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cuda_env
