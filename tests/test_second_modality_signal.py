"""The second source modality carries signal MTL uses: podcast-planted fixture, music as noise.

Fixture: the shared planted scenario (tests/conftest.py ``planted_scenario``: five taste
groups, every user with music AND podcasts, books of the user's group), then every
planted user's music history is handed to another planted user (a seeded permutation).
So a user's books follow their PODCAST history, and their music history is someone
else's: noise with the same marginals. On this fold the three MTL variants of the
ablation specs (models/mtl*.yaml) are fitted at a small config:

* ``domains: [music]`` (MTL music only) can only reach popularity level;
* ``domains: [podcast]`` (second modality only) and the default (both sources) can rank
  the user's group books first.

Measured (fold 0, 40 test users, seed 0 of the fixture; fixture seeds 1-3 in brackets):
NDCG@10 both 0.909 [0.919, 0.911, 0.905], podcast only 0.915 [0.913, 0.914, 0.915],
music only 0.453 [0.462, 0.472, 0.360], Popularity 0.433 [0.474, 0.464, 0.349]. The bar
MARGIN = 0.2 sits well under the measured gaps (>= 0.43) and well over noise.

What would make it fail: ``domains`` being ignored (all variants read both sources, so
music-only equals both), the encoder dropping or misaligning the second domain's input
(both falls to music-only level), podcast rows scored through the music table, or a
fixture whose music still carried the groups (then the first test fails: music-only
would sit far above Popularity).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmark.evaluation.evaluate import evaluate_model
from benchmark.models.base import make_config
from benchmark.models.mtl import MTL
from benchmark.models.popularity import Popularity
from conftest import Planted, planted_scenario

SMALL = dict(dim=16, hidden=32, batch_size=32, max_epochs=25, patience=5)
METRIC, MARGIN = "NDCG@10", 0.2
VARIANTS = {"both": {}, "music": {"domains": ["music"]}, "podcast": {"domains": ["podcast"]}}


def podcast_planted(seed: int = 0) -> Planted:
    """Planted scenario whose music histories are permuted among the planted users (music = noise)."""
    p = planted_scenario(n_users=200, n_groups=5, podcast_share=1.0, n_popular=1, popular_rate=0.5, n_music_only=10,
                         seed=seed, name="podcast-signal")
    owners = sorted(p.group)
    rng = np.random.default_rng([seed, 5])
    new_owner = dict(zip(owners, np.array(owners)[rng.permutation(len(owners))].tolist()))
    music = [(new_owner.get(r[0], r[0]), *r[1:]) for r in p.source["music"]]
    return dataclasses.replace(p, source={"music": music, "podcast": p.source["podcast"]})


@pytest.fixture(scope="module")
def results():
    """variant -> (per-user NDCG@10 on the fold's test users, fit_info); plus Popularity."""
    view, truth = podcast_planted().fold()
    assert view.source_domains == ["music", "podcast"]
    assert (view.cohort[view.test_users] == "m&p").all(), "every test user needs both modalities"
    out = {}
    for name, kw in VARIANTS.items():
        model = MTL(make_config(MTL.Config, {**SMALL, **kw}), seed=0).fit(view)
        per_user, _ = evaluate_model(model, view.test_users, truth.test, [10], view.popularity())
        out[name] = per_user[METRIC].to_numpy(), model.fit_info
    per_user, _ = evaluate_model(Popularity().fit(view), view.test_users, truth.test, [10], view.popularity())
    out["popularity"] = per_user[METRIC].to_numpy(), {}
    print({k: round(float(v.mean()), 3) for k, (v, _) in out.items()})
    return out


def test_fixture_music_carries_no_signal(results):
    """Sanity of the fixture: reading music alone is no better than popularity."""
    music, pop = results["music"][0].mean(), results["popularity"][0].mean()
    assert results["music"][1]["domains"] == ["music"], results["music"][1]["domains"]
    assert music < pop + 0.1, f"music-only {METRIC} {music:.3f} vs Popularity {pop:.3f}: music is not noise here"


def test_both_sources_beat_music_only(results):
    both, music = results["both"][0].mean(), results["music"][0].mean()
    assert results["both"][1]["domains"] == ["music", "podcast"], results["both"][1]["domains"]
    assert both - music > MARGIN, f"MTL (both) {both:.3f} vs MTL (music only) {music:.3f}: the second modality adds nothing"


def test_second_modality_alone_beats_music_only(results):
    podcast, music = results["podcast"][0].mean(), results["music"][0].mean()
    assert results["podcast"][1]["domains"] == ["podcast"], results["podcast"][1]["domains"]
    assert podcast - music > MARGIN, f"MTL (podcast only) {podcast:.3f} vs MTL (music only) {music:.3f}"
