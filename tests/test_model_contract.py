"""Contract tests shared by every model spec under models/, plus a planted-structure oracle.

Every spec must: load, fit on a fold's training view, score any batch of user rows with a
finite (n, n_catalog) array, be deterministic for a fixed seed, and (unless it is
declared history-free, like Popularity) give different rankings to two cold users with
different source histories. On the planted fixture every model that learns from source
histories must beat random ranking; that is the oracle that fails on a broken id mapping.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmark import paths
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.specs import load_spec
from fixtures_fold import tiny_fold

KEYS = sorted(p.stem for p in paths.MODEL_CARDS.glob("*.yaml"))


@pytest.fixture(scope="module")
def fold():
    return tiny_fold(seed=0, n_users=160, planted=True)


def _fit(key, view, seed=0):
    spec = load_spec(key)
    if not spec.applicable(view.source_domains):
        pytest.skip(f"{key} needs {spec.applies_to}")
    from benchmark.runner import restrict_training

    return spec.build(seed=seed).fit(restrict_training(view, spec.train_cohort))


@pytest.mark.parametrize("key", KEYS)
def test_contract(key, fold):
    view, truth = fold
    model = _fit(key, view)
    rows = view.test_users
    a = model.score(rows)
    assert a.shape == (len(rows), view.n_catalog)
    assert np.isfinite(a).all()
    # scoring a sub-batch gives the same rows (no hidden batch coupling)
    np.testing.assert_allclose(model.score(rows[:3]), a[:3], rtol=1e-5, atol=1e-6)
    # determinism for a fixed seed
    np.testing.assert_allclose(_fit(key, view).score(rows), a, rtol=1e-5, atol=1e-6)
    if not type(model).history_free:
        top = np.argsort(-a, axis=1, kind="stable")[:, :5]
        assert len({tuple(t) for t in top}) > 1, f"{key}: every cold user gets the same ranking"


@pytest.mark.parametrize("key", [k for k in KEYS if k not in ("popularity",)])
def test_planted_structure_beats_random(key, fold):
    """On users with every source history, beat the exact expected HitRate@5 of a random ranking."""
    view, truth = fold
    model = _fit(key, view)
    both = view.cohort[view.test_users] == "m&p"
    rows, t = view.test_users[both], truth.test[both]
    per_user, _ = evaluate_model(model, rows, t, [5], view.popularity())
    n, k = view.n_catalog, 5
    n_pos = np.asarray(t.getnnz(axis=1))
    # P(no positive among k random items) = C(n - p, k) / C(n, k), computed as a product.
    miss = np.array([np.prod([(n - p - i) / (n - i) for i in range(k)]) for p in n_pos])
    assert per_user["HR@5"].mean() > (1 - miss).mean() + 0.1, f"{key} does not beat random ranking on planted data"
