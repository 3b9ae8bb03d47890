"""Checks every cross-domain zoo model's own tests share (tests/test_cdr_<key>.py).

Each is written once here so a zoo test file holds only what is particular to its model:
* :func:`assert_own_head_books`: two cold test users of different planted taste groups
  rank their own group's head book in their top 5 and not the other's (fails for a model
  that ignores the source history: every cold user gets the same list);
* :func:`assert_target_rows_are_training_only`: the rows a model fitted its target side on
  (``model.target_rows_``) are fit rows, never valid, test or hold-out users;
* :func:`with_cold_book_rows`: a copy of a view with book rows planted for its valid and
  test users (a protocol breach a model must ignore).
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from benchmark.models.cdr.common import domains


def assert_own_head_books(model, contract_fold, k: int = 5) -> None:
    view, _, planted = contract_fold
    rows = view.test_users[view.cohort[view.test_users] == "m&p"]
    groups = planted.group_of(view)[rows]
    a, b = rows[groups == 1][0], rows[groups == 2][0]
    top = np.argsort(-model.score(np.array([a, b])), axis=1, kind="stable")[:, :k]
    assert tuple(top[0]) != tuple(top[1])
    heads = planted.head_cols(view, np.array([a, b]))
    assert heads[0] in top[0] and heads[1] in top[1]
    assert heads[0] not in top[1] and heads[1] not in top[0]


def assert_target_rows_are_training_only(model, view, seed: int = 0):
    """Returns (the fold's Domains, the cold valid + test rows) for the model's own further checks."""
    dom = domains(view, seed=seed)
    cold = np.concatenate([view.valid_users, view.test_users])
    assert len(model.target_rows_) > 0
    assert not np.isin(model.target_rows_, cold).any()
    assert not np.isin(model.target_rows_, dom.holdout_rows).any()  # early-stopping users stay cold too
    assert np.isin(model.target_rows_, dom.fit_rows).all()
    return dom, cold


def with_cold_book_rows(view, per_user: int = 3, seed: int = 0):
    leaked = copy.deepcopy(view)
    cold = np.concatenate([view.valid_users, view.test_users])
    rng = np.random.default_rng(seed)
    extra = sp.csr_matrix((np.ones(per_user * len(cold), np.float32),
                           (np.repeat(cold, per_user), rng.integers(0, view.n_catalog, per_user * len(cold)))),
                          shape=view.target_train.shape)
    leaked.target_train = (view.target_train + extra).tocsr()
    return leaked
