"""attach_features: rows aligned to the fold's own item orders, zeros where absent."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from benchmark.features import attach_features, read_vectors, write_vectors
from benchmark.protocol import build_fold, deal_folds


def make_tables(rng_seed=0):
    """10 users with music and podcast histories; users u0..u5 also read books."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for u in range(10):
        for a in rng.choice(np.arange(20), size=5, replace=False):
            rows.append((f"u{u}", f"music:{a}", "music"))
        for p in rng.choice(np.arange(8), size=2, replace=False):
            rows.append((f"u{u}", f"podcast:{p}", "podcast"))
        if u < 6:
            for b in rng.choice(np.arange(12), size=4, replace=False):
                rows.append((f"u{u}", f"book:{b}", "book"))
    inter = pd.DataFrame(rows, columns=["user", "item", "domain"])
    inter["value"] = np.float32(4.0)
    inter["timestamp"] = pd.array([pd.NA] * len(inter), dtype="Int64")
    inter["positive"] = True
    inter = inter.sample(frac=1.0, random_state=rng_seed).reset_index(drop=True)  # shuffled order
    users = pd.DataFrame({"user": [f"u{u}" for u in range(10)]})
    users["has_music"], users["has_podcast"] = True, True
    users["has_book"] = users["user"].isin([f"u{u}" for u in range(6)])
    users["cohort"], users["evaluable"] = "m&p", users["has_book"]
    folds = deal_folds(users.loc[users["evaluable"], "user"].to_numpy(), k=3, seeds=[0], valid_share=0.3)
    items = pd.DataFrame({"item": sorted(inter["item"].unique())})
    items["domain"] = items["item"].str.split(":").str[0]
    items["title"] = items["creator"] = items["text"] = ""
    meta = {"name": "fx", "source_domains": ["music", "podcast"], "target_domain": "book", "semi_synthetic": False}
    return inter, users, folds, items, meta


def fold_view(seed=0, fold=0):
    inter, users, folds, items, meta = make_tables()
    view, _ = build_fold(inter, users, folds, items, meta, seed, fold, min_support=1)
    return view


def num(item: str) -> float:
    """A vector that names its item: [domain code, id, 1]."""
    d, i = item.split(":")
    return [{"music": 1.0, "podcast": 2.0, "book": 3.0}[d], float(i), 1.0]


def write_shuffled(path, ids, seed):
    ids = list(np.random.default_rng(seed).permutation(np.array(ids, dtype=object)))
    write_vectors(path, ids, np.array([num(i) for i in ids], dtype=np.float32))


def test_rows_follow_view_orders_with_zeros_for_missing(tmp_path):
    view = fold_view()
    pre, emb = tmp_path / "pre", tmp_path / "emb"
    # music: every artist except music:3 and music:7, plus one the view never saw.
    music_ids = [f"music:{a}" for a in range(20) if a not in (3, 7)] + ["music:99"]
    write_shuffled(pre / "music.parquet", music_ids, 1)
    write_shuffled(pre / "podcast.parquet", [f"podcast:{p}" for p in range(8)], 2)
    # text for even-numbered books only (the catalog is a fold-dependent subset of books).
    write_shuffled(emb / "items.parquet", [f"book:{b}" for b in range(0, 12, 2)], 3)
    attach_features(view, pre, emb)

    for d in ("music", "podcast"):
        got, mask = view.extras["source_emb"][d], view.extras["source_emb_mask"][d]
        assert got.dtype == np.float32 and got.shape == (len(view.source_items[d]), 3)
        for k, item in enumerate(view.source_items[d]):
            if item in ("music:3", "music:7"):
                assert not got[k].any() and not mask[k]
            else:
                assert list(got[k]) == num(item) and mask[k]
    text, tmask = view.extras["item_text_emb"], view.extras["item_text_mask"]
    assert text.shape == (view.n_catalog, 3) and len(view.catalog) > 3
    for k, item in enumerate(view.catalog):
        even = int(item.split(":")[1]) % 2 == 0
        assert tmask[k] == even
        assert (list(text[k]) == num(item)) if even else not text[k].any()


