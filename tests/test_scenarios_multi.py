"""The multi-source real builder (benchmark/scenarios/multi.py) on tiny Epinions / Ciao
MATLAB files: raw .mat -> prepare (the Tang loader, every category kept) -> scenario.

What each test would catch: a user put in the wrong cohort (m&p / m-only / p-only), a
time cut that spares one of the two source domains or cuts a user who was not a
candidate, a second-modality history that survives although it all came after the first
book, a user sample that depends on row order or splits a user's rows, and a params typo
that silently builds another recipe.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from benchmark.config import paths
from benchmark.config.params import MultiScenario, ParamsError, ProtocolParams, load_params, parse_params
from benchmark.data.prepare import prepare_source
from benchmark.scenarios import build_scenario, twin
from benchmark.scenarios.multi import build_multi, sample_users
from params_text import ci_params_text, write_params

PROTOCOL = ProtocolParams(k=2, seeds=[0], valid_share=0.2)
# Three used categories plus an unused one (Electronics / DVDs), ids as in the real catalogs.
EPI_CATALOG = "3 Movies\r\n4 Books\r\n5 Music\r\n7 Electronics\r\n"
CIAO_CATALOG = "1 DVDs\r\n2 Books\r\n4 Music\r\n8 Entertainment\r\n"
EPI = {"source": "epinions-tang", "second_domain": "cat3", "positive_threshold": 4, "min_support": 1}
CIAO = {"source": "ciao-tang", "second_domain": "cat8", "positive_threshold": 4, "min_support": 1, "time_cut": True}
MUSIC, MOVIES, BOOKS, ELEC = 5, 3, 4, 7
C_MUSIC, C_ENT, C_BOOKS, C_DVD = 4, 8, 2, 1


def _mat(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"rating": arr})
    return buf.getvalue()


def epinions_rows() -> list[list[int]]:
    """(user, product, category, rating). Users 1-7 are the cases; 10-15 plain m&p users."""
    r = [
        [1, 100, MUSIC, 4], [1, 200, MOVIES, 5], [1, 300, BOOKS, 5],  # m&p, evaluable
        [2, 101, MUSIC, 3], [2, 301, BOOKS, 4],  # m-only, evaluable
        [3, 201, MOVIES, 2], [3, 302, BOOKS, 5],  # p-only, evaluable
        [4, 100, MUSIC, 5], [4, 202, MOVIES, 4], [4, 300, BOOKS, 2],  # m&p, no book positive
        [5, 303, BOOKS, 5],  # books only: a training user
        [6, 900, ELEC, 5], [6, 300, BOOKS, 5],  # an unused category is no source history
        [7, 102, MUSIC, 4],  # music only
    ]
    for u in range(10, 16):
        r += [[u, 100 + u % 3, MUSIC, 4], [u, 200 + u % 2, MOVIES, 3], [u, 300 + u % 4, BOOKS, 4 + u % 2]]
    return r


def ciao_rows() -> list[list[int]]:
    """(user, product, category, rating, helpfulness, time). First book rating of 2-6: t=30."""
    r = [
        [1, 100, C_MUSIC, 4, 1, 10], [1, 200, C_ENT, 5, 1, 20], [1, 300, C_BOOKS, 5, 1, 30],  # all before: untouched
        [2, 100, C_MUSIC, 4, 1, 10], [2, 201, C_ENT, 4, 1, 40], [2, 202, C_ENT, 3, 1, 50], [2, 300, C_BOOKS, 5, 1, 30],
        [3, 203, C_ENT, 5, 1, 40], [3, 301, C_BOOKS, 4, 1, 30],  # only source row after the first book
        [4, 101, C_MUSIC, 5, 1, 5], [4, 102, C_MUSIC, 5, 1, 35], [4, 204, C_ENT, 4, 1, 3], [4, 205, C_ENT, 4, 1, 31],
        [4, 302, C_BOOKS, 2, 1, 30], [4, 303, C_BOOKS, 5, 1, 60],  # a non-positive first book still starts the cut
        [5, 103, C_MUSIC, 4, 1, 30], [5, 206, C_ENT, 4, 1, 10], [5, 304, C_BOOKS, 5, 1, 30],  # same instant: cut
        [6, 104, C_MUSIC, 4, 1, 100], [6, 305, C_BOOKS, 2, 1, 50],  # no book positive: not a candidate, not cut
        [7, 900, C_DVD, 5, 1, 1], [7, 300, C_BOOKS, 5, 1, 2],  # DVDs are no source history
    ]
    for u in range(10, 16):
        r += [[u, 100 + u % 3, C_MUSIC, 4, 1, 1], [u, 200 + u % 2, C_ENT, 4, 1, 2], [u, 300 + u % 4, C_BOOKS, 4 + u % 2, 1, 100]]
    return r


def prepare(tmp: Path, source: str) -> Path:
    """Write the raw fixture, run the prepare stage (the real loader) into tmp/prepared."""
    raw = tmp / "raw" / source
    raw.mkdir(parents=True, exist_ok=True)
    if source == "epinions-tang":
        (raw / "catalog_epinion.txt").write_text(EPI_CATALOG, newline="")
        with zipfile.ZipFile(raw / "epinions.zip", "w") as z:
            z.writestr("epinions/rating.mat", _mat(np.array(epinions_rows(), dtype=np.int32)))
    else:
        (raw / "catalog_ciao.txt").write_text(CIAO_CATALOG, newline="")
        (raw / "rating_with_timestamp.mat").write_bytes(_mat(np.array(ciao_rows(), dtype=np.float64)))
    prepare_source(source, tmp / "raw", tmp / "prepared", sources_tsv=None)
    return tmp / "prepared"


def build(tmp: Path, name: str, spec: dict, sub: str = "a") -> dict:
    prepared = tmp / "prepared"
    if not (prepared / spec["source"]).exists():
        prepare(tmp, spec["source"])
    return build_scenario(name, MultiScenario(builder="multi", **spec), PROTOCOL, prepared, tmp / sub / "scenarios", tmp / sub / "cards")


def tables(summary: dict) -> dict[str, pd.DataFrame]:
    d = Path(summary["dir"])
    return {n: pd.read_parquet(d / f"{n}.parquet") for n in ("interactions", "items", "users")}


def card(summary: dict) -> dict:
    return json.loads((Path(summary["card_dir"]) / "card.json").read_text())


def test_cohorts_roles_and_names(tmp_path):
    s = build(tmp_path, "fx-mv2b", EPI)
    t = tables(s)
    users = t["users"].set_index("user")
    assert users.loc[["1", "2", "3"], "cohort"].tolist() == ["m&p", "m-only", "p-only"]
    assert users.loc[["1", "2", "3"], "evaluable"].all()
    assert users.loc["4", "cohort"] == "m&p" and not users.loc["4", "evaluable"]  # no book positive
    assert users.loc["5", "cohort"] == "none" and not users.loc["5", "evaluable"]  # books only: training user
    assert users.loc["6", "cohort"] == "none" and not users.loc["6", "evaluable"]  # Electronics is not a source
    assert users.loc["7", "cohort"] == "m-only" and not users.loc["7", "evaluable"]
    assert set(users.index[users["evaluable"]]) == {"1", "2", "3", *map(str, range(10, 16))}
    inter = t["interactions"]
    assert set(inter["domain"]) == {"music", "podcast", "book"}
    assert set(inter.loc[inter["domain"] == "podcast", "item"]) == {"podcast:200", "podcast:201", "podcast:202"}
    assert not inter["item"].str.startswith("music:900").any() and "6" not in set(inter.loc[inter["domain"] != "book", "user"])
    c = card(s)
    assert c["cohorts_evaluable"] == {"m&p": 7, "m-only": 1, "p-only": 1}
    assert c["modalities"] == {"music": "Music (Epinions category 5)", "podcast": "Movies (Epinions category 3)",
                               "book": "Books (Epinions category 4)"}
    assert c["second_modality"] == "Movies" and c["podcast_pretrain"] == "svd" and c["time_cut"] is None
    assert c["filters"]["rows_of_other_domains_dropped"] == 1  # the Electronics row
    meta = json.loads((Path(s["dir"]) / "meta.json").read_text())
    assert meta["source_domains"] == ["music", "podcast"] and meta["notes"]["podcast_pretrain"] == "svd"
    md = (Path(s["card_dir"]) / "CARD.md").read_text()
    assert "- podcast: Movies (Epinions category 3)" in md and "CI SAMPLE" not in md


def test_time_cut_on_both_sources(tmp_path):
    s = build(tmp_path, "fx-me2b", CIAO)
    inter = tables(s)["interactions"]
    users = tables(s)["users"].set_index("user")
    src = inter[inter["domain"] != "book"]
    kept = {u: sorted(zip(g["domain"], g["timestamp"])) for u, g in src.groupby("user")}
    assert kept["1"] == [("music", 10), ("podcast", 20)]  # all before the first book: untouched
    assert kept["4"] == [("music", 5), ("podcast", 3)]  # both sources cut at the first (non-positive) book rating
    assert kept["5"] == [("podcast", 10)]  # music at the very instant of the first book: cut
    assert kept["6"] == [("music", 100)]  # not a candidate (no book positive): untouched
    assert users.loc[["1", "4", "5"], "cohort"].tolist() == ["m&p", "m&p", "p-only"]
    # every evaluable user's remaining source rows come strictly before their first book rating
    first = inter[inter["domain"] == "book"].groupby("user")["timestamp"].min()
    ev = src[src["user"].isin(users.index[users["evaluable"]])]
    assert (ev["timestamp"].to_numpy() < ev["user"].map(first).to_numpy()).all()
    cut = card(s)["time_cut"]
    assert {k: v for k, v in cut.items() if k != "rule"} == {
        "applied": True, "interactions_removed": 6, "interactions_removed_music": 2, "interactions_removed_podcast": 4,
        "users_affected": 4, "users_lost_evaluability": 1, "users_music_entirely_after_first_book": 1,
        "users_podcast_entirely_after_first_book": 2}
    assert card(s)["filters"]["evaluable_before_time_cut"] == card(s)["evaluable_users"] + 1
    assert "## Time cut" in (Path(s["card_dir"]) / "CARD.md").read_text()


def test_second_modality_entirely_after_first_book_is_lost(tmp_path):
    s = build(tmp_path, "fx-me2b", CIAO)
    inter, users = tables(s)["interactions"], tables(s)["users"].set_index("user")
    # user 2: music before, Entertainment only after the first book -> m&p becomes m-only, still evaluable
    assert inter[(inter["user"] == "2") & (inter["domain"] == "podcast")].empty
    assert users.loc["2", "cohort"] == "m-only" and users.loc["2", "evaluable"]
    # user 3: Entertainment only, all after the first book -> no source left: not evaluable, a books-only user
    assert inter.loc[inter["user"] == "3", "domain"].tolist() == ["book"]
    assert users.loc["3", "cohort"] == "none" and not users.loc["3", "evaluable"]
    # without the cut both keep their Entertainment history
    u = tables(build(tmp_path, "fx-me2b", {**CIAO, "time_cut": False}, sub="nocut"))["users"].set_index("user")
    assert u.loc[["2", "3"], "cohort"].tolist() == ["m&p", "p-only"] and u.loc[["2", "3"], "evaluable"].all()


def test_user_sample_is_deterministic_and_keeps_whole_users(tmp_path):
    prepared = prepare(tmp_path, "epinions-tang")
    raw = pd.read_parquet(prepared / "epinions-tang" / "interactions.parquet")
    raw = raw[raw["domain"].isin(["music", "cat3", "book"])].reset_index(drop=True)
    a, info = sample_users(raw, 8, seed=11)
    b, _ = sample_users(raw.sample(frac=1, random_state=3), 8, seed=11)  # row order does not matter
    assert sorted(a["user"].unique()) == sorted(b["user"].unique()) and a["user"].nunique() == 8
    assert info == {**info, "applied": True, "kept": 8, "of": raw["user"].nunique()}
    for u, g in a.groupby("user"):  # every row of a kept user, none of the others
        assert len(g) == (raw["user"] == u).sum()
    assert sample_users(raw, 8, seed=12)[0]["user"].nunique() == 8
    assert sample_users(raw, None, seed=11)[0] is raw and not sample_users(raw, 10_000, seed=11)[1]["applied"]
    # through the builder: same name, same sample, byte-identical; the card says it loudly
    spec = {**EPI, "user_sample": 11}
    s1, s2 = build(tmp_path, "fx-mv2b", spec, sub="a"), build(tmp_path, "fx-mv2b", spec, sub="b")
    assert s1["scenario_hash"] == s2["scenario_hash"]
    t = tables(s1)
    assert t["users"]["user"].nunique() == 11
    kept = set(t["users"]["user"])
    assert len(t["interactions"]) == raw["user"].isin(kept).sum()
    md = (Path(s1["card_dir"]) / "CARD.md").read_text()
    assert md.startswith(f"**CI SAMPLE: 11 of {raw['user'].nunique()} users")
    assert card(s1)["user_sample"]["applied"] and card(s1)["user_sample"]["kept"] == 11


def test_null_twin_permutes_both_sources_within_cohort(tmp_path):
    s = build(tmp_path, "fx-mv2b", EPI)
    real = tables(s)["interactions"]
    tw = pd.read_parquet(Path(s["dir"]) / "twin" / "interactions.parquet")
    perm = pd.read_parquet(Path(s["dir"]) / "twin" / twin.PERMUTATION_FILE)
    assert set(perm["cohort"]) == {"music", "music+podcast", "podcast"}
    assert (perm["cohort"] == perm["donor"].map(twin.source_cohorts(real, ["music", "podcast"]))).all()

    def hist(df, u):
        g = df[(df["user"] == u) & (df["domain"] != "book")]
        return sorted(zip(g["domain"], g["item"], g["value"]))

    for u, d in zip(perm["user"], perm["donor"]):
        assert hist(tw, u) == hist(real, d)
    assert (perm["user"] != perm["donor"]).any()
    pd.testing.assert_frame_equal(tw[tw["domain"] == "book"].reset_index(drop=True), real[real["domain"] == "book"].reset_index(drop=True))
    assert card(s)["null_twin"]["by_cohort"]["music+podcast"]["users"] == 8


def test_bad_inputs_are_one_line_errors(tmp_path):
    base = load_params(paths.PARAMS).model_dump()
    sc = dict(base["scenarios"])
    sc["epinions-mv2b"] = {**sc["epinions-mv2b"], "second_domian": "cat3"}
    with pytest.raises(ParamsError, match=r"^params\.yaml: scenarios\.epinions-mv2b\.second_domian: unknown key( \(\+\d+ more\))?$"):
        parse_params({**base, "scenarios": sc})
    sc["epinions-mv2b"] = {**base["scenarios"]["epinions-mv2b"], "user_sample": 0}
    with pytest.raises(ParamsError, match=r"^params\.yaml: scenarios\.epinions-mv2b\.user_sample: "):
        parse_params({**base, "scenarios": sc})
    with pytest.raises(ParamsError, match=r"^scenarios\.x: second_domain: must be a domain other than music and book"):
        build_multi("x", {**EPI, "second_domain": "book"}, tmp_path)
    prepare(tmp_path, "epinions-tang")
    with pytest.raises(ValueError, match=r"no rows of domains \['cat9'\]"):
        build_multi("x", {**EPI, "second_domain": "cat9"}, tmp_path / "prepared")


def test_full_overlay_lifts_the_sample_and_keeps_the_rest(tmp_path):
    """params-full.yaml sets user_sample: null for the three scenarios; the merge is deep,
    so every other key of their recipes is params.yaml's."""
    ci = load_params(write_params(tmp_path / "ci", ci_params_text()))
    full = load_params(write_params(tmp_path, ci_params_text().replace("setting: ci ", "setting: full ", 1)))
    for name in ("epinions-mv2b", "epinions-mm2b", "ciao-me2b"):
        assert full.scenarios[name].user_sample is None
        assert (ci.scenarios[name].user_sample is None) == (name == "ciao-me2b")  # ciao-me2b runs whole in CI too
        assert ci.scenarios[name].model_dump(exclude={"user_sample"}) == full.scenarios[name].model_dump(exclude={"user_sample"})
    assert full.scenarios["ciao-me2b"].time_cut and full.protocol.k == 5
    assert full.scenarios["douban-m2b"] == ci.scenarios["douban-m2b"]
