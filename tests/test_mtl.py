"""Tests of the multi-task transfer model (benchmark/models/mtl.py).

The fixture is the shared planted scenario (tests/conftest.py) with five taste groups and
one globally popular book ``book:pop0`` read by 80% of all users: training users of group
g read the group's head book ``book:b{g}_0`` (plus two more of the group), and cold
(valid/test) users' truth holds it too. Popularity alone puts ``book:pop0`` first for
everyone; music-only users (no book) are auxiliary data only.

The ablation fields (``aux_off``, ``domains``) and their specs (models/mtl-*.yaml) are
tested at the end; the signal test of the second modality is
tests/test_second_modality_signal.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from benchmark.config import paths
from benchmark.config.specs import load_spec
from benchmark.experiment import registry
from benchmark.models.base import make_config
from benchmark.models.mtl import MTL, mask_split
from conftest import head, planted_scenario, view_of

N_GROUPS = 5
SMALL = dict(dim=16, hidden=32, batch_size=32, max_epochs=25, patience=5)


def scenario():
    return planted_scenario(n_users=180, n_groups=N_GROUPS, n_popular=1, popular_rate=0.8, n_music_only=20, name="mtl-planted")


def planted_view():
    p = scenario()
    view, truth = p.fold()
    return view, truth, p


def make(seed: int = 0, **kw) -> MTL:
    return MTL(make_config(MTL.Config, {**SMALL, **kw}), seed=seed)


@pytest.fixture(scope="module")
def fitted():
    view, _, p = planted_view()
    return make().fit(view), view, p


def test_shapes_finite_and_fit_info(fitted):
    model, view, _ = fitted
    rows = np.concatenate([view.test_users, view.valid_users, view.train_users[:5]])
    s = model.score(rows)
    assert s.shape == (len(rows), view.n_catalog)
    assert np.isfinite(s).all()
    assert model.score(np.array([], dtype=int)).shape == (0, view.n_catalog)
    info = model.fit_info
    assert 1 <= info["epochs"] <= SMALL["max_epochs"] and info["epoch_time_s"] > 0
    assert info["holdout_users"] > 0 and info["best_holdout_ndcg"] is not None


def test_deterministic_for_a_seed():
    view, _, _ = planted_view()
    rows = np.concatenate([view.test_users, view.valid_users])
    state = torch.random.get_rng_state()
    a = make(seed=3, max_epochs=4).fit(view).score(rows)
    assert torch.equal(torch.random.get_rng_state(), state), "fit must not disturb the caller's torch RNG"
    torch.rand(7)  # the caller's RNG moves on; the model's must not depend on it
    b = make(seed=3, max_epochs=4).fit(view).score(rows)
    c = make(seed=4, max_epochs=4).fit(view).score(rows)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_different_histories_different_rankings(fitted):
    model, view, p = fitted
    rows = view.test_users
    g = p.group_of(view)[rows]
    u0, u1 = rows[g == 0][0], rows[g == 1][0]
    s = model.score(np.array([u0, u1]))
    assert not np.array_equal(np.argsort(-s[0], kind="stable"), np.argsort(-s[1], kind="stable"))


def test_planted_book_in_top3_for_cold_users(fitted):
    model, view, p = fitted
    rows = view.test_users
    top3 = np.argsort(-model.score(rows), axis=1, kind="stable")[:, :3]
    for r, top, want in zip(rows, top3, p.head_cols(view, rows)):
        assert want in top, f"user {view.users[r]}: top3 {list(view.catalog[top])}"
    # Popularity alone would miss: the popular book outranks every group book.
    pop = view.popularity()
    assert pop[view.catalog.get_loc("book:pop0")] > max(pop[view.catalog.get_loc(head(g))] for g in range(N_GROUPS))


def test_target_task_never_touches_cold_rows_aux_does(fitted):
    model, view, _ = fitted
    cold = np.concatenate([view.valid_users, view.test_users])
    seen_t = model.rows_seen["target"]
    assert len(seen_t) > 0
    assert np.isin(seen_t, view.train_users).all()
    assert not np.isin(seen_t, cold).any()
    assert not np.isin(seen_t, model._hold_rows).any(), "early-stopping users leaked into the target loss"
    assert np.isin(cold, model.rows_seen["aux"]["music"]).all(), "aux task must use cold users' source data"
    # Same through the batch planner directly, for another epoch.
    batches, kept, held = model.plan_epoch(7)
    t_rows = np.concatenate([b.target_rows for b in batches])
    a_rows = np.concatenate([b.aux_rows["music"] for b in batches])
    assert not np.isin(t_rows, cold).any() and np.isin(cold, a_rows).all()
    assert model._target[cold].nnz == 0
    # The aux input of a cold user hides what the aux target asks for.
    m = view.source_domains.index("music")
    for r in cold[:5]:
        assert set(kept[m][r].indices).isdisjoint(held[m][r].indices)
        assert held[m][r].nnz >= 1 and kept[m][r].nnz >= 1


@pytest.mark.parametrize("balance", ["fixed", "uncertainty"])
def test_balance_modes(balance):
    view, _, _ = planted_view()
    model = make(balance=balance, max_epochs=6).fit(view)
    assert np.isfinite(model.score(view.test_users)).all()
    w = model.fit_info["loss_weights"]
    assert set(w) == {"target", "music", "podcast"}
    if balance == "fixed":
        assert w == {"target": 1.0, "music": 0.5, "podcast": 0.5}
    else:
        assert all(np.isfinite(list(w.values())))
        assert any(abs(v - 1.0) > 1e-3 for v in w.values()), "log-variances were not learned"


def test_aux_off_plans_no_aux_rows():
    view, _, _ = planted_view()
    model = make(aux_weight=0.0, max_epochs=3).fit(view)
    assert all(len(v) == 0 for v in model.rows_seen["aux"].values())
    assert np.isfinite(model.score(view.test_users)).all()


def test_uses_given_source_embeddings():
    view, _, _ = planted_view()
    rng = np.random.default_rng(5)
    emb = {d: rng.normal(size=(len(view.source_items[d]), 8)).astype(np.float32) for d in view.source_domains}
    view.source_emb = emb
    model = make(train_source_emb=False, max_epochs=2).fit(view)
    for k, d in enumerate(view.source_domains):
        np.testing.assert_array_equal(model.net.bags[k].weight.detach().numpy(), emb[d])
    view.source_emb = {"music": emb["music"][:-1], "podcast": emb["podcast"]}
    with pytest.raises(ValueError, match="source_emb"):
        make(max_epochs=1).fit(view)


def test_bad_input_errors(fitted):
    model, view, _ = fitted
    with pytest.raises(ValueError, match="balance"):
        make(balance="gradnorm").fit(view)
    with pytest.raises(RuntimeError, match="before fit"):
        make().score(np.array([0]))
    with pytest.raises(ValueError, match="out of range"):
        model.score(np.array([view.n_users]))
    with pytest.raises(ValueError, match="unknown config keys"):
        make_config(MTL.Config, {"aux_wieght": 0.3})


def test_mask_split_keeps_and_holds():
    m = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    keep, held = mask_split(m, 0.4, np.random.default_rng(0))
    assert keep.multiply(held).nnz == 0
    np.testing.assert_array_equal((keep + held).toarray() > 0, m.toarray() > 0)
    np.testing.assert_array_equal(held.getnnz(axis=1), [2, 0, 1, 0])
    keep2, held2 = mask_split(m, 0.4, np.random.default_rng(0))
    assert (held2 != held).nnz == 0


def test_spec_file_builds_and_search_space_fits_config():
    from benchmark.config import paths
    from benchmark.config.specs import load_spec

    spec = load_spec("mtl", paths.MODEL_CARDS)
    assert registry.model_class(spec.cls) is MTL and spec.family == "transfer" and "2601.02306" in spec.card
    fields = {f.name for f in __import__("dataclasses").fields(MTL.Config)}
    assert set(spec.search_space) <= fields
    model = registry.build(spec, {"lr": 0.002, "aux_weight": 0.3, "dim": np.int64(64)}, seed=1)
    assert isinstance(model, MTL) and model.config.aux_weight == 0.3


def test_single_source_domain_music_only():
    f = scenario().tables()
    inter = f["interactions"][f["interactions"]["domain"] != "podcast"]
    meta = {**f["meta"], "source_domains": ["music"]}
    view, _ = view_of(dict(f, interactions=inter, meta=meta))
    model = make(max_epochs=3).fit(view)
    assert set(model.fit_info["loss_weights"]) == {"target", "music"}
    assert np.isfinite(model.score(view.test_users)).all()


# ---- ablations: aux_off, domains, and their specs ------------------------------------------
@pytest.mark.parametrize("balance", ["fixed", "uncertainty"])
def test_aux_off_has_no_auxiliary_parameters(balance, fitted):
    view, _, _ = planted_view()
    model = make(aux_off=True, balance=balance, max_epochs=4).fit(view)
    names = [n for n, _ in model.net.named_parameters()]
    assert not [n for n in names if n.startswith("aux_")], names  # no tower, item table or bias of an aux task
    assert len(model.net.aux_towers) == 0 and model.net.log_vars.numel() == 1
    info = model.fit_info
    assert info["aux_tasks"] == [] and info["aux_params"] == 0 and info["domains"] == ["music", "podcast"]
    assert set(info["loss_weights"]) == {"target"}
    assert all(len(h["losses"]) == 1 for h in info["history"]), "an auxiliary loss was computed"
    assert model.rows_seen["aux"] == {}
    assert np.isin(model.rows_seen["target"], view.train_users).all()
    assert np.isfinite(model.score(view.test_users)).all()
    # Control (so the assertions above can fail): the default model has auxiliary parameters.
    full = fitted[0]
    assert full.fit_info["aux_tasks"] == ["music", "podcast"] and full.fit_info["aux_params"] > 0


def _shift_group(item: str, n_groups: int = N_GROUPS) -> str:
    """``music:a2_4`` -> ``music:a3_4``: the same slot in the next taste group (a bijection on items)."""
    dom, raw = item.split(":")
    g, j = raw[1:].split("_")
    return f"{dom}:{raw[0]}{(int(g) + 1) % n_groups}_{j}"


@pytest.mark.parametrize("listed,changed", [("music", "podcast"), ("podcast", "music")])
def test_domains_restricts_the_inputs(listed, changed):
    """A user's scores do not move when their rows in an unlisted domain change (and do when it is read)."""
    t = scenario().tables()
    view_a, _ = view_of(t)
    has = view_a.source["podcast"][view_a.test_users].getnnz(axis=1) > 0
    users = list(view_a.users[view_a.test_users[has][:6]])
    inter = t["interactions"].copy()
    edit = inter["user"].isin(users) & (inter["domain"] == changed)
    inter.loc[edit, "item"] = inter.loc[edit, "item"].map(_shift_group)
    assert set(inter["item"]) == set(t["interactions"]["item"]), "the edit must not add items"
    view_b, _ = view_of(dict(t, interactions=inter))
    rows = np.flatnonzero(np.isin(view_a.users, users))
    assert list(view_a.users) == list(view_b.users)
    assert (view_a.source[changed][rows] != view_b.source[changed][rows]).nnz > 0, "the edit changed nothing"

    a = make(domains=[listed], max_epochs=3).fit(view_a)
    b = make(domains=[listed], max_epochs=3).fit(view_b)
    assert a.fit_info["domains"] == [listed] and a.fit_info["aux_tasks"] == [listed]
    assert set(a.fit_info["loss_weights"]) == {"target", listed} and len(a.net.bags) == 1
    assert a.net.bags[0].weight.shape[0] == len(view_a.source_items[listed])
    all_rows = np.arange(view_a.n_users)
    np.testing.assert_array_equal(a.score(all_rows), b.score(all_rows))
    # Control: the model reading every domain does see the edit.
    full_a, full_b = make(max_epochs=3).fit(view_a), make(max_epochs=3).fit(view_b)
    assert not np.allclose(full_a.score(rows), full_b.score(rows))