def test_different_folds_get_their_own_alignment(tmp_path):
    write_shuffled(tmp_path / "emb" / "items.parquet", [f"book:{b}" for b in range(12)], 4)
    catalogs = []
    for fold in range(3):
        v = attach_features(fold_view(0, fold), None, tmp_path / "emb")
        assert "source_emb" not in v.extras
        np.testing.assert_array_equal(v.extras["item_text_emb"][:, 1], [float(i.split(":")[1]) for i in v.catalog])
        catalogs.append(tuple(v.catalog))
    assert len(set(catalogs)) > 1  # the test would be weak if all folds had one catalog


def test_missing_domain_file_and_wrong_scenario_are_errors(tmp_path):
    view = fold_view()
    write_shuffled(tmp_path / "pre" / "music.parquet", ["music:1"], 0)
    with pytest.raises(FileNotFoundError, match="podcast"):
        attach_features(view, tmp_path / "pre", None)
    write_shuffled(tmp_path / "pre" / "podcast.parquet", ["podcast:1"], 0)
    (tmp_path / "pre" / "info.json").write_text(json.dumps({"scenario": "other-scenario"}))
    with pytest.raises(ValueError, match="other-scenario"):
        attach_features(view, tmp_path / "pre", None)


def test_empty_embed_output_sets_no_text_features(tmp_path):
    write_vectors(tmp_path / "emb" / "items.parquet", [], np.zeros((0, 0), dtype=np.float32))
    view = attach_features(fold_view(), None, tmp_path / "emb")
    assert "item_text_emb" not in view.extras and "item_text_mask" not in view.extras


def test_loading_is_cached_and_sees_rewrites(tmp_path):
    f = tmp_path / "v.parquet"
    write_vectors(f, ["music:1", "music:0"], np.array([[1, 1], [0, 0]], dtype=np.float32))
    a = read_vectors(f)
    assert read_vectors(f)[1] is a[1]  # second read is the cached object
    assert not a[1].flags.writeable  # shared cache cannot be mutated by a model
    write_vectors(f, ["music:1", "music:0"], np.array([[5, 5], [0, 0]], dtype=np.float32))
    os.utime(f, ns=(1, 1))  # mtime differs even on coarse-clock filesystems
    ids, mat = read_vectors(f)
    assert list(ids) == ["music:0", "music:1"] and mat[1, 0] == 5


def test_pretrain_output_plugs_in(tmp_path):
    """End to end on the fixture: pretrain writes files that attach to a fold."""
    from benchmark.pretrain import pretrain_scenario

    inter, users, folds, items, meta = make_tables()
    sc = tmp_path / "fx"
    sc.mkdir()
    inter.to_parquet(sc / "interactions.parquet", index=False)
    items.to_parquet(sc / "items.parquet", index=False)
    meta["source_domains"] = ["music"]
    (sc / "meta.json").write_text(json.dumps(meta))
    pretrain_scenario(sc, tmp_path / "pre", dim=4, prepared_root=tmp_path)
    view, _ = build_fold(inter, users, folds, items, meta, 0, 0)
    attach_features(view, tmp_path / "pre", None)
    ids, mat = read_vectors(tmp_path / "pre" / "music.parquet")
    got = view.extras["source_emb"]["music"]
    for k, item in enumerate(view.source_items["music"]):
        np.testing.assert_array_equal(got[k], mat[ids.get_loc(item)])


def test_built_scenario_outputs_attach_if_present():
    """On the built data (skipped when absent): every interacted source item has a vector."""
    from benchmark import paths
    from benchmark.protocol import load_fold

    built = [p.name for p in sorted(paths.SCENARIOS.glob("*")) if (paths.PRETRAIN / p.name / "info.json").exists()]
    if not built:
        pytest.skip("no built scenario with pretrain outputs (run `dvc repro`)")
    name = "mpa-linked-rho1" if "mpa-linked-rho1" in built else built[0]
    view, _ = load_fold(paths.SCENARIOS / name, 0, 0)
    embed_dir = paths.EMBED / name if (paths.EMBED / name / "items.parquet").exists() else None
    attach_features(view, paths.PRETRAIN / name, embed_dir)
    for d in view.source_domains:
        assert view.extras["source_emb"][d].shape[0] == len(view.source_items[d])
        assert view.extras["source_emb_mask"][d].all(), f"{name}/{d}: interacted items without a vector"
    if "item_text_emb" in view.extras:
        assert view.extras["item_text_emb"].shape[0] == view.n_catalog
