"""The committed records of the published run (results/records): whole, in the full setting, one test per user.

These read the committed archive itself (no fixture), so they check real pipeline outputs on
every `make test`; the checks that need the built scenario data (leakage of the tuning users,
target rows in training) run with `pytest -m built` in the workspace that produced them
(scripts/land_published.sh refuses to land without them).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config import paths

sys.path.insert(0, str(paths.ROOT / "scripts"))
import records_archive as ra  # noqa: E402

ARCHIVE = paths.RESULTS / "records"
pytestmark = pytest.mark.skipif(not (ARCHIVE / "MANIFEST.tsv").is_file(), reason="no committed published records")


def _records(kind: str) -> dict[Path, dict]:
    return {p.parent: json.loads(p.read_text()) for p in sorted((ARCHIVE / kind).glob("*/*/s*_f*/record.json"))}


def test_archive_matches_its_manifest():
    assert ra.check(ARCHIVE) == []


def test_every_record_is_of_the_full_setting():
    recs = {**_records("runs"), **_records("twins")}
    assert recs
    bad = [f"{folder.relative_to(ARCHIVE)}: {r['setting']}, {r['n_folds']} folds, seeds {r['seeds_setting']}"
           for folder, r in recs.items() if (r["setting"], r["n_folds"], r["seeds_setting"]) != ("full", 5, [0, 1])]
    assert not bad, bad[:5]


def test_each_user_is_tested_at_most_once_per_model_and_seed():
    seen: dict[tuple, dict[str, str]] = defaultdict(dict)
    clashes = []
    for folder, r in _records("runs").items():
        users = pd.read_parquet(folder / "per_user.parquet", columns=["user"])["user"]
        assert users.is_unique, f"{folder}: a user scored twice in one run"
        slot = (r["scenario"], r["model"], r["seed"])
        for u in users:
            if u in seen[slot]:
                clashes.append(f"{slot}: user {u} in folds {seen[slot][u]} and {r['fold']}")
            seen[slot][u] = r["fold"]
    assert not clashes, clashes[:5]


def test_one_tuning_per_model_and_scenario():
    chosen: dict[tuple, set] = defaultdict(set)
    for r in _records("runs").values():
        chosen[(r["scenario"], r["model"])].add(json.dumps(r["tuning"].get("chosen_config"), sort_keys=True))
    several = {k: v for k, v in chosen.items() if len(v) > 1}
    assert not several, several


def test_twin_runs_score_the_users_of_their_real_run():
    real = _records("runs")
    twins = _records("twins")
    for folder, r in twins.items():
        partner = ARCHIVE / "runs" / folder.relative_to(ARCHIVE / "twins")
        if partner not in real:
            continue  # the real run is not archived yet (a run cut off between the two)
        a = set(pd.read_parquet(folder / "per_user.parquet", columns=["user"])["user"])
        b = set(pd.read_parquet(partner / "per_user.parquet", columns=["user"])["user"])
        assert a == b, f"{folder.relative_to(ARCHIVE)}: {len(a ^ b)} users differ from the real run"
