"""RecBole models on the merged source+target graph (benchmark.models.recbole.adapter).

Tiny data and 2-10 epochs: these check plumbing (graph contents, id mapping,
cold users' scores coming from their source history, no side effects), not
model quality.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from benchmark.experiment import registry
from benchmark.models.base import make_config
from benchmark.models.recbole.adapter import RecBoleConfig, RecBoleModel
from benchmark.models.recbole.data import merged_graph
from conftest import planted_scenario

# Few epochs, a high learning rate: the tiny planted graph has about 60 users.
FAST = {
    "BPR": dict(epochs=10, learning_rate=0.02),
    "LightGCN": dict(epochs=10, learning_rate=0.02),
    "EASE": dict(reg_weight=10.0),
    "ItemKNN": dict(k=50),
    "MultiVAE": dict(epochs=10, learning_rate=0.01, mlp_hidden_size=[32], latent_dimension=8),
}


@pytest.fixture(scope="module")
def scenario():
    return planted_scenario(n_users=60)


@pytest.fixture(scope="module")
def planted(scenario):
    view, truth = scenario.fold()
    return view, truth, scenario


@pytest.fixture(scope="module")
def fitted(planted):
    view = planted[0]
    return {m: RecBoleModel(RecBoleConfig(model=m, **kw), seed=0).fit(view) for m, kw in FAST.items()}


def _cold(view):
    return np.concatenate([view.valid_users, view.test_users])


def _rank_of_own_book(view, scenario, scores, rows):
    """0-based rank of each cold user's group head book among the catalog."""
    own = scenario.head_cols(view, rows)
    return np.array([int(np.sum(s > s[j])) for s, j in zip(scores, own)])


def test_merged_graph_holds_source_of_everyone_and_target_of_training_users_only(planted):
    view = planted[0]
    g = merged_graph(view)
    cold = _cold(view)
    assert len(cold) > 0
    is_cat = g.cols < g.n_catalog
    # No target edge of a valid/test user; every training target positive is there.
    assert not np.isin(g.rows[is_cat], cold).any()
    assert is_cat.sum() == view.target_train.nnz
    # Every cold user keeps their source edges to items some training user also has.
    for r in cold:
        assert (g.rows[~is_cat] == r).sum() > 0
    assert list(g.item_tokens[: g.n_catalog]) == [f"t{j}" for j in range(view.n_catalog)]
    assert len(set(g.item_tokens)) == len(g.item_tokens)


def test_source_filters_use_training_users_only(scenario, planted):
    cold = planted[0].users[_cold(planted[0])[:2]]
    source = copy.deepcopy(scenario.source)
    source["music"] += [(u, "only_cold_users_have_this", 3.0) for u in cold]
    view, _ = dataclasses.replace(scenario, source=source).fold()
    col = view.source_items["music"].get_loc("music:only_cold_users_have_this")
    assert view.source["music"][:, col].nnz == 2
    g = merged_graph(view)
    assert "s0_%d" % col not in set(g.item_tokens)  # two users, but neither is a training user
    g2 = merged_graph(view, max_source_items=3)
    assert g2.n_source_kept == 3 and len(g2.item_tokens) == view.n_catalog + 3
    with pytest.raises(ValueError, match="min_source_support"):
        merged_graph(view, min_source_support=0)


