"""Real-scenario builder on tiny canonical fixtures: ids, evaluable rule, positives,
the Ciao time cut, cards, RecBole files and byte-identical rebuilds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import paths
from benchmark.config.params import ParamsError, ProtocolParams, RealScenario, load_params, parse_params
from benchmark.scenarios import build_scenario
from benchmark.scenarios.real import build_real
from benchmark.scenarios.schema import SCENARIO_FILES

PROTOCOL = {"k": 3, "seeds": [0, 1], "valid_share": 0.2}


def _write_source(root: Path, source: str, rows: list[tuple], items: list[tuple] | None = None) -> None:
    d = root / source
    d.mkdir(parents=True)
    df = pd.DataFrame(rows, columns=["user", "item", "domain", "value", "timestamp"])
    df["value"] = df["value"].astype("float32")
    df["timestamp"] = pd.array(df["timestamp"], dtype="Int64")
    df.to_parquet(d / "interactions.parquet", index=False)
    if items is not None:
        it = pd.DataFrame(items, columns=["item", "domain", "title", "creator", "description", "tags"])
        it.to_parquet(d / "items.parquet", index=False)


def fixture_rows() -> list[tuple]:
    """Users 1..12. Item id "10" exists in both domains (as in Douban)."""
    r = [
        # user 1: music before books, book positive -> evaluable
        ("1", "10", "music", 3, 10), ("1", "11", "music", 4, 20), ("1", "10", "book", 5, 30),
        # user 2: music only AFTER the first book rating (2 at t=40) -> loses evaluability under the cut
        ("2", "12", "music", 5, 50), ("2", "20", "book", 2, 40), ("2", "21", "book", 4, 60),
        # user 3: one music row before, one after the first book -> keeps one music row
        ("3", "10", "music", 4, 5), ("3", "11", "music", 5, 45), ("3", "22", "book", 5, 30),
        # user 4: books only -> training user; user 5: music only; user 6: no book positive
        ("4", "10", "book", 5, 70),
        ("5", "13", "music", 2, 80),
        ("6", "10", "music", 4, 1), ("6", "23", "book", 3, 90),
    ]
    for u in range(7, 13):  # plain evaluable users
        r += [(str(u), str(10 + u % 3), "music", 4, 1), (str(u), str(20 + u % 4), "book", 4 + u % 2, 100)]
    return r


ITEMS = [
    ("10", "book", "Dune", "Frank Herbert", "", "Science Fiction"),
    ("10", "music", "Blue", "Joni", "", ""),
    ("11", "music", '"Unclosed\tquote\ntitle', "", "", ""),  # must not break atomic files
]


def build(tmp: Path, name: str, spec: dict, sub: str = "a", rows: list[tuple] | None = None) -> dict:
    prepared = tmp / "prepared"
    if not (prepared / spec["source"]).exists():
        _write_source(prepared, spec["source"], rows or fixture_rows(), ITEMS)
    return build_scenario(name, RealScenario(**spec), ProtocolParams(**PROTOCOL), prepared, tmp / sub / "scenarios", tmp / sub / "cards")


SPEC = {"builder": "real", "source": "fx-real", "positive_threshold": 4, "min_support": 1}
CIAO = {**SPEC, "time_cut": True}


def tables(summary: dict) -> dict[str, pd.DataFrame]:
    d = Path(summary["dir"])
    return {n: pd.read_parquet(d / f"{n}.parquet") for n in ("interactions", "items", "users", "folds")}


def test_prefixed_ids_positives_and_evaluable(tmp_path):
    s = build(tmp_path, "fx-m2b", SPEC)
    t = tables(s)
    inter = t["interactions"]
    assert {"music:10", "book:10"} <= set(inter["item"]), "same raw id in two domains must stay two items"
    assert (inter["item"].str.split(":").str[0] == inter["domain"]).all()
    book = inter[inter["domain"] == "book"]
    assert (book["positive"] == (book["value"] >= 4)).all()
    assert inter.loc[inter["domain"] == "music", "positive"].all()
    assert str(inter["timestamp"].dtype) == "Int64" and str(inter["value"].dtype) == "float32"
    users = t["users"].set_index("user")
    # no time cut here: user 2 has music and a book positive, so is evaluable
    assert set(users.index[users["evaluable"]]) == {"1", "2", "3", *map(str, range(7, 13))}
    assert not users.loc[["4", "5", "6"], "evaluable"].any()
    assert users.loc["4", "cohort"] == "none" and users.loc["5", "cohort"] == "m-only"
    assert (users.loc[users["evaluable"], "cohort"] == "m-only").all()
    assert not users["has_podcast"].any()
    items = t["items"].set_index("item")
    assert items.loc["book:10", "text"] == "Dune by Frank Herbert"
    assert "Science Fiction" not in " ".join(items["text"]), "tags must never enter item text"


def test_time_cut_drops_music_after_first_book(tmp_path):
    s = build(tmp_path, "fx-ciao", CIAO)
    inter = tables(s)["interactions"]
    music = inter[inter["domain"] == "music"]
    assert set(music.loc[music["user"] == "3", "timestamp"]) == {5}
    assert music[music["user"] == "2"].empty
    assert len(music[music["user"] == "1"]) == 2  # all music before the first book: untouched
    users = tables(s)["users"].set_index("user")
    assert not users.loc["2", "evaluable"] and users.loc["3", "evaluable"]
    card = json.loads((Path(s["card_dir"]) / "card.json").read_text())
    assert card["time_cut"]["interactions_removed"] == 2
    assert card["time_cut"]["users_lost_evaluability"] == 1
    assert card["evaluable_users"] == 8
    # every evaluable user: all remaining music strictly before the first book rating
    first_book = inter[inter["domain"] == "book"].groupby("user")["timestamp"].min()
    ev = users.index[users["evaluable"]]
    m = music[music["user"].isin(ev)]
    assert (m["timestamp"].to_numpy() < m["user"].map(first_book).to_numpy()).all()


def test_time_cut_requires_timestamps(tmp_path):
    rows = [(u, i, d, v, None) for u, i, d, v, _ in fixture_rows()]
    with pytest.raises(ValueError, match="timestamps"):
        build(tmp_path, "fx-ciao", CIAO, rows=rows)


def test_card_numbers_match_tables(tmp_path):
    s = build(tmp_path, "fx-m2b", SPEC)
    t = tables(s)
    card = json.loads((Path(s["card_dir"]) / "card.json").read_text())
    md = (Path(s["card_dir"]) / "CARD.md").read_text()
    inter = t["interactions"]
    for dom, g in inter.groupby("domain"):
        assert card["domains"][dom] == {"users": g["user"].nunique(), "items": g["item"].nunique(), "interactions": len(g), "positives": int(g["positive"].sum())}
        assert f"| {dom} | {g['user'].nunique()} | {g['item'].nunique()} | {len(g)} |" in md
    assert card["evaluable_users"] == int(t["users"]["evaluable"].sum())
    assert card["cohorts"] == t["users"]["cohort"].value_counts().to_dict()
    assert len(card["folds"]) == PROTOCOL["k"] * len(PROTOCOL["seeds"])
    for f in card["folds"]:
        g = t["folds"][(t["folds"]["seed"] == f["seed"]) & (t["folds"]["fold"] == f["fold"])]
        assert f["test_evaluable"] == (g["role"] == "test").sum() and f["valid_evaluable"] == (g["role"] == "valid").sum()
    assert card["positive_threshold"] == 4 and not card["semi_synthetic"]
    assert "SEMI-SYNTHETIC" not in md
    meta = json.loads((Path(s["dir"]) / "meta.json").read_text())
    assert meta["source_domains"] == ["music"] and meta["target_domain"] == "book"
    assert meta["params"]["protocol"] == PROTOCOL and meta["params"]["source"] == "fx-real"


def test_folds_deal_every_evaluable_user_once_per_seed(tmp_path):
    t = tables(build(tmp_path, "fx-m2b", SPEC))
    ev = set(t["users"].loc[t["users"]["evaluable"], "user"])
    for seed, g in t["folds"].groupby("seed"):
        tests = g[g["role"] == "test"]["user"]
        assert sorted(tests) == sorted(ev)


def test_recbole_atomic_files(tmp_path):
    s = build(tmp_path, "fx-ciao", CIAO)
    rb = Path(s["dir"]) / "recbole" / "fx-ciao"  # RecBole: data_path=<scenario>/recbole, dataset=<name>
    inter = tables(s)["interactions"]
    lines = (rb / "fx-ciao.inter").read_text().splitlines()
    assert lines[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(lines) == len(inter) + 1
    assert all(len(l.split("\t")) == 4 for l in lines[1:])
    item_lines = (rb / "fx-ciao.item").read_text().splitlines()
    assert item_lines[0] == "item_id:token\tdomain:token\ttitle:token_seq" and len(item_lines) == len(tables(s)["items"]) + 1
    # parse the way RecBole 1.2.1 does (pandas, tab separator, python engine)
    for ext, n in (("inter", len(inter)), ("item", len(tables(s)["items"])), ("user", len(tables(s)["users"]))):
        df = pd.read_csv(rb / f"fx-ciao.{ext}", delimiter="\t", dtype=str, engine="python")
        assert len(df) == n
    parsed = pd.read_csv(rb / "fx-ciao.item", delimiter="\t", dtype=str, engine="python")
    assert parsed.set_index("item_id:token").loc["music:11", "title:token_seq"] == "Unclosed quote title"
    user_lines = (rb / "fx-ciao.user").read_text().splitlines()
    assert user_lines[0] == "user_id:token\tcohort:token" and len(user_lines) == len(tables(s)["users"]) + 1


def test_rebuild_is_byte_identical(tmp_path):
    a = build(tmp_path, "fx-ciao", CIAO, sub="a")
    b = build(tmp_path, "fx-ciao", CIAO, sub="b")

    def digests(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    da, db = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(da) >= len(SCENARIO_FILES) + 3 + 2
    assert da == db
    assert a["scenario_hash"] == b["scenario_hash"]


def test_bad_inputs_give_clear_errors(tmp_path):
    # An unknown builder is refused by the params schema, before any builder runs.
    base = load_params(paths.PARAMS).model_dump()
    with pytest.raises(ParamsError, match=r"^params\.yaml: scenarios\.x: .*expected tags: 'real', 'linked'"):
        parse_params({**base, "scenarios": {"x": {"builder": "nope"}}})
    with pytest.raises(FileNotFoundError, match="prepare"):
        build_scenario("x", RealScenario(**SPEC), ProtocolParams(**PROTOCOL), tmp_path / "empty", tmp_path / "o", tmp_path / "c")
    # The dict entry point of the builder validates through the same schema: one line naming the key.
    with pytest.raises(ParamsError, match=r"^scenarios\.x: positive_threshold: Field required$"):
        build_real("x", {"source": "fx-real"}, tmp_path)
    with pytest.raises(ParamsError, match=r"^scenarios\.x: timecut: unknown key$"):
        build_real("x", {**SPEC, "timecut": True}, tmp_path)
    # The defaults are filled in: the built recipe names every key.
    s = build(tmp_path, "fx-m2b", SPEC)
    meta = json.loads((Path(s["dir"]) / "meta.json").read_text())
    assert {k: meta["params"][k] for k in ("music_domain", "time_cut", "min_support")} == {"music_domain": "music", "time_cut": False, "min_support": 1}
