"""MAP-2T: tower shapes and ranges, loss terms, inputs and imputation, determinism,
and an end-to-end fit on the planted tiny fold."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.experiment import registry
from benchmark.models.map2t.model import MAP2T, popular_vector, split_rows, topk_mean
from benchmark.models.map2t.towers import (
    ConcatFusion,
    GatedFusion,
    GatedMixturePath,
    ItemTower,
    UserTower,
    regularised_loss,
)
from conftest import planted_scenario

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
FAST = dict(max_epochs=12, lr=1e-2, batch_size=32)


@pytest.fixture(scope="module")
def scenario():
    return planted_scenario(n_users=200)


@pytest.fixture(scope="module")
def planted(scenario):
    view, truth = scenario.fold()
    rng = np.random.default_rng(3)  # known source embeddings, so imputation can be checked by hand
    view.source_emb = {d: rng.normal(size=(len(view.source_items[d]), 16)).astype(np.float32) for d in ("music", "podcast")}
    return view, truth


def fit(view, seed=0, **kw):
    return MAP2T(MAP2T.Config(**{**FAST, **kw}), seed=seed).fit(view)


def hit_at(scores, truth, k=3):
    top = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(truth.toarray() > 0, top, axis=1).any(axis=1).mean()


# ---------------------------------------------------------------- towers and loss


@pytest.mark.parametrize("mods", [["music"], ["podcast"], ["music", "podcast"], ["music", "book", "podcast"]])
@pytest.mark.parametrize("fusion", ["gated", "concat"])
def test_tower_shapes(mods, fusion):
    torch.manual_seed(0)
    dims = {"music": 16, "podcast": 24, "book": 384}
    tower = UserTower({m: dims[m] for m in mods}, 32, fusion)
    out = tower({m: torch.randn(5, dims[m]) for m in mods})
    assert out.shape == (5, 32) and torch.isfinite(out).all()
    if len(mods) > 1:
        assert isinstance(tower.fusion, GatedFusion if fusion == "gated" else ConcatFusion)
    item = ItemTower(384, 32)
    assert item(torch.randn(7, 384)).shape == (7, 32)
    assert isinstance(ItemTower(32, 32).skip, torch.nn.Identity)


def test_gates_within_unit_interval_and_fusion_is_convex():
    torch.manual_seed(1)
    path = GatedMixturePath(16, 8)
    path(100 * torch.randn(50, 16))
    assert path.last_gate.min() >= 0 and path.last_gate.max() <= 1
    u1, u2, u3 = torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 8)
    two = GatedFusion(2, 8)
    out = two([u1, u2])
    a = two.last_weights[:, 0]
    assert a.min() >= 0 and a.max() <= 1
    assert torch.allclose(out, a * u1 + (1 - a) * u2, atol=1e-6)  # the paper's form
    three = GatedFusion(3, 8)
    out3 = three([u1, u2, u3])
    w = three.last_weights
    assert w.shape == (6, 3, 8) and (w >= 0).all() and torch.allclose(w.sum(dim=1), torch.ones(6, 8))
    assert torch.allclose(out3, w[:, 0] * u1 + w[:, 1] * u2 + w[:, 2] * u3, atol=1e-6)


def test_loss_terms():
    torch.manual_seed(2)
    logits, n = torch.randn(3, 10), 10
    rows, cols = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 4, 2, 9])
    prior = torch.log_softmax(torch.randn(n), 0)
    # no regulariser: plain softmax cross-entropy over (user, positive) pairs
    pair_logits = logits[rows]
    assert torch.allclose(regularised_loss(logits, rows, cols, prior, 0, 0, 0), torch.nn.functional.cross_entropy(pair_logits, cols))
    # grouped-by-user loss equals the pair-batch loss, regularisers included
    grouped = regularised_loss(logits, rows, cols, prior, 0.3, 0.2, 0.1)
    pairs = regularised_loss(pair_logits, torch.arange(4), cols, prior, 0.3, 0.2, 0.1)
    assert torch.allclose(grouped, pairs, atol=1e-6)
    # KL term vanishes when the prediction is the prior
    at_prior = prior.expand(4, n) + 5.0
    assert torch.allclose(regularised_loss(at_prior, torch.arange(4), cols, prior, 0, 1.0, 0), regularised_loss(at_prior, torch.arange(4), cols, prior, 0, 0, 0), atol=1e-5)
    # entropy is a bonus: loss(lambda_ent = 1) = loss(0) - mean H(p)
    p = torch.softmax(pair_logits, -1)
    h = -(p * p.log()).sum(-1).mean()
    assert torch.allclose(regularised_loss(pair_logits, torch.arange(4), cols, prior, 0, 0, 1.0), regularised_loss(pair_logits, torch.arange(4), cols, prior, 0, 0, 0) - h, atol=1e-6)
    # label smoothing adds the cross-entropy to the uniform distribution
    smooth = -torch.log_softmax(pair_logits, -1).mean()
    assert torch.allclose(regularised_loss(pair_logits, torch.arange(4), cols, prior, 0.5, 0, 0), regularised_loss(pair_logits, torch.arange(4), cols, prior, 0, 0, 0) + 0.5 * smooth, atol=1e-6)


# ---------------------------------------------------------------- inputs


def test_topk_mean_and_popular_vector_by_hand():
    emb = np.array([[1, 0], [0, 1], [2, 2], [0, 0]], dtype=np.float32)  # item 3 has no vector
    m = sp.csr_matrix(np.array([[5, 1, 3, 9], [0, 0, 0, 0], [0, 0, 0, 7]], dtype=float))
    x, has = topk_mean(m, emb, 2)
    assert np.allclose(x[0], (emb[0] + emb[2]) / 2)  # item 3 skipped although most played
    assert not has[1] and not has[2] and np.all(x[1] == 0)
    pop_m = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 1, 1]], dtype=float))
    assert np.allclose(popular_vector(pop_m, emb, "top1", 5), emb[1])  # item 3 ineligible
    assert np.allclose(popular_vector(pop_m, emb, "centroid", 2), (emb[1] + emb[0]) / 2)  # tie 0 vs 2 -> lower index
    with pytest.raises(ValueError, match="match"):
        topk_mean(m, emb[:3], 2)


def test_split_rows_partitions_each_users_positives():
    rng = np.random.default_rng(0)
    m = sp.random(30, 40, density=0.2, random_state=1, format="csr")
    rows = np.arange(0, 30, 2)
    inp, tgt = split_rows(m, rows, 0.5, rng)
    assert inp.multiply(tgt).nnz == 0  # no target is also an input
    both = (inp + tgt).toarray()
    expected = m.toarray()
    expected[np.setdiff1d(np.arange(30), rows)] = 0
    assert np.allclose(both, expected)
    has = np.asarray(m[rows].getnnz(axis=1)) > 0
    assert (np.asarray(tgt[rows].getnnz(axis=1))[has] >= 1).all()
    assert inp.nnz > 0


def test_imputation_matches_the_popular_podcast_and_is_used_in_fit_and_score(planted):
    view, _ = planted
    emb = view.source_emb["podcast"]
    users_per_item = np.asarray((view.source["podcast"] > 0).sum(axis=0)).ravel()
    order = np.lexsort((np.arange(len(users_per_item)), -users_per_item))
    for how, n, expected in [("top1", 1, emb[order[0]]), ("centroid", 3, emb[order[:3]].mean(axis=0))]:
        model = fit(view, impute=how, impute_n=n, max_epochs=1)
        assert np.allclose(model.imputed_["podcast"], expected, atol=1e-6)
        no_p = view.source["podcast"].getnnz(axis=1) == 0
        for phase in ("fit", "score"):
            x = model.inputs_[phase]["podcast"]
            assert np.array_equal(x[no_p], np.broadcast_to(model.imputed_["podcast"], x[no_p].shape))
            assert not np.allclose(x[~no_p], model.imputed_["podcast"])
        assert np.array_equal(model.inputs_["fit"]["music"], model.inputs_["score"]["music"])


def test_impute_all_overrides_real_histories(planted):
    view, _ = planted
    has_p = view.source["podcast"].getnnz(axis=1) > 0
    both = fit(view, impute_all=["podcast"], max_epochs=1)
    for phase in ("fit", "score"):
        assert np.allclose(both.inputs_[phase]["podcast"], both.imputed_["podcast"])
    full = fit(view)
    score_only = fit(view, impute_all=["podcast"], impute_all_when="score")
    assert np.array_equal(score_only.inputs_["fit"]["podcast"], full.inputs_["fit"]["podcast"])
    assert np.allclose(score_only.inputs_["score"]["podcast"], score_only.imputed_["podcast"])
    # Same training, so users without podcasts are scored identically; m&p users differ.
    rows = view.test_users
    s_full, s_imp = full.score(rows), score_only.score(rows)
    assert np.array_equal(s_full[~has_p[rows]], s_imp[~has_p[rows]])
    assert not np.allclose(s_full[has_p[rows]], s_imp[has_p[rows]])


def test_book_input_is_imputed_for_cold_users_only(planted):
    view, _ = planted
    model = fit(view, modalities=["music", "book"], max_epochs=2)
    x = model.inputs_["score"]["book"]
    imputed = model.imputed_["book"]
    cold = np.concatenate([view.valid_users, view.test_users])
    assert np.allclose(x[cold], imputed)
    real = ~np.all(np.isclose(x[view.train_users], imputed), axis=1)
    assert real.mean() > 0.5  # most training users keep a real (input-half) book history
    assert np.isfinite(model.score(view.test_users)).all()


# ---------------------------------------------------------------- end to end


def test_fit_info_and_output_contract(planted):
    view, _ = planted
    model = fit(view)
    info = model.fit_info
    assert 1 <= info["epochs"] <= FAST["max_epochs"] and info["epoch_time_s"] > 0
    assert info["n_holdout_users"] > 0 and len(info["holdout_ndcg10"]) == info["epochs"]
    s = model.score(view.test_users[:7])
    assert s.shape == (7, view.n_catalog) and s.dtype == np.float64 and np.isfinite(s).all()


def test_scores_a_reversed_row_view(planted):
    view, _ = planted
    model = fit(view, max_epochs=1)
    rows = view.test_users[::-1]
    np.testing.assert_array_equal(model.score(rows), model.score(rows.copy()))


def test_deterministic_for_a_seed(planted):
    view, _ = planted
    rows = view.test_users
    a, b = fit(view, seed=5).score(rows), fit(view, seed=5).score(rows)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, fit(view, seed=6).score(rows))


@pytest.mark.parametrize("fusion", ["gated", "concat"])
def test_beats_random_and_ranks_the_planted_item_high(planted, scenario, fusion):
    view, truth = planted
    model = fit(view, fusion=fusion, max_epochs=20)
    s = model.score(view.test_users)
    rng = np.random.default_rng(0)
    rand = np.mean([hit_at(rng.random(s.shape), truth.test) for _ in range(20)])
    assert hit_at(s, truth.test) > rand + 0.25
    head = scenario.head_cols(view, view.test_users)
    rank = (s > s[np.arange(len(s)), head][:, None]).sum(axis=1)
    assert np.mean(rank < 3) > 0.6


def test_different_histories_different_rankings(planted, scenario):
    view, _ = planted
    g = scenario.group_of(view)
    a = view.test_users[g[view.test_users] == 0][0]
    b = view.test_users[g[view.test_users] == 2][0]
    s = fit(view).score(np.array([a, b]))
    assert not np.array_equal(np.argsort(-s[0]), np.argsort(-s[1]))


def test_fallback_embeddings_and_item_text(planted):
    view, _ = planted
    bare = dataclasses.replace(view, source_emb=None, source_emb_mask=None)  # no pretrained vectors: SVD fallbacks
    assert np.isfinite(fit(bare, max_epochs=2).score(view.test_users)).all()
    texty = dataclasses.replace(view, item_text_emb=np.random.default_rng(0).normal(size=(view.n_catalog, 384)).astype(np.float32))
    model = fit(texty, max_epochs=2)
    assert isinstance(model.item_tower.skip, torch.nn.Linear)
    bad = dataclasses.replace(view, item_text_emb=np.zeros((3, 384), np.float32))
    with pytest.raises(ValueError, match="catalog"):
        fit(bad, max_epochs=1)


def test_fits_only_the_views_training_users(planted):
    view, _ = planted
    few = view.train_users[view.cohort[view.train_users] == "m&p"]
    model = fit(dataclasses.replace(view, train_users=few), max_epochs=1)
    assert model.fit_info["n_fit_users"] + model.fit_info["n_holdout_users"] <= len(few)


@pytest.mark.parametrize("bad", [dict(modalities=["music", "video"]), dict(modalities=[]), dict(fusion="sum"), dict(impute="median"), dict(impute_all=["book"]), dict(tau=0.0)])
def test_bad_config_is_a_clear_error(planted, bad):
    view, _ = planted
    with pytest.raises(ValueError):
        fit(view, **bad)


def test_absent_modality_is_a_clear_error(planted):
    view, _ = planted
    music_only = dataclasses.replace(view, source_domains=["music"], source={"music": view.source["music"]}, source_items={"music": view.source_items["music"]})
    with pytest.raises(ValueError, match="absent"):
        fit(music_only, modalities=["music", "podcast"])


# ---------------------------------------------------------------- model specs


def test_specs_load_and_are_consistent():
    from benchmark.config.specs import load_spec

    keys = sorted(p.stem for p in MODELS_DIR.glob("*.yaml") if p.stem.startswith(("map2t", "collopop")))
    assert {"map2t-full", "map2t-imputed_p", "map2t-concat", "map2t-music", "map2t-music_podcast", "collopop-artist", "collopop-podcast"} <= set(keys)
    specs = {k: load_spec(k, MODELS_DIR) for k in keys}
    for s in specs.values():
        fields = {f.name for f in dataclasses.fields(type(registry.build(s).config))}
        assert set(s.search_space) <= fields, s.key
        if s.tune_from:
            assert s.tune_from in specs and not s.search_space, s.key
            assert set(specs[s.tune_from].applies_to) <= set(s.applies_to), s.key
        if registry.model_class(s.cls) is MAP2T:
            mods = set(registry.build(s).config.modalities) - {"book"}
            assert mods <= set(s.applies_to), s.key
    assert specs["map2t-music"].applies_to == ("music",) and specs["map2t-music"].search_space
    assert specs["map2t-music_podcast"].train_cohort == "m&p"