def test_ease_scores_equal_closed_form_in_our_own_id_order(planted, fitted):
    """An id-mapping bug (users or items permuted) cannot survive this comparison."""
    view = planted[0]
    g = merged_graph(view)
    x = sp.csr_matrix((np.ones(len(g.rows)), (g.rows, g.cols)), shape=(view.n_users, len(g.item_tokens))).toarray()
    gram = x.T @ x + FAST["EASE"]["reg_weight"] * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    rows = _cold(view)
    expected = x[rows] @ b[:, : view.n_catalog]
    got = fitted["EASE"].score(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", list(FAST))
def test_fit_score_shape_finite_and_deterministic(planted, fitted, name):
    view = planted[0]
    rows = np.concatenate([_cold(view), view.train_users[:3]])
    s1 = fitted[name].score(rows)
    assert s1.shape == (len(rows), view.n_catalog)
    assert np.isfinite(s1).all()
    s2 = RecBoleModel(RecBoleConfig(model=name, **FAST[name]), seed=0).fit(view).score(rows)
    np.testing.assert_array_equal(s1, s2)
    assert fitted[name].fit_info["fallback_users"] == 0


@pytest.mark.parametrize("name,top", [("EASE", 2), ("ItemKNN", 2), ("BPR", None), ("LightGCN", None), ("MultiVAE", None)])
def test_planted_book_ranks_high_for_cold_users(planted, fitted, name, top):
    """Cold user of group g: their music co-occurs (in training users) with group g's books."""
    view, _, scenario = planted
    rows = _cold(view)
    ranks = _rank_of_own_book(view, scenario, fitted[name].score(rows), rows)
    if top is not None:
        assert (ranks < top).all(), ranks
    else:
        # Embedding models on 10 epochs: above the median for (almost) everybody.
        assert np.mean(ranks < view.n_catalog / 2) >= 0.75, ranks


@pytest.mark.parametrize("name", list(FAST))
def test_cold_ranking_depends_on_source_history(planted, fitted, name):
    view, _, scenario = planted
    rows = _cold(view)
    groups = scenario.group_of(view)[rows]
    a, b = rows[np.flatnonzero(groups != groups[0])[0]], rows[0]
    s = fitted[name].score(np.array([a, b]))
    assert not np.array_equal(np.argsort(-s[0], kind="stable"), np.argsort(-s[1], kind="stable"))


def test_held_out_target_data_is_not_used(scenario):
    """Changing what valid/test users read (inside the catalog) changes no score."""
    view, _ = scenario.fold()
    cold = {view.users[r] for r in _cold(view)}
    assert all(view.target_train[r].nnz == 0 for r in _cold(view))
    swapped = [(r[0], "b0_0" if r[0] in cold else r[1], *r[2:]) for r in scenario.target]
    view2, _ = dataclasses.replace(scenario, target=swapped).fold()
    assert list(view2.catalog) == list(view.catalog) and list(view2.test_users) == list(view.test_users)
    rows = _cold(view)
    cfg = RecBoleConfig(model="EASE", **FAST["EASE"])
    np.testing.assert_array_equal(RecBoleModel(cfg).fit(view).score(rows), RecBoleModel(cfg).fit(view2).score(rows))


def test_user_without_kept_source_item_gets_popularity(scenario):
    stranger = "cold_stranger"
    source = copy.deepcopy(scenario.source)
    source["music"].append((stranger, "nobody_else", 1.0))
    with_stranger = dataclasses.replace(scenario, source=source, target=scenario.target + [(stranger, "b0_0", 5.0)])
    # The stranger is evaluable (music + a book), so a test user in exactly one fold.
    view = next(v for v, _ in (with_stranger.fold(f) for f in range(scenario.k)) if v.users.get_loc(stranger) in set(v.test_users))
    r = view.users.get_loc(stranger)
    model = RecBoleModel(RecBoleConfig(model="ItemKNN", k=10)).fit(view)
    assert model.fit_info["fallback_users"] == 1
    s = model.score(np.array([r]))[0]
    assert list(np.argsort(-s, kind="stable")) == list(np.argsort(-view.popularity(), kind="stable"))


def test_no_side_effects_on_argv_logging_env_or_working_dir(planted, tmp_path, monkeypatch):
    view = planted[0]
    monkeypatch.chdir(tmp_path)
    # RecBole parses --key=value argv entries as its own settings: this one would crash it.
    monkeypatch.setattr(sys, "argv", ["cdrbench", "--epochs=not-a-number", "--model=Pop"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.DEBUG)
    RecBoleModel(RecBoleConfig(model="BPR", epochs=1)).fit(view).score(_cold(view))
    assert list(tmp_path.iterdir()) == []  # no log/, saved/, log_tensorboard/
    assert sys.argv[1] == "--epochs=not-a-number"
    assert root.level == logging.DEBUG
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7"


def test_bad_configs_fail_clearly(planted):
    view = planted[0]
    with pytest.raises(ValueError, match="not supported"):
        RecBoleModel(RecBoleConfig(model="NeuMF")).fit(view)
    with pytest.raises(ValueError, match="epochs"):
        RecBoleModel(RecBoleConfig(model="BPR", epochs=0)).fit(view)
    with pytest.raises(ValueError, match="unknown config keys"):
        make_config(RecBoleConfig, {"modle": "BPR"})


@pytest.mark.parametrize("key", ["bpr", "lightgcn", "ease", "itemknn", "multivae", "userknn"])
def test_model_cards_load_and_search_spaces_name_config_fields(key):
    import dataclasses

    from benchmark.config.specs import load_spec

    spec = load_spec(key)
    model = registry.build(spec)
    fields = {f.name for f in dataclasses.fields(type(model.config))}
    assert set(spec.search_space) <= fields
    assert spec.card.strip() and spec.description


def test_ease_gram_cache_is_reused_and_bit_identical(planted, scenario):
    """A second fit of the same fold reuses X^T X (a cache hit) and gives the same scores bit for bit;
    another reg_weight reuses it too; another training matrix (another fold) misses."""
    from benchmark.models.recbole import ease

    view = planted[0]
    rows = _cold(view)
    ease.clear_gram_cache()
    before = ease.gram_cache_info()
    cold = RecBoleModel(RecBoleConfig(model="EASE", reg_weight=10.0)).fit(view).score(rows)
    warm = RecBoleModel(RecBoleConfig(model="EASE", reg_weight=10.0)).fit(view).score(rows)
    after = ease.gram_cache_info()
    assert (after["misses"] - before["misses"], after["hits"] - before["hits"]) == (1, 1)
    np.testing.assert_array_equal(cold, warm)
    RecBoleModel(RecBoleConfig(model="EASE", reg_weight=50.0)).fit(view)
    assert ease.gram_cache_info()["hits"] == after["hits"] + 1
    RecBoleModel(RecBoleConfig(model="EASE", reg_weight=10.0)).fit(scenario.fold(1)[0])
    assert ease.gram_cache_info()["misses"] == after["misses"] + 1 and ease.gram_cache_info()["entries"] == 1
