"""The semi-synthetic linkage: lexicon, multi-axis copula pairing, and the mpa-linked builder.

The central claim is tested against a permutation null derived from the data, never
a fixed tolerance: at rho = 0 the agreement of a composite user's per-domain tastes
in the linking space is at chance level, at rho = 1 it is far above chance.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from benchmark.config.params import LinkedScenario, ProtocolParams
from benchmark.scenarios import build_scenario, linked, linking

PROTOCOL = ProtocolParams(k=3, seeds=[0], valid_share=0.1)
SPEC = {"builder": "linked", "rho": 0.0, "podcast_share": 0.5, "positive_threshold": 7, "min_support": 1, "seed": 0, "min_book_positives": 3}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def null_quantiles(x: np.ndarray, y: np.ndarray, qs: list[float], n_perm: int = 2000) -> np.ndarray:
    """Quantiles of the coupling (:func:`linking.coupling`, mean per-axis correlation of
    paired rows) under random re-pairing of the rows of x and y."""
    rng = np.random.default_rng(12345)
    null = [linking.coupling(x, y[rng.permutation(len(y))]) for _ in range(n_perm)]
    return np.quantile(null, qs)


def assert_null_and_positive_control(x0, y0, x1, y1, what: str) -> None:
    """x*, y*: paired rows (composite users) x linking axes (or 1-D, one axis)."""
    lo, hi = null_quantiles(x0, y0, [0.005, 0.995])
    r0 = linking.coupling(x0, y0)
    assert lo <= r0 <= hi, f"{what}: rho=0 coupling {r0:.3f} outside the null's central 99% [{lo:.3f}, {hi:.3f}]"
    top1 = null_quantiles(x1, y1, [0.999])[0]
    r1 = linking.coupling(x1, y1)
    assert r1 > top1, f"{what}: rho=1 coupling {r1:.3f} not above the null's 99.9th percentile {top1:.3f}"


# ---------------------------------------------------------------- unit pieces


def test_lexicon_maps_tags_by_whole_words():
    assert "dark_gothic_horror" in linking.tag_themes("Black Metal")
    assert linking.tag_themes("True Crime") == ["crime_mystery"]
    assert "pop_mainstream" in linking.tag_themes("Kids & Family")
    assert "wellness_spiritual" in linking.tag_themes("self-help")
    assert linking.tag_themes("popular") == [] and linking.tag_themes("synthpop") == []
    assert linking.tag_themes("seen live") == []


def test_copula_pair_on_synthetic_axes():
    rng = np.random.default_rng(7)
    a = pd.Series(rng.standard_normal(300), index=[f"a{i}" for i in range(300)])
    p = pd.Series(rng.standard_normal(500), index=[f"p{i}" for i in range(500)])
    pairs = {rho: linking.copula_pair(a, p, rho, seed=0, stream=1) for rho in (0.0, 0.5, 1.0)}
    for m in pairs.values():
        assert m.is_unique and list(m.index) == list(a.index)
    assert set(pairs[0.0]) == set(pairs[1.0]), "the partner subset must not depend on rho"
    x = a.to_numpy()
    y = {rho: p.reindex(m.to_numpy()).to_numpy() for rho, m in pairs.items()}
    assert_null_and_positive_control(x, y[0.0], x, y[1.0], "synthetic")
    assert spearman(x, y[1.0]) == pytest.approx(1.0)  # one axis, no ties: the optimal assignment is the rank match
    assert spearman(x, y[0.0]) < spearman(x, y[0.5]) < spearman(x, y[1.0])
    with pytest.raises(ValueError, match="partner"):
        linking.copula_pair(p, a, 0.0, 0, 1)


def test_copula_pair_multi_axis_and_blocks(monkeypatch):
    rng = np.random.default_rng(3)
    cols = ["x", "y", "z"]
    a = pd.DataFrame(rng.standard_normal((400, 3)), columns=cols, index=[f"a{i}" for i in range(400)])
    p = pd.DataFrame(rng.standard_normal((600, 3)), columns=cols, index=[f"p{i}" for i in range(600)])
    full = {rho: linking.copula_pair(a, p, rho, seed=0, stream=1) for rho in (0.0, 0.5, 1.0)}
    c = {rho: linking.coupling(a.to_numpy(), p.loc[m.to_numpy()].to_numpy()) for rho, m in full.items()}
    assert abs(c[0.0]) < 0.1 < c[0.5] < c[1.0] and c[1.0] > 0.9
    monkeypatch.setattr(linking, "BLOCK", 64)  # forces recursive median splits
    blocked = linking.copula_pair(a, p, 1.0, seed=0, stream=1)
    assert blocked.is_unique and set(blocked) == set(full[1.0])
    assert linking.coupling(a.to_numpy(), p.loc[blocked.to_numpy()].to_numpy()) > 0.8
    with pytest.raises(ValueError, match="axes"):
        linking.copula_pair(a, p[["y", "x", "z"]], 1.0, 0, 1)


def test_axis_scores_normal_scores_per_domain():
    users = pd.Index(["u1", "u2", "u3", "u4"])
    prof = pd.DataFrame(0.0, index=["u1", "u2", "u3"], columns=list(linking.THEME_NAMES))
    prof.loc["u1", "dark_gothic_horror"] = 3.0
    prof.loc["u2", ["dark_gothic_horror", "knowledge_business"]] = 1.0
    prof.loc["u3", "knowledge_business"] = 2.0  # themed, but on no linking theme
    ms = pd.Series([1.0, 2.0, 3.0, 4.0], index=users)
    ax = linking.axis_scores(users, prof, ms)
    assert list(ax.columns) == [*linking.AXES, "evidence"]
    assert ax.loc["u1", "dark_gothic_horror"] > ax.loc["u2", "dark_gothic_horror"] > ax.loc["u3", "dark_gothic_horror"]
    assert ax.loc["u3", "dark_gothic_horror"] == ax.loc["u4", "dark_gothic_horror"]  # tied at share 0
    assert ax["evidence"].tolist() == [3.0, 2.0, 2.0, 0.0]
    assert ax["mainstream"].is_monotonic_increasing and abs(ax["mainstream"].mean()) < 1e-12
    with pytest.raises(ValueError, match="mainstreamness"):
        linking.axis_scores(pd.Index(["u1", "zz"]), prof, ms)


# ---------------------------------------------------------------- fixture prepared data


def _save(root: Path, source: str, name: str, df: pd.DataFrame) -> None:
    (root / source).mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / source / f"{name}.parquet", index=False)


def _inter(rows, domain):
    df = pd.DataFrame(rows, columns=["user", "item", "value"])
    return df.assign(domain=domain, value=df["value"].astype("float32"), timestamp=pd.array([pd.NA] * len(df), dtype="Int64"))


def _items(ids, domain, titles=None, creators=None, descs=None, tags=None, **extra):
    n = len(ids)
    return pd.DataFrame({"item": ids, "domain": domain, "title": titles or [f"{domain} {i}" for i in ids], "creator": creators or [""] * n, "description": descs or [""] * n, "tags": tags or [""] * n, **extra})


def write_fixture(root: Path) -> None:
    """Three prepared sources + two book catalogs, with a light/serious taste per user."""
    rng = np.random.default_rng(0)
    artists = [str(i) for i in range(30)]  # 0-13 light, 14-27 serious, 28-29 untagged
    tags = [(a, "pop" if int(a) % 2 else "love songs", 5) for a in artists[:14]] + [(a, "black metal" if int(a) % 2 else "horror punk", 5) for a in artists[14:28]]
    _save(root, "lastfm-hetrec2k", "artist_tags", pd.DataFrame(tags, columns=["item", "tag", "count"]))
    rows = []
    for u in range(1, 241):
        light = rng.random()
        pool = artists[28:] if u % 20 == 0 else [a for a in artists[:28] if (int(a) < 14) == (rng.random() < light)] or artists[:28]
        for a in rng.choice(pool, size=min(4, len(pool)), replace=False):
            rows.append((str(u), a, float(rng.integers(1, 500))))
    _save(root, "lastfm-hetrec2k", "interactions", _inter(rows, "music"))
    _save(root, "lastfm-hetrec2k", "items", _items(artists, "music"))

    genres = ["Comedy", "Kids & Family", "True Crime", "News", "Science", "Fiction"]
    pods = [str(1000 + i) for i in range(12)]
    _save(root, "apple-podcast-reviews", "items", _items(pods, "podcast", tags=[genres[i % 6] for i in range(12)], descs=[f"show {i}" for i in range(12)]))
    rows = [(f"nick {i}", pods[j], 5.0) for i in range(300) for j in rng.choice(12, size=1 + (i % 7 == 0), replace=False)]
    _save(root, "apple-podcast-reviews", "interactions", _inter(rows, "podcast"))

    isbns = [f"{i:010d}" for i in range(60)]
    titles = [f"Book {i}" for i in range(60)]
    authors = [f"Ann Writer{i}" for i in range(60)]
    _save(root, "bookcrossing-subset", "items", _items(isbns, "book", titles, authors))
    rows = []
    for r in range(600):
        light = rng.random()
        for b in rng.choice(60, size=int(rng.integers(2, 12)), replace=False):
            fits = (b % 2 == 0) == (light > 0.5)
            rows.append((f"r{r}", isbns[b], float(rng.integers(7, 11) if fits else rng.integers(0, 7))))
    _save(root, "bookcrossing-subset", "interactions", _inter(rows, "book"))
    # goodbooks: ISBN match (numeric isbn without leading zeros), audible: title+author match with a description
    gb = list(range(0, 30))
    _save(root, "goodbooks-10k", "items", _items([str(9000 + i) for i in gb], "book", [f"other title {i}" for i in gb], ["x"] * 30, tags=["romance" if i % 2 == 0 else "horror" for i in gb], isbn=[str(int(isbns[i])) for i in gb]))
    au = list(range(30, 50))
    blurbs = [f"Audible blurb {i}" if i < 46 else "Sorry, we just need to make sure you're not a robot." for i in au]
    _save(root, "audible-catalog", "items", _items([f"au{i}" for i in au], "book", [f"The Book {i}: A Novel" for i in au], [f"Writer{i}, Ann" for i in au], blurbs, tags=["Contemporary Romance" if i % 2 == 0 else "Crime Thrillers" for i in au]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("linked")
    write_fixture(root / "prepared")
    out = {}
    for rho in (0.0, 1.0):
        name = f"fx-linked-rho{int(rho)}"
        out[rho] = build_scenario(name, LinkedScenario(**{**SPEC, "rho": rho}), PROTOCOL, root / "prepared", root / "scen", root / "cards")
    out["root"] = root
    return out


def _linkage(summary: dict) -> pd.DataFrame:
    return pd.read_parquet(Path(summary["dir"]) / "linkage.parquet")


def test_histories_are_real_and_unmodified(built):
    root = built["root"] / "prepared"
    src = {"music": "lastfm-hetrec2k", "podcast": "apple-podcast-reviews", "book": "bookcrossing-subset"}
    for rho in (0.0, 1.0):
        inter = pd.read_parquet(Path(built[rho]["dir"]) / "interactions.parquet")
        lk = _linkage(built[rho])
        for dom, source in src.items():
            raw = pd.read_parquet(root / source / "interactions.parquet")
            raw = raw[raw["value"] > 0] if dom == "book" else raw
            for _, row in lk[lk["domain"] == dom].iloc[::7].iterrows():
                got = inter[(inter["user"] == row["user"]) & (inter["domain"] == dom)]
                want = raw[raw["user"] == row["source_user"]]
                assert sorted(zip(got["item"], got["value"])) == sorted(zip(dom + ":" + want["item"], want["value"]))
        assert lk.groupby("domain")["source_user"].apply(lambda s: s.is_unique).all(), "a history is used at most once"


def test_cohorts_evaluability_and_card(built):
    s = built[0.0]
    users = pd.read_parquet(Path(s["dir"]) / "users.parquet")
    n = 240  # all fixture Last.fm users are anchors
    assert len(users) == n and users["evaluable"].all()
    assert (users["cohort"] == "m&p").sum() == round(SPEC["podcast_share"] * n)
    assert set(users["cohort"]) == {"m&p", "m-only"}
    meta = json.loads((Path(s["dir"]) / "meta.json").read_text())
    assert meta["semi_synthetic"] is True and meta["source_domains"] == ["music", "podcast"]
    md = (Path(s["card_dir"]) / "CARD.md").read_text()
    assert md.startswith("**SEMI-SYNTHETIC: composite users")
    card = json.loads((Path(s["card_dir"]) / "card.json").read_text())
    assert "lexicon" in card["linkage"]["linking_space"] and card["linkage"]["rho"] == 0.0
    raw = pd.read_parquet(built["root"] / "prepared" / "bookcrossing-subset" / "interactions.parquet")
    assert card["filters"]["book_implicit_ratings_dropped"] == int((raw["value"] == 0).sum()) > 0
    assert card["filters"]["book_catalog_matches"] == {"goodbooks-10k": 30, "audible-catalog": 20}
    assert card["filters"]["catalog_boilerplate_descriptions_ignored"]["audible-catalog"] == 4
    items = pd.read_parquet(Path(s["dir"]) / "items.parquet").set_index("item")
    if "book:0000000031" in items.index:
        assert items.loc["book:0000000031", "text"] == "Book 31 by Ann Writer31. Audible blurb 31"
    for i in range(46, 50):
        if f"book:{i:010d}" in items.index:
            assert items.loc[f"book:{i:010d}", "text"] == f"Book {i} by Ann Writer{i}", "boilerplate description must be ignored"
    texts = " ".join(items["text"])
    for tag in ("Romance", "Thrillers", "black metal", "True Crime"):
        assert tag not in texts, "tags are the linking space and must never reach item text"


def test_book_pool_needs_a_themed_positive(built):
    """Every linked reader has a positive on a themed book (a place in the linking space);
    the card documents the axes and the pool rule."""
    root = built["root"] / "prepared"
    raw = pd.read_parquet(root / "bookcrossing-subset" / "interactions.parquet")
    h = linked.load_histories(LinkedScenario(**SPEC).model_dump(), root)
    themed = set(linking.item_theme_matrix(h["book"][2]).index)
    liked_themed = set(raw.loc[(raw["value"] >= SPEC["positive_threshold"]) & raw["item"].isin(themed), "user"])
    lk = _linkage(built[1.0])
    books = lk[lk["domain"] == "book"]
    assert set(books["source_user"]) <= liked_themed and (books["evidence"] > 0).all()
    card = json.loads((Path(built[1.0]["card_dir"]) / "card.json").read_text())
    assert card["linkage"]["axes"] == linking.AXIS_DOC
    assert f">= {linked.MIN_BOOK_THEMED_POSITIVES} of them on a themed book" in card["linkage"]["pools"]
    assert card["linkage"]["coupling_music_book"] > 0.3


def test_rho_changes_only_the_pairing(built):
    l0, l1 = _linkage(built[0.0]), _linkage(built[1.0])
    for dom in ("music", "podcast", "book"):
        assert set(l0.loc[l0["domain"] == dom, "source_user"]) == set(l1.loc[l1["domain"] == dom, "source_user"])
    assert set(l0.loc[l0["domain"] == "podcast", "user"]) == set(l1.loc[l1["domain"] == "podcast", "user"])
    b0 = l0[l0["domain"] == "book"].set_index("user")["source_user"]
    b1 = l1[l1["domain"] == "book"].set_index("user")["source_user"]
    assert (b0 != b1.reindex(b0.index)).mean() > 0.5


def _axes(lk: pd.DataFrame, dom: str) -> tuple[np.ndarray, np.ndarray]:
    """Music and ``dom`` linking axes (composite users with a ``dom`` history x axes)."""
    cols = list(linking.AXES)
    o = lk[lk["domain"] == dom].set_index("user")
    m = lk[lk["domain"] == "music"].set_index("user").reindex(o.index)
    return m[cols].to_numpy(), o[cols].to_numpy()


@pytest.mark.parametrize("dom", ["book", "podcast"])
def test_linking_agreement_fixture(built, dom):
    x0, y0 = _axes(_linkage(built[0.0]), dom)
    x1, y1 = _axes(_linkage(built[1.0]), dom)
    assert_null_and_positive_control(x0, y0, x1, y1, f"fixture music-{dom}")


def test_linked_rebuild_is_byte_identical(built, tmp_path):
    s = build_scenario("fx-linked-rho1", LinkedScenario(**{**SPEC, "rho": 1.0}), PROTOCOL, built["root"] / "prepared", tmp_path / "scen", tmp_path / "cards")

    def digests(d: Path) -> dict:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}

    assert digests(Path(s["dir"])) == digests(Path(built[1.0]["dir"]))
    assert digests(Path(s["card_dir"])) == digests(Path(built[1.0]["card_dir"]))
