"""The positive control of the semi-synthetic mpa-linked scenario, on a planted fixture.

A few hundred fake Last.fm users and Book-Crossing readers each get one planted taste
(horror, romance, fantasy or classics); their histories follow it: music users mostly
play artists tagged with the taste, readers mostly like books a catalog tags with it.
Built through :func:`benchmark.scenarios.build_scenario` at rho in {0, 0.5, 1}, the
linkage must be a permutation null at rho = 0, far above every one of 200 re-pairings
of the partners at rho = 1, grow monotonically in rho, and be a pure function of the
seed; and a source-history model (UserKNN) must beat Popularity significantly only
when the domains are linked.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config.params import LinkedScenario, ProtocolParams
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.evaluation.stats import paired_test
from benchmark.experiment import registry
from benchmark.scenarios import build_scenario, linking
from benchmark.scenarios.protocol import load_fold

# taste -> (Last.fm artist tag, book catalog genre); all four are linking themes
TASTES = {"dark_gothic_horror": ("gothic rock", "Horror"), "romance_love": ("love songs", "Romance"),
          "fantasy_scifi": ("space rock", "Fantasy"), "arts_classic": ("jazz", "Classics")}
N_MUSIC, N_READERS, N_PERM = 240, 400, 200
PROTOCOL = ProtocolParams(k=2, seeds=[0], valid_share=0.1)
SPEC = {"builder": "linked", "rho": 0.0, "podcast_share": 0.5, "positive_threshold": 7, "min_support": 1, "seed": 0, "min_book_positives": 3}
RHOS = (0.0, 0.5, 1.0)


def _inter(rows: list[tuple], domain: str) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["user", "item", "value"])
    return df.assign(domain=domain, value=df["value"].astype("float32"), timestamp=pd.array([pd.NA] * len(df), dtype="Int64"))


def _items(ids: list[str], domain: str, **cols) -> pd.DataFrame:
    n = len(ids)
    base = {"item": ids, "domain": domain, "title": [f"{domain} title {i}" for i in ids], "creator": [""] * n, "description": [""] * n, "tags": [""] * n}
    return pd.DataFrame({**base, **cols})


def _save(root: Path, source: str, name: str, df: pd.DataFrame) -> None:
    (root / source).mkdir(parents=True, exist_ok=True)
    df.to_parquet(root / source / f"{name}.parquet", index=False)


def write_planted(root: Path) -> dict[str, dict[str, str]]:
    """Prepared tables of the fixture; returns the planted taste of every music user and reader."""
    rng = np.random.default_rng(2024)
    names = list(TASTES)
    taste = {"music": {}, "book": {}}
    # Music: 10 artists per taste; a user plays 5 artists of their taste and 1 of any taste.
    artists = {t: [str(10 * j + i) for i in range(10)] for j, t in enumerate(names)}
    _save(root, "lastfm-hetrec2k", "artist_tags", pd.DataFrame([(a, TASTES[t][0], 10) for t in names for a in artists[t]], columns=["item", "tag", "count"]))
    _save(root, "lastfm-hetrec2k", "items", _items([a for t in names for a in artists[t]], "music"))
    rows = []
    for u in range(1, N_MUSIC + 1):
        t = names[rng.integers(len(names))]
        taste["music"][str(u)] = t
        picks = set(rng.choice(artists[t], size=5, replace=False)) | {rng.choice(sum(artists.values(), []))}
        rows += [(str(u), a, float(rng.integers(1, 500))) for a in sorted(picks)]
    _save(root, "lastfm-hetrec2k", "interactions", _inter(rows, "music"))
    # Books: 12 per taste, tagged by a catalog matched on ISBN; popularity within a taste
    # is skewed, so Popularity is a real baseline. A reader likes 5 books of their taste
    # and 1 of any taste, and dislikes one random book.
    books = {t: [f"{12 * j + i:010d}" for i in range(12)] for j, t in enumerate(names)}
    allb = sum(books.values(), [])
    w = 1.0 / np.arange(1, 13)
    rows = []
    for r in range(N_READERS):
        t = names[rng.integers(len(names))]
        taste["book"][f"r{r}"] = t
        liked = set(rng.choice(books[t], size=5, replace=False, p=w / w.sum())) | {rng.choice(allb)}
        rows += [(f"r{r}", b, float(rng.integers(7, 11))) for b in sorted(liked)]
        rows.append((f"r{r}", rng.choice([b for b in allb if b not in liked]), float(rng.integers(1, 5))))
    _save(root, "bookcrossing-subset", "interactions", _inter(rows, "book"))
    _save(root, "bookcrossing-subset", "items", _items(allb, "book", creator=[f"Ann Writer{i}" for i in range(len(allb))]))
    _save(root, "goodbooks-10k", "items", _items([f"gb{i}" for i in range(len(allb))], "book", tags=[TASTES[t][1] for t in names for _ in books[t]], isbn=allb))
    # Podcasts: one review each, unrelated to any taste.
    pods = [str(1000 + i) for i in range(8)]
    _save(root, "apple-podcast-reviews", "items", _items(pods, "podcast", tags=["Comedy", "Kids & Family", "True Crime", "Fiction"] * 2))
    _save(root, "apple-podcast-reviews", "interactions", _inter([(f"nick {i}", pods[i % 8], 5.0) for i in range(300)], "podcast"))
    return taste


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    taste = write_planted(root / "prepared")
    built = {rho: build_scenario(f"pc-rho{rho:g}", LinkedScenario(**{**SPEC, "rho": rho}), PROTOCOL, root / "prepared", root / "scen", root / "cards") for rho in RHOS}
    return {"root": root, "taste": taste, "built": built}


def _pairs(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Music rows and book rows of the linkage, aligned by composite user."""
    lk = pd.read_parquet(Path(summary["dir"]) / "linkage.parquet")
    b = lk[lk["domain"] == "book"].set_index("user")
    m = lk[lk["domain"] == "music"].set_index("user").reindex(b.index)
    return m, b


