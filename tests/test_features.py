"""attach_features: rows aligned to the fold's own item orders, zeros where absent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmark.features.vectors import attach_features, read_vectors, write_vectors
from conftest import tables_from_records, view_of


def make_tables(rng_seed=0) -> dict:
    """10 users with music and podcast histories; users u0..u5 also read books (evaluable)."""
    rng = np.random.default_rng(rng_seed)
    source, target = {"music": [], "podcast": []}, []
    for u in range(10):
        source["music"] += [(f"u{u}", int(a), 4.0) for a in rng.choice(np.arange(20), size=5, replace=False)]
        source["podcast"] += [(f"u{u}", int(p), 4.0) for p in rng.choice(np.arange(8), size=2, replace=False)]
        if u < 6:
            target += [(f"u{u}", int(b), 4.0) for b in rng.choice(np.arange(12), size=4, replace=False)]
    t = tables_from_records(source, target, k=3, seed=0, valid_share=0.3, name="fx")
    t["interactions"] = t["interactions"].sample(frac=1.0, random_state=rng_seed).reset_index(drop=True)  # shuffled order
    return t


def fold_view(seed=0, fold=0):
    view, _ = view_of(make_tables(), seed, fold, min_support=1)
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
        got, mask = view.source_emb[d], view.source_emb_mask[d]
        assert got.dtype == np.float32 and got.shape == (len(view.source_items[d]), 3)
        for k, item in enumerate(view.source_items[d]):
            if item in ("music:3", "music:7"):
                assert not got[k].any() and not mask[k]
            else:
                assert list(got[k]) == num(item) and mask[k]
    text, tmask = view.item_text_emb, view.item_text_mask
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
        assert v.source_emb is None and v.source_emb_mask is None
        np.testing.assert_array_equal(v.item_text_emb[:, 1], [float(i.split(":")[1]) for i in v.catalog])
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
    assert view.item_text_emb is None and view.item_text_mask is None


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
    from benchmark.features.pretrain import pretrain_scenario

    t = make_tables()
    t["meta"]["source_domains"] = ["music"]
    sc = tmp_path / "fx"
    sc.mkdir()
    t["interactions"].to_parquet(sc / "interactions.parquet", index=False)
    t["items"].to_parquet(sc / "items.parquet", index=False)
    (sc / "meta.json").write_text(json.dumps(t["meta"]))
    pretrain_scenario(sc, tmp_path / "pre", dim=4, prepared_root=tmp_path)
    view, _ = view_of(t)
    attach_features(view, tmp_path / "pre", None)
    assert list(view.source_emb) == ["music"]
    ids, mat = read_vectors(tmp_path / "pre" / "music.parquet")
    got = view.source_emb["music"]
    for k, item in enumerate(view.source_items["music"]):
        np.testing.assert_array_equal(got[k], mat[ids.get_loc(item)])
