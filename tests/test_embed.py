"""The embed stage: cache, order, model errors, and one real encoding with the packaged model."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from benchmark.features import embed
from benchmark.features.vectors import read_vectors


class CountingEncoder:
    """Deterministic stand-in for SentenceTransformer: vector from the text's hash."""

    def __init__(self, dim: int = 8):
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size=32, show_progress_bar=None, convert_to_numpy=True, normalize_embeddings=False):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self.dim)
            out.append(v / np.linalg.norm(v) if normalize_embeddings else v)
        return np.array(out, dtype=np.float32)

    @property
    def n_encoded(self) -> int:
        return sum(len(c) for c in self.calls)


def write_scenario(folder, items: pd.DataFrame) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    items.to_parquet(folder / "items.parquet", index=False)
    meta = {"name": folder.name, "source_domains": ["music"], "target_domain": "book", "semi_synthetic": False}
    (folder / "meta.json").write_text(json.dumps(meta))


def book_items(order=None) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "item": ["book:3", "book:1", "book:2", "book:4", "music:1", "book:5"],
            "domain": ["book", "book", "book", "book", "music", "book"],
            "title": ["c", "a", "b", "d", "m", "e"],
            "creator": ["x"] * 6,
            "text": ["Gamma tale", "Alpha story", "Beta saga", "", "Some band", "Alpha story"],
        }
    )
    return df.iloc[order].reset_index(drop=True) if order is not None else df


def test_second_run_encodes_nothing_and_never_loads_the_model(tmp_path, monkeypatch):
    sc = tmp_path / "sc"
    write_scenario(sc, book_items())
    enc = CountingEncoder()
    info1 = embed.embed_scenario(sc, tmp_path / "out1", cache_dir=tmp_path / "cache", encoder=enc)
    # 4 books with text, 3 distinct texts (book:1 and book:5 share one); music is not a target domain.
    assert info1["n_items"] == 4
    assert enc.n_encoded == 3 and info1["n_encoded"] == 3 and info1["n_from_cache"] == 0

    def no_model(name):
        raise AssertionError("model loaded although every text was cached")

    monkeypatch.setattr(embed, "load_encoder", no_model)
    info2 = embed.embed_scenario(sc, tmp_path / "out2", cache_dir=tmp_path / "cache")
    assert info2["n_encoded"] == 0 and info2["n_from_cache"] == 3
    assert (tmp_path / "out1" / "items.parquet").read_bytes() == (tmp_path / "out2" / "items.parquet").read_bytes()
    # info.json holds neither wall time nor cache hits (either would change the stage's DVC hash
    # between a cold and a warm build of the same vectors): byte-identical
    assert (tmp_path / "out1" / "info.json").read_bytes() == (tmp_path / "out2" / "info.json").read_bytes()


def test_changed_text_is_the_only_one_re_encoded(tmp_path):
    sc = tmp_path / "sc"
    write_scenario(sc, book_items())
    cache = tmp_path / "cache"
    embed.embed_scenario(sc, tmp_path / "o1", cache_dir=cache, encoder=CountingEncoder())
    items = book_items()
    items.loc[items["item"] == "book:2", "text"] = "Beta saga, revised edition"
    write_scenario(sc, items)
    enc = CountingEncoder()
    info = embed.embed_scenario(sc, tmp_path / "o2", cache_dir=cache, encoder=enc)
    assert enc.calls == [["Beta saga, revised edition"]]
    assert info["n_encoded"] == 1 and info["n_from_cache"] == 2


def test_cache_is_per_model(tmp_path):
    sc = tmp_path / "sc"
    write_scenario(sc, book_items())
    embed.embed_scenario(sc, tmp_path / "o1", model_name="model-a", cache_dir=tmp_path / "c", encoder=CountingEncoder())
    enc = CountingEncoder()
    embed.embed_scenario(sc, tmp_path / "o2", model_name="org/model-b", cache_dir=tmp_path / "c", encoder=enc)
    assert enc.n_encoded == 3


def test_output_is_sorted_and_rows_match_their_text(tmp_path):
    outs = []
    for k, order in enumerate([None, [5, 3, 0, 4, 2, 1]]):
        sc = tmp_path / f"sc{k}"
        write_scenario(sc, book_items(order))
        embed.embed_scenario(sc, tmp_path / f"o{k}", cache_dir=tmp_path / f"c{k}", encoder=CountingEncoder())
        outs.append((tmp_path / f"o{k}" / "items.parquet").read_bytes())
    ids, mat = read_vectors(tmp_path / "o1" / "items.parquet")
    assert list(ids) == ["book:1", "book:2", "book:3", "book:5"]
    ref = CountingEncoder().encode(["Alpha story", "Beta saga", "Gamma tale", "Alpha story"], normalize_embeddings=True)
    np.testing.assert_allclose(mat, ref, rtol=1e-6)
    assert outs[0] == outs[1]


def test_scenario_without_text_writes_empty_output(tmp_path, monkeypatch):
    sc = tmp_path / "sc"
    items = book_items()
    items["text"] = ""
    write_scenario(sc, items)
    monkeypatch.setattr(embed, "load_encoder", lambda name: (_ for _ in ()).throw(AssertionError("loaded")))
    info = embed.embed_scenario(sc, tmp_path / "o", cache_dir=tmp_path / "c")
    assert info["n_items"] == 0 and "note" in info
    ids, mat = read_vectors(tmp_path / "o" / "items.parquet")
    assert len(ids) == 0


def test_unloadable_model_name_gives_a_clear_error(tmp_path, monkeypatch):
    import sentence_transformers

    def offline(name, device=None):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {name}")

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", offline)
    sc = tmp_path / "sc"
    write_scenario(sc, book_items())
    with pytest.raises(embed.EmbedModelError) as err:
        embed.embed_scenario(sc, tmp_path / "o", model_name="BAAI/bge-small-en-v1.5", cache_dir=tmp_path / "c")
    msg = str(err.value)
    assert "BAAI/bge-small-en-v1.5" in msg and "network" in msg and embed.PACKAGED_MODEL in msg
    assert not (tmp_path / "o" / "items.parquet").exists()


def test_packaged_model_smoke(tmp_path):
    """The real default model, offline, on three short texts (load takes 4-15 s)."""
    sc = tmp_path / "sc"
    items = pd.DataFrame(
        {
            "item": ["book:a", "book:b", "book:c"],
            "domain": ["book"] * 3,
            "title": ["a", "b", "c"],
            "creator": [""] * 3,
            "text": [
                "A detective hunts a murderer in Victorian London",
                "A murder mystery solved by a London detective",
                "Vegan cookbook with quick weeknight recipes",
            ],
        }
    )
    write_scenario(sc, items)
    info = embed.embed_scenario(sc, tmp_path / "o", cache_dir=tmp_path / "c")
    assert info["dim"] == 384 and info["n_encoded"] == 3
    ids, mat = read_vectors(tmp_path / "o" / "items.parquet")
    np.testing.assert_allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-4)
    sim = mat @ mat.T
    assert sim[0, 1] > sim[0, 2] + 0.1