def test_domains_and_aux_off_bad_values():
    view, _, _ = planted_view()
    with pytest.raises(ValueError, match="'movies'"):
        make(domains=["music", "movies"]).fit(view)
    for bad in ("music", [], ["music", "music"], [1]):
        with pytest.raises(ValueError, match="domains"):
            make(domains=bad).fit(view)
    with pytest.raises(ValueError, match="aux_off"):
        make(aux_off="yes").fit(view)
    # Listing order does not matter: the view's order is kept.
    m = make(domains=["podcast", "music"], max_epochs=1).fit(view)
    assert m.fit_info["domains"] == ["music", "podcast"]


ABLATIONS = {"mtl-noaux": ("MTL (no auxiliary heads)", ("music",), {"aux_off": True}),
             "mtl-music": ("MTL (music only)", ("music", "podcast"), {"domains": ["music"]}),
             "mtl-podcast": ("MTL (second modality only)", ("music", "podcast"), {"domains": ["podcast"]})}


@pytest.mark.parametrize("key", sorted(ABLATIONS))
def test_ablation_specs(key):
    name, applies, config = ABLATIONS[key]
    base, spec = load_spec("mtl", paths.MODEL_CARDS), load_spec(key, paths.MODEL_CARDS)
    assert (spec.display_name, spec.applies_to, spec.config) == (name, applies, config)
    assert spec.tune_from == "mtl" and spec.search_space == {} and spec.family == base.family and spec.card.strip()
    assert registry.model_class(spec.cls) is MTL
    # The runner merges mtl's chosen config OVER the spec's: an ablation key must survive it.
    assert not set(spec.config) & set(base.search_space), "an ablation key would be overwritten by mtl's tuning"
    chosen = {"lr": 0.002, "aux_weight": 0.3, "dim": np.int64(64)}
    model = registry.build(spec, chosen, seed=1)
    for k, v in config.items():
        assert getattr(model.config, k) == v
    assert {f.name for f in dataclasses.fields(MTL.Config)} >= set(config)
    assert spec.applicable(["music", "podcast"]) and spec.applicable(["music"]) == (applies == ("music",))
