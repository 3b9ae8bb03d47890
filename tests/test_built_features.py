"""Checks on the built features (data/pretrain, data/embed) and prepared data (marker ``built``).

Run with ``pytest -m built`` after ``dvc repro``; a missing output is a failure. Two
places a cold user's target data could leak into learning are the pretrained
source-domain towers and the text features: the towers must hold exactly the scenario's
source items (never a target item), the text vectors only the scenario's target items.
Both must attach to every fold of every scenario listed in params.yaml.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.config import paths
from benchmark.config.params import load_params
from benchmark.features.vectors import attach_features, read_vectors
from benchmark.scenarios import linked
from benchmark.scenarios.protocol import load_fold
from conftest import load_built
from test_linkage import _axes, assert_null_and_positive_control

pytestmark = pytest.mark.built

PARAMS = load_params(paths.PARAMS)
SCENARIOS = list(PARAMS.scenarios)


def stage_dir(root, name: str, stage: str, files: tuple[str, ...] = ("info.json",)):
    folder = root / name
    missing = [f for f in files if not (folder / f).exists()]
    assert not missing, f"{stage} output of {name}: {missing} absent under {folder}; run `dvc repro` (stage {stage})"
    info = json.loads((folder / "info.json").read_text())
    assert info.get("scenario") == name, f"{folder} holds features of {info.get('scenario')!r}"
    return folder


@pytest.mark.parametrize("name", SCENARIOS)
def test_pretrained_towers_hold_source_items_only(name):
    meta = load_built(name)["meta"]
    folder = stage_dir(paths.PRETRAIN, name, "pretrain")
    files = sorted(folder.glob("*.parquet"))
    assert {f.stem for f in files} == set(meta["source_domains"])
    for f in files:
        items = pd.read_parquet(f, columns=["item"])["item"]
        assert items.str.startswith(f"{f.stem}:").all(), f"{f}: holds items of another domain"
        assert not items.str.startswith(f"{meta['target_domain']}:").any()


@pytest.mark.parametrize("name", SCENARIOS)
def test_pretrained_vectors_cover_exactly_the_scenario_source_items(name):
    """One vector row per source item of the scenario, and no target item anywhere."""
    t = load_built(name)
    folder = stage_dir(paths.PRETRAIN, name, "pretrain")
    inter = t["interactions"]
    for domain in t["meta"]["source_domains"]:
        items = set(pd.read_parquet(folder / f"{domain}.parquet", columns=["item"]).item)
        assert items == set(inter[inter.domain == domain].item), f"{name}/{domain}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_text_features_cover_only_target_items_with_text(name):
    """The embed stage encodes the scenario's target items with text, nothing else."""
    t = load_built(name)
    folder = stage_dir(paths.EMBED, name, "embed", ("info.json", "items.parquet"))
    info = json.loads((folder / "info.json").read_text())
    target = t["meta"]["target_domain"]
    assert list(info["domains"]) == [target], f"{name}: text vectors of domains {info['domains']}"
    ids, mat = read_vectors(folder / "items.parquet")
    items = t["items"]
    with_text = items[(items["domain"] == target) & (items["text"].fillna("").str.strip() != "")]
    assert set(ids) <= set(items["item"]), f"{name}: text vectors of items outside the scenario"
    assert set(ids) == set(with_text["item"]), f"{name}: text vectors must cover exactly the {target} items with text"
    assert len(ids) == info["n_items"]
    if len(ids):
        np.testing.assert_allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("name", SCENARIOS)
def test_features_attach_to_every_fold(name):
    """Every interacted source item has a vector; text rows follow the fold's catalog only."""
    folder = paths.SCENARIOS / name
    t = load_built(name)
    pre = stage_dir(paths.PRETRAIN, name, "pretrain")
    emb = stage_dir(paths.EMBED, name, "embed", ("info.json", "items.parquet"))
    text_ids, _ = read_vectors(emb / "items.parquet")
    min_support = PARAMS.scenario(name).min_support
    for seed in PARAMS.protocol.seeds:
        for fold in range(PARAMS.protocol.k):
            view, _ = load_fold(folder, seed, fold, min_support, tables=t)
            attach_features(view, pre, emb)
            for d in view.source_domains:
                assert view.source_emb[d].shape[0] == len(view.source_items[d])
                assert view.source_emb_mask[d].all(), f"{name} s{seed} f{fold}/{d}: interacted items without a vector"
            if len(text_ids):
                assert view.item_text_emb.shape[0] == view.n_catalog == len(view.item_text_mask)
                np.testing.assert_array_equal(view.item_text_mask, view.catalog.isin(text_ids))
            else:
                assert view.item_text_emb is None


def test_linking_agreement_real_prepared_data():
    """The linkage claim on the real prepared histories: chance at rho=0, far above at rho=1."""
    linked_names = [n for n, s in PARAMS.scenarios.items() if s.builder == "linked"]
    assert linked_names, "params.yaml lists no linked scenario"
    spec = PARAMS.scenario(linked_names[0]).model_dump()
    for s in (spec["music_source"], spec["podcast_source"], spec["book_source"]):
        p = paths.PREPARED / s / "interactions.parquet"
        assert p.exists(), f"{p} absent; run `dvc repro` (stage prepare)"
    h = linked.load_histories(spec, paths.PREPARED)
    axes = linked.pools_and_axes(h, spec)
    lk = {rho: linked.link(axes, rho, spec["podcast_share"], spec["seed"]) for rho in (0.0, 1.0)}
    assert (lk[0.0]["domain"] == "music").sum() == len(axes["music"])
    for dom in ("book", "podcast"):
        x0, y0 = _axes(lk[0.0], dom)
        x1, y1 = _axes(lk[1.0], dom)
        assert_null_and_positive_control(x0, y0, x1, y1, f"real music-{dom}")
