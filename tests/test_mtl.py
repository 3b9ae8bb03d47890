"""Tests of the multi-task transfer model (benchmark/models/mtl.py).

The fixture is a hand-made scenario built by the real ``build_fold``: training users
of taste group g play the group's signature artist ``a{g}_0`` (plus other artists of
the group) and all read book ``x{g}``; a popular book ``P`` is read by most training
users of every group. Cold users (valid/test roles) play only ``a{g}_0`` and one noise
artist; their truth is ``x{g}``. Popularity alone would put ``P`` first for everyone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from benchmark.models.base import make_config
from benchmark.models.mtl import MTL, mask_split
from benchmark.protocol import build_fold
from benchmark.schema import cohort_of

N_GROUPS = 5
SMALL = dict(dim=16, hidden=32, batch_size=32, max_epochs=25, patience=5)


def planted_frames(seed: int = 0, per_group: int = 30, cold_per_group: int = 6) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    rows, users, roles, group = [], [], [], {}

    def add(u, item, dom, v):
        rows.append((u, f"{dom}:{item}", dom, float(v), pd.NA, True))

    for g in range(N_GROUPS):
        for j in range(per_group + cold_per_group):
            cold = j >= per_group
            u = f"{'c' if cold else 't'}{g}_{j:02d}"
            group[u] = g
            add(u, f"a{g}_0", "music", rng.integers(10, 50))
            add(u, f"noise{rng.integers(15)}", "music", 1)
            has_p = not cold and j % 2 == 0
            if has_p:
                add(u, f"p{g}", "podcast", 3)
                add(u, f"pn{rng.integers(6)}", "podcast", 1)
            if not cold:
                for it in rng.choice(np.arange(1, 5), size=2, replace=False):
                    add(u, f"a{g}_{it}", "music", rng.integers(5, 30))
                add(u, f"x{g}", "book", 5)
                if rng.random() < 0.8:
                    add(u, "P", "book", 5)
                if rng.random() < 0.4:
                    add(u, f"r{rng.integers(20)}", "book", 4)
            else:
                add(u, f"x{g}", "book", 5)
                roles.append((u, "test" if j < per_group + cold_per_group - 2 else "valid"))
            users.append(dict(user=u, has_music=True, has_podcast=has_p, has_book=True,
                              cohort=cohort_of(True, has_p), evaluable=cold))
    for j in range(20):  # source-only users: auxiliary data, never in the target task
        u = f"s{j:02d}"
        add(u, f"a{j % N_GROUPS}_0", "music", 3)
        add(u, f"a{j % N_GROUPS}_1", "music", 3)
        users.append(dict(user=u, has_music=True, has_podcast=False, has_book=False, cohort=cohort_of(True, False), evaluable=False))
    inter = pd.DataFrame(rows, columns=["user", "item", "domain", "value", "timestamp", "positive"])
    inter = inter.drop_duplicates(["user", "item"]).reset_index(drop=True)
    inter["value"] = inter["value"].astype("float32")
    inter["timestamp"] = inter["timestamp"].astype("Int64")
    folds = pd.DataFrame(roles, columns=["user", "role"])
    folds.insert(0, "fold", 0)
    folds.insert(0, "seed", 0)
    items = pd.DataFrame({"item": np.sort(inter["item"].unique())})
    items["domain"] = items["item"].str.split(":").str[0]
    items["title"] = items["item"]
    items["creator"] = ""
    items["text"] = items["item"]
    meta = {"name": "mtl-planted", "source_domains": ["music", "podcast"], "target_domain": "book",
            "semi_synthetic": True, "params": {}, "notes": "test fixture"}
    frames = {"interactions": inter, "users": pd.DataFrame(users), "folds": folds, "items": items, "meta": meta}
    return frames, group


def planted_view():
    f, group = planted_frames()
    view, truth = build_fold(f["interactions"], f["users"], f["folds"], f["items"], f["meta"], 0, 0)
    return view, truth, group


def make(seed: int = 0, **kw) -> MTL:
    return MTL(make_config(MTL.Config, {**SMALL, **kw}), seed=seed)


@pytest.fixture(scope="module")
def fitted():
    view, truth, group = planted_view()
    return make().fit(view), view, group


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
    model, view, group = fitted
    rows = view.test_users
    g = np.array([group[u] for u in view.users[rows]])
    u0, u1 = rows[g == 0][0], rows[g == 1][0]
    s = model.score(np.array([u0, u1]))
    assert not np.array_equal(np.argsort(-s[0], kind="stable"), np.argsort(-s[1], kind="stable"))


def test_planted_book_in_top3_for_cold_users(fitted):
    model, view, group = fitted
    rows = view.test_users
    top3 = np.argsort(-model.score(rows), axis=1, kind="stable")[:, :3]
    for r, top in zip(rows, top3):
        want = view.catalog.get_loc(f"book:x{group[view.users[r]]}")
        assert want in top, f"user {view.users[r]}: top3 {list(view.catalog[top])}"
    # Popularity alone would miss: the popular book outranks every group book.
    pop = view.popularity()
    assert pop[view.catalog.get_loc("book:P")] > max(pop[view.catalog.get_loc(f"book:x{g}")] for g in range(N_GROUPS))


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
    view.extras["source_emb"] = emb
    model = make(train_source_emb=False, max_epochs=2).fit(view)
    for k, d in enumerate(view.source_domains):
        np.testing.assert_array_equal(model.net.bags[k].weight.detach().numpy(), emb[d])
    view.extras["source_emb"] = {"music": emb["music"][:-1], "podcast": emb["podcast"]}
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
    from benchmark import paths
    from benchmark.specs import load_spec

    spec = load_spec("mtl", paths.MODEL_CARDS)
    assert spec.cls == "mtl" and spec.family == "transfer" and "2601.02306" in spec.card
    fields = {f.name for f in __import__("dataclasses").fields(MTL.Config)}
    assert set(spec.search_space) <= fields
    model = spec.build({"lr": 0.002, "aux_weight": 0.3, "dim": np.int64(64)}, seed=1)
    assert isinstance(model, MTL) and model.config.aux_weight == 0.3


def test_single_source_domain_music_only():
    f, group = planted_frames()
    inter = f["interactions"][f["interactions"]["domain"] != "podcast"]
    meta = {**f["meta"], "source_domains": ["music"]}
    view, _ = build_fold(inter, f["users"], f["folds"], f["items"], meta, 0, 0)
    model = make(max_epochs=3).fit(view)
    assert set(model.fit_info["loss_weights"]) == {"target", "music"}
    assert np.isfinite(model.score(view.test_users)).all()
