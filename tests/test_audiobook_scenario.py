"""The goodreads-audio scenario (benchmark/scenarios/audiobook.py) on tiny Goodreads files
written here and prepared out of core (benchmark/data/full.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.config.full_params import FullSource, GoodreadsAudioScenario, check_full_scenarios
from benchmark.config.params import ParamsError, ProtocolParams, parse_params_section
from benchmark.data.full import prepare_full
from benchmark.scenarios import BUILDERS, build_scenario
from benchmark.scenarios.audiobook import UNRATED_VALUE, build_goodreads_audio
from benchmark.scenarios.export import validate
from benchmark.scenarios.protocol import load_fold

BOOKS = [  # (book id, title, format, work)
    ("100", "Dune", "Paperback", "w1"), ("101", "Dune", "Audible Audio", "w1"), ("102", "Emma", "Hardcover", "w2"),
    ("103", "Emma", "Audio CD", "w2"), ("104", "Tape", "Audio Cassette", "w3"), ("105", "Kindle book", "Kindle Edition", "w4"),
    ("106", "Disc", "MP3 CD", "w5"),
]
SHELVES = [  # user, book, is_read, rating
    ("u1", 100, 1, 5), ("u1", 102, 1, 4), ("u1", 103, 1, 5),  # print + audio positive: evaluable
    ("u2", 105, 1, 0), ("u2", 101, 1, 0),  # read, unrated audiobook: positive by default
    ("u3", 100, 0, 0), ("u3", 104, 1, 2),  # audiobook rated 2: not a positive
    ("u4", 101, 1, 5),  # audiobook positive, no print history: trains, never evaluated
    ("u5", 102, 1, 3),  # print only: left out by default
    ("u6", 102, 1, 4), ("u6", 106, 0, 4),  # audiobook shelved, not read: not a positive
    ("u7", 100, 1, 4), ("u7", 105, 1, 5), ("u7", 103, 1, 4), ("u7", 104, 1, 0),
    ("u8", 102, 1, 5), ("u8", 101, 1, 4),
    ("u9", 105, 1, 4), ("u9", 103, 1, 5),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("gr")
    raw = tmp / "raw"
    raw.mkdir()
    (raw / "goodreads_interactions.csv").write_text("user_id,book_id,is_read,rating,is_reviewed\n" + "".join(f"{u},{b},{r},{v},0\n" for u, b, r, v in SHELVES))
    books = [{"book_id": b, "title": t, "format": f, "work_id": w, "authors": []} for b, t, f, w in BOOKS]
    (raw / "goodreads_books.json.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in books).encode()))
    prepare_full("gr-test", "goodreads", raw, tmp / "prepared", work_dir=tmp, memory_limit="256MB", threads=1)
    return tmp / "prepared"


def build(prepared: Path, **spec):
    return build_goodreads_audio("audio-test", {"source": "gr-test", **spec}, prepared)


def test_domains_positives_and_who_is_evaluated(prepared):
    built = build(prepared)
    validate(built)
    inter = built.interactions.set_index(["user", "item"])
    # print/ebook editions in the source slot, audiobook editions (by format) in the target slot
    assert set(built.items.loc[built.items["domain"] == "book", "item"]) == {"book:101", "book:103", "book:104", "book:106"}
    assert set(built.items.loc[built.items["domain"] == "music", "item"]) == {"music:100", "music:102", "music:105"}
    assert built.items.set_index("item").loc["book:103", "title"] == "Emma"
    pos = inter["positive"]
    assert pos[("u1", "book:103")] and pos[("u2", "book:101")]  # rated 5; read and unrated
    assert not pos[("u3", "book:104")] and not pos[("u6", "book:106")]  # rated 2; shelved, not read
    assert pos[("u1", "music:100")] and not pos[("u3", "music:100")]  # source: read = consumed
    assert inter.loc[("u2", "book:101"), "value"] == UNRATED_VALUE and inter.loc[("u1", "book:103"), "value"] == 5
    users = built.users.set_index("user")
    assert set(users.index) == {"u1", "u2", "u3", "u4", "u6", "u7", "u8", "u9"}  # u5 has no audiobook shelf
    assert set(users.index[users["evaluable"]]) == {"u1", "u2", "u7", "u8", "u9"}
    assert not users.loc["u4", "has_music"] and users.loc["u4", "has_book"]
    f = built.notes["filters"]
    assert (f["users_in_source"], f["users_with_audiobook_shelf"], f["users_kept"]) == (9, 8, 8)
    # u1 has Emma in print (102) and as an audiobook (103); u8 has Emma in print and Dune as audio
    assert f["evaluable_print_rows_of_a_work_also_shelved_as_audiobook"] == 1
    assert not built.semi_synthetic and built.source_domains == ["music"] and built.sources == ["gr-test"]


def test_positive_rule_is_a_parameter(prepared):
    strict = build(prepared, read_unrated_positive=False).users
    assert set(strict.loc[strict["evaluable"], "user"]) == {"u1", "u7", "u8", "u9"}  # u2's only audiobook is unrated
    five = build(prepared, positive_threshold=5)
    inter = five.interactions.set_index(["user", "item"])
    assert not inter.loc[("u7", "book:103"), "positive"] and inter.loc[("u7", "book:104"), "positive"]  # rated 4; read, unrated
    assert set(five.users.loc[five.users["evaluable"], "user"]) == {"u1", "u2", "u7", "u9"}


def test_print_only_users_and_a_seeded_sample(prepared):
    assert "u5" in set(build(prepared, keep_print_only_users=True).users["user"])
    a = build(prepared, max_users=5, seed=1).users
    b = build(prepared, max_users=5, seed=1).users
    assert len(a) == 5 and a.equals(b)
    assert set(build(prepared, max_users=100).users["user"]) == set(build(prepared).users["user"])


def test_built_scenario_holds_out_the_audiobooks_of_evaluated_users(prepared, tmp_path, monkeypatch):
    """Through the common writer and the fold protocol: a valid/test user has no training
    audiobook row (a cold user), keeps their print history as input, and their audiobook
    positives are the held-out truth."""
    monkeypatch.setitem(BUILDERS, "goodreads-audio", build_goodreads_audio)
    spec = GoodreadsAudioScenario(builder="goodreads-audio", source="gr-test")
    protocol = ProtocolParams(k=2, seeds=[0], valid_share=0.1)
    card = build_scenario("audio-test", spec, protocol, prepared, tmp_path / "scen", tmp_path / "cards")
    assert card["evaluable_users"] == 5 and card["source_domains"] == ["music"]
    folder = tmp_path / "scen" / "audio-test"
    held = 0
    for fold in range(2):
        view, truth = load_fold(folder, 0, fold)
        for rows in (view.valid_users, view.test_users):
            assert view.target_train[rows].nnz == 0
            assert (np.asarray(view.source["music"][rows].getnnz(axis=1)) > 0).all()
        held += truth.test.nnz
    assert held > 0
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["notes"]["domains"]["book"].startswith("audiobook editions") and not meta["semi_synthetic"]
    assert (tmp_path / "cards" / "audio-test" / "CARD.md").exists()


def test_missing_tables_and_missing_formats_are_clear(prepared, tmp_path):
    with pytest.raises(FileNotFoundError, match="prepare the full source 'nope' first"):
        build_goodreads_audio("x", {"source": "nope"}, prepared)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "goodreads_interactions.csv").write_text("user_id,book_id,is_read,rating,is_reviewed\nu1,100,1,5,0\nu1,101,1,5,0\n")
    prepare_full("no-books", "goodreads", raw, tmp_path / "p", work_dir=tmp_path)
    with pytest.raises(ValueError, match="no user has a print shelf and an audiobook positive"):
        build_goodreads_audio("x", {"source": "no-books"}, tmp_path / "p")


def test_params_schema(tmp_path):
    with pytest.raises(ParamsError, match="audio: postive_threshold: unknown key"):
        parse_params_section(GoodreadsAudioScenario, {"builder": "goodreads-audio", "source": "g", "postive_threshold": 4}, "audio")
    with pytest.raises(ParamsError, match="a URL"):
        parse_params_section(FullSource, {"kind": "goodreads", "path": "https://example.org/x.csv"}, "full_sources.g")
    with pytest.raises(ParamsError, match="kind"):
        parse_params_section(FullSource, {"kind": "spotify", "path": "/data"}, "full_sources.g")
    sources = {"g": FullSource(kind="goodreads", path="/data/gr"), "l": FullSource(kind="lastfm-1k", path="/data/l.tsv")}
    check_full_scenarios(sources, {"a": GoodreadsAudioScenario(builder="goodreads-audio", source="g")})
    with pytest.raises(ValueError, match="is a lastfm-1k source"):
        check_full_scenarios(sources, {"a": GoodreadsAudioScenario(builder="goodreads-audio", source="l")})
    with pytest.raises(ValueError, match="not in full_sources"):
        check_full_scenarios(sources, {"a": GoodreadsAudioScenario(builder="goodreads-audio", source="zz")})
