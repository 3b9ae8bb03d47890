"""The pretrain stage: source-only inputs, determinism, planted structure, the podcast graph."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmark.features.vectors import read_vectors
from benchmark.features.pretrain import pretrain_scenario


def inter_rows(pairs, domain, value=3.0):
    return [
        {"user": u, "item": f"{domain}:{i}", "domain": domain, "value": float(value), "timestamp": pd.NA, "positive": True}
        for u, i in pairs
    ]


def write_scenario(folder, rows, items, source_domains=("music",)):
    folder.mkdir(parents=True, exist_ok=True)
    inter = pd.DataFrame(rows)
    inter["value"] = inter["value"].astype("float32")
    inter["timestamp"] = inter["timestamp"].astype("Int64")
    inter.to_parquet(folder / "interactions.parquet", index=False)
    items = pd.DataFrame(items)
    for c in ("title", "creator", "text"):
        if c not in items:
            items[c] = ""
    items[["item", "domain", "title", "creator", "text"]].to_parquet(folder / "items.parquet", index=False)
    meta = {"name": folder.name, "source_domains": list(source_domains), "target_domain": "book", "semi_synthetic": False}
    (folder / "meta.json").write_text(json.dumps(meta))


def planted_music(n_per_group=12, seed=0):
    """Group 1 listens to artists 51 and 52, group 2 to 60 and 61; everyone samples noise artists."""
    rng = np.random.default_rng(seed)
    pairs = []
    for g, liked in enumerate([(51, 52), (60, 61)]):
        for k in range(n_per_group):
            u = f"u{g}_{k}"
            pairs += [(u, a) for a in liked]
            pairs += [(u, int(a)) for a in rng.choice(np.arange(100, 120), size=3, replace=False)]
    return pairs


def music_scenario(folder, book_pairs):
    rows = inter_rows(planted_music(), "music") + inter_rows(book_pairs, "book", value=5.0)
    items = [{"item": f"music:{a}", "domain": "music"} for a in [51, 52, 60, 61, *range(100, 120), 999]]
    items += [{"item": f"book:{b}", "domain": "book", "text": "a book"} for b in sorted({b for _, b in book_pairs})]
    write_scenario(folder, rows, items)


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_co_listened_artists_are_closer_than_unrelated_ones(tmp_path):
    music_scenario(tmp_path / "sc", [("u0_0", 51)])
    info = pretrain_scenario(tmp_path / "sc", tmp_path / "out", dim=8, seed=0, prepared_root=tmp_path / "none")
    ids, mat = read_vectors(tmp_path / "out" / "music.parquet")
    v = {i: mat[k] for k, i in enumerate(ids)}
    assert cos(v["music:51"], v["music:52"]) > cos(v["music:51"], v["music:60"]) + 0.3
    assert cos(v["music:60"], v["music:61"]) > cos(v["music:61"], v["music:52"]) + 0.3
    # A catalog-only artist nobody played gets a zero row, not noise.
    assert not v["music:999"].any()
    assert "TruncatedSVD" in info["domains"]["music"]["method"]
    assert info["domains"]["music"]["n_items"] == 25 and info["domains"]["music"]["n_with_vector"] == 24


def test_target_rows_never_reach_the_music_tower(tmp_path):
    # book:51 shares the id suffix of music:51, and only some users read books.
    music_scenario(tmp_path / "a", [("u0_0", 51), ("u1_3", 52)])
    music_scenario(tmp_path / "b", [("u0_0", 60), ("u0_1", 51), ("u1_5", 7), ("bookworm", 51)])
    pretrain_scenario(tmp_path / "a", tmp_path / "oa", dim=8, prepared_root=tmp_path / "none")
    pretrain_scenario(tmp_path / "b", tmp_path / "ob", dim=8, prepared_root=tmp_path / "none")
    ids, _ = read_vectors(tmp_path / "oa" / "music.parquet")
    assert all(i.startswith("music:") for i in ids) and "book:51" not in set(ids)
    assert sorted((tmp_path / "oa").glob("*.parquet")) == [tmp_path / "oa" / "music.parquet"]
    # Different book data, identical music tower.
    assert (tmp_path / "oa" / "music.parquet").read_bytes() == (tmp_path / "ob" / "music.parquet").read_bytes()


def test_mislabelled_rows_and_target_as_source_are_refused(tmp_path):
    rows = inter_rows(planted_music(), "music")
    rows.append({"user": "u0_0", "item": "book:51", "domain": "music", "value": 5.0, "timestamp": pd.NA, "positive": True})
    write_scenario(tmp_path / "bad", rows, [{"item": "music:51", "domain": "music"}])
    with pytest.raises(ValueError, match="not prefixed 'music:'"):
        pretrain_scenario(tmp_path / "bad", tmp_path / "o", dim=4, prepared_root=tmp_path / "none")
    write_scenario(tmp_path / "tgt", inter_rows(planted_music(), "music"), [{"item": "music:51", "domain": "music"}], source_domains=("music", "book"))
    with pytest.raises(ValueError, match="target domain"):
        pretrain_scenario(tmp_path / "tgt", tmp_path / "o2", dim=4, prepared_root=tmp_path / "none")


def podcast_scenario(folder, prepared, cosub_pairs):
    """Podcasts 1..6 (itunes-style ids). 1-2 and 3-4 are co-subscribed, never co-reviewed.

    5 has reviews only; 6 has neither. The graph names 4 by title, and holds an
    outside podcast X (not in the scenario) linking 1 and 2 further.
    """
    rev = [("r1", 1), ("r2", 3), ("r3", 5), ("r4", 5), ("r4", 2)]
    rows = inter_rows(planted_music(), "music") + inter_rows(rev, "podcast", value=5.0)
    titles = {1: "Crime Junkie", 2: "Serial", 3: "The Daily", 4: "Up First", 5: "Reviews Only", 6: "Nobody Listens"}
    items = [{"item": f"music:{a}", "domain": "music"} for a in [51, 52, 60, 61]]
    items += [{"item": f"podcast:{p}", "domain": "podcast", "title": t} for p, t in titles.items()]
    write_scenario(folder, rows, items, source_domains=("music", "podcast"))
    (prepared / "apple-podcast-subs").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(cosub_pairs, columns=["podcast_a", "podcast_b"]).to_parquet(prepared / "apple-podcast-subs" / "cosubs.parquet", index=False)


COSUBS = [
    ("1", "2"), ("2", "1"), ("1", "Outside X"), ("2", "Outside X"), ("Outside X", "1"),
    ("3", "up first"), ("UP FIRST", "3"), ("3", "Other Y"), ("Up First", "Other Y"),
]  # fmt: skip


def test_podcast_tower_uses_cosubs_and_reviews(tmp_path):
    prepared = tmp_path / "prepared"
    podcast_scenario(tmp_path / "sc", prepared, COSUBS)
    info = pretrain_scenario(tmp_path / "sc", tmp_path / "out", dim=4, prepared_root=prepared)
    ids, mat = read_vectors(tmp_path / "out" / "podcast.parquet")
    assert list(ids) == [f"podcast:{p}" for p in range(1, 7)]
    v = dict(zip(ids, mat))
    assert cos(v["podcast:1"], v["podcast:2"]) > cos(v["podcast:1"], v["podcast:3"]) + 0.3
    # "up first" (3 spellings) is matched by title to podcast:4, which is then linked to 3.
    assert cos(v["podcast:3"], v["podcast:4"]) > cos(v["podcast:4"], v["podcast:1"]) + 0.3
    assert v["podcast:5"].any() and not v["podcast:6"].any()
    pod = info["domains"]["podcast"]
    assert pod["matched_by_title"] == 3 and pod["n_graph_only_nodes"] == 2
    assert pod["n_items_with_cosubs"] == 4 and pod["n_items_with_reviews"] == 4 and pod["n_items_with_neither"] == 1
    assert "co-subscri" in pod["method"] or "subscribe" in pod["method"]
    assert set(info["domains"]) == {"music", "podcast"}


def test_missing_cosubs_is_a_clear_error(tmp_path):
    podcast_scenario(tmp_path / "sc", tmp_path / "prepared", COSUBS)
    with pytest.raises(FileNotFoundError, match="cosubs.parquet"):
        pretrain_scenario(tmp_path / "sc", tmp_path / "out", dim=4, prepared_root=tmp_path / "elsewhere")


def test_same_seed_same_bytes(tmp_path):
    prepared = tmp_path / "prepared"
    podcast_scenario(tmp_path / "sc", prepared, COSUBS)
    for out in ("o1", "o2"):
        pretrain_scenario(tmp_path / "sc", tmp_path / out, dim=8, seed=3, prepared_root=prepared)
    # info.json too: no wall time in an output, or DVC would see a new hash on every rebuild
    for f in ("music.parquet", "podcast.parquet", "info.json"):
        assert (tmp_path / "o1" / f).read_bytes() == (tmp_path / "o2" / f).read_bytes()


def test_podcast_role_of_another_modality_gets_the_plain_svd(tmp_path):
    """A scenario whose podcast role holds Epinions Movies (meta notes.podcast_pretrain = svd,
    benchmark/scenarios/multi.py) is embedded like music: no Apple graph, none needed."""
    podcast_scenario(tmp_path / "sc", tmp_path / "prepared", COSUBS)
    meta = json.loads((tmp_path / "sc" / "meta.json").read_text())
    (tmp_path / "sc" / "meta.json").write_text(json.dumps({**meta, "notes": {"podcast_pretrain": "svd", "second_modality": "Movies"}}))
    info = pretrain_scenario(tmp_path / "sc", tmp_path / "out", dim=4, prepared_root=tmp_path / "no-cosubs-here")
    pod = info["domains"]["podcast"]
    assert pod["pretrain"] == "svd" and info["domains"]["music"]["pretrain"] == "svd"
    assert "subscribe" not in pod["method"].replace("no Apple co-subscription graph", "") and "Movies" in pod["method"]
    assert pod["n_users"] == 4 and pod["n_interactions"] == 5 and "n_cosub_pairs" not in pod
    ids, _ = read_vectors(tmp_path / "out" / "podcast.parquet")
    assert list(ids) == [f"podcast:{p}" for p in range(1, 7)]
    # without the note the podcast role is an Apple podcast: the co-subscription graph, as before
    (tmp_path / "sc" / "meta.json").write_text(json.dumps(meta))
    assert pretrain_scenario(tmp_path / "sc", tmp_path / "o3", dim=4, prepared_root=tmp_path / "prepared")["domains"]["podcast"]["pretrain"] == "cosubs-graph+reviews"
    (tmp_path / "sc" / "meta.json").write_text(json.dumps({**meta, "notes": {"podcast_pretrain": "graph"}}))
    with pytest.raises(ValueError, match="podcast_pretrain"):
        pretrain_scenario(tmp_path / "sc", tmp_path / "o4", dim=4, prepared_root=tmp_path / "prepared")