def statistics(m: pd.DataFrame, b: pd.DataFrame, taste: dict, perm: np.ndarray | None = None) -> tuple[float, float]:
    """(coupling of the linking axes, share of composite users whose two people share the
    planted taste) with the partners in linkage order, or re-paired by ``perm``."""
    b = b if perm is None else b.iloc[perm]
    cols = list(linking.AXES)
    same = np.mean([taste["music"][x] == taste["book"][y] for x, y in zip(m["source_user"], b["source_user"])])
    return linking.coupling(m[cols].to_numpy(), b[cols].to_numpy()), float(same)


def null_distribution(m: pd.DataFrame, b: pd.DataFrame, taste: dict) -> np.ndarray:
    rng = np.random.default_rng(99)
    return np.array([statistics(m, b, taste, rng.permutation(len(b))) for _ in range(N_PERM)])


def test_rho0_is_a_permutation_null(planted):
    m, b = _pairs(planted["built"][0.0])
    obs = np.array(statistics(m, b, planted["taste"]))
    null = null_distribution(m, b, planted["taste"])
    centre = null.mean(axis=0)
    p = (1 + (np.abs(null - centre) >= np.abs(obs - centre)).sum(axis=0)) / (1 + N_PERM)
    assert (p > 0.01).all(), f"rho=0 coupling {obs} (axes, same taste) stands out of {N_PERM} re-pairings: two-sided p {p}"


def test_rho1_beats_every_permutation(planted):
    m, b = _pairs(planted["built"][1.0])
    obs = np.array(statistics(m, b, planted["taste"]))
    null = null_distribution(m, b, planted["taste"])
    assert (obs > null.max(axis=0)).all(), f"rho=1 coupling {obs} (axes, same taste) not above all {N_PERM} re-pairings (max {null.max(axis=0)})"
    assert obs[1] > 0.6, f"at rho=1 only {obs[1]:.2f} of composite users join two people of the same planted taste (chance: about 1/4)"


def test_coupling_grows_with_rho(planted):
    stats = np.array([statistics(*_pairs(planted["built"][rho]), planted["taste"]) for rho in RHOS])
    assert (np.diff(stats, axis=0) > 0).all(), f"coupling (axes, same taste) per rho {dict(zip(RHOS, stats.tolist()))} is not increasing"


def test_linkage_is_a_function_of_the_seed(planted, tmp_path):
    spec = LinkedScenario(**{**SPEC, "rho": 0.5})
    same = build_scenario("pc-rho0.5", spec, PROTOCOL, planted["root"] / "prepared", tmp_path / "a", tmp_path / "ca")
    other = build_scenario("pc-rho0.5", spec.model_copy(update={"seed": 1}), PROTOCOL, planted["root"] / "prepared", tmp_path / "b", tmp_path / "cb")

    def digest(s: dict) -> str:
        return hashlib.sha256((Path(s["dir"]) / "linkage.parquet").read_bytes()).hexdigest()

    assert digest(same) == digest(planted["built"][0.5])
    b0, b1 = _pairs(planted["built"][0.5])[1], _pairs(other)[1]
    assert (b0["source_user"] != b1["source_user"].reindex(b0.index)).mean() > 0.5, "another seed must give another pairing"


def _ndcg(summary: dict, key: str) -> np.ndarray:
    view, truth = load_fold(Path(summary["dir"]), 0, 0, min_support=SPEC["min_support"])
    spec = registry.checked_spec(key)
    model = registry.build(spec, seed=0).fit(copy.deepcopy(view))
    frame, _ = evaluate_model(model, view.test_users, truth.test, [10], view.popularity())
    return frame["NDCG@10"].to_numpy()


def test_source_history_model_beats_popularity_only_when_linked(planted):
    """The positive control itself: UserKNN (card config) on the music histories is
    significantly above Popularity at rho = 1 and not at rho = 0."""
    res = {}
    for rho in (0.0, 1.0):
        knn, pop = _ndcg(planted["built"][rho], "userknn"), _ndcg(planted["built"][rho], "popularity")
        res[rho] = (knn.mean() - pop.mean(), paired_test(knn, pop, seed=0))
    gain1, p1 = res[1.0]
    gain0, p0 = res[0.0]
    assert gain1 > 0 and p1 < 0.01, f"rho=1: UserKNN - Popularity NDCG@10 {gain1:+.4f}, p={p1:.4f}"
    assert not (gain0 > 0 and p0 < 0.05), f"rho=0: UserKNN significantly above Popularity ({gain0:+.4f}, p={p0:.4f})"
