"""The Hugging Face export (benchmark/scenarios/hf.py): a folder ``datasets.load_dataset`` opens offline.

Each test can fail: a wrong ``configs`` block makes ``load_dataset`` refuse or return
other rows; a split rule that leaks a cold user's book rows into ``train`` fails the
leakage assertion; a non-deterministic writer fails the byte comparison.
"""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
import pytest
import yaml

from benchmark.scenarios.hf import export_hf, fold_frames
from conftest import planted_scenario, write_scenario


def _card(name: str, semi: bool) -> dict:
    return {"name": name, "source_domains": ["music", "podcast"], "target_domain": "book", "semi_synthetic": semi,
            "banner": "SEMI-SYNTHETIC: test fixture" if semi else "", "min_support": 1, "positive_threshold": 7,
            "cohorts": {"m&p": 10}, "cohorts_evaluable": {"m&p": 8},
            "sources": [{"source": "fixture", "licence": "CC0 test", "upstream": "none"}], "scenario_hash": "abc"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    tables = planted_scenario(n_users=60, n_groups=3, k=3).tables()
    folder = write_scenario(tables, root / "scenarios")
    card = root / "card.json"
    card.write_text(json.dumps(_card(tables["meta"]["name"], True)))
    info = export_hf(folder, card, root / "hf" / "fixture")
    return tables, folder, card, root / "hf" / "fixture", info


def test_load_dataset_opens_every_config_offline(exported, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tables, _, _, out, info = exported
    for t in ("interactions", "items", "users", "folds"):
        ds = datasets.load_dataset(str(out), t, cache_dir=str(out.parent / ".cache"))
        assert ds["train"].num_rows == len(tables[t]) == info["rows"][t]["train"]
    fold = datasets.load_dataset(str(out), "fold-s0-f0", cache_dir=str(out.parent / ".cache"))
    assert set(fold) == {"train", "validation", "test"}
    n = {s: fold[s].num_rows for s in fold}
    assert n == info["rows"]["fold-s0-f0"]
    # every interaction is in exactly one split
    assert sum(n.values()) == len(tables["interactions"])


def test_split_rule_keeps_cold_users_book_rows_out_of_train(exported):
    tables, *_ = exported
    inter, folds = tables["interactions"], tables["folds"]
    parts = fold_frames(inter, folds, 0, 0)
    f = folds[(folds["seed"] == 0) & (folds["fold"] == 0)]
    cold = set(f.loc[f["role"].isin(["valid", "test"]), "user"])
    train = parts["train"]
    assert not ((train["domain"] == "book") & train["user"].isin(cold)).any()
    # cold users keep their source rows (their input)
    assert set(train.loc[train["domain"] != "book", "user"]) & cold
    assert set(parts["test"]["user"]) <= set(f.loc[f["role"] == "test", "user"])
    assert (parts["test"]["domain"] == "book").all() and len(parts["test"]) > 0


def test_readme_front_matter_lists_configs_licence_and_flag(exported):
    _, _, _, out, _ = exported
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    names = [c["config_name"] for c in meta["configs"]]
    assert names[:4] == ["interactions", "items", "users", "folds"]
    assert {"fold-s0-f0", "fold-s0-f1", "fold-s0-f2"} <= set(names)
    assert "semi-synthetic" in meta["tags"] and "CC0 test" in meta["license_details"]
    assert "SEMI-SYNTHETIC" in text.split("---\n", 2)[2]
    for c in meta["configs"]:
        for f in c["data_files"]:
            assert (out / f["path"]).is_file()


def test_export_is_deterministic(exported, tmp_path):
    _, folder, card, out, _ = exported
    again = tmp_path / "again"
    export_hf(folder, card, again)

    def digest(root):
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file() and ".cache" not in p.parts}

    assert digest(out) == digest(again)


def test_missing_table_is_a_clear_error(tmp_path):
    (tmp_path / "s").mkdir()
    with pytest.raises(FileNotFoundError, match="interactions.parquet"):
        export_hf(tmp_path / "s", tmp_path / "card.json", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.built
def test_built_scenarios_open_with_load_dataset(monkeypatch):
    """Every scenario exported by the pipeline (data/hf/<name>) opens and matches its parquet."""
    datasets = pytest.importorskip("datasets")
    from benchmark.config import paths
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = paths.DATA / "hf"
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    assert names, f"no exported scenario under {root}"
    for name in names:
        inter = pd.read_parquet(paths.SCENARIOS / name / "interactions.parquet")
        ds = datasets.load_dataset(str(root / name), "interactions", cache_dir=os.path.join(str(root), ".cache"))
        assert ds["train"].num_rows == len(inter), name
