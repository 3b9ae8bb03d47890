"""Submissions: each rejection reason, all problems at once, nothing written on rejection,
and an accepted submission scored from its lists exactly like the benchmark's own runs."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.config import paths
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.evaluation.records import collect_runs
from benchmark.models.popularity import Popularity
from benchmark.scenarios.protocol import load_fold
from benchmark.scenarios.schema import scenario_hash
from benchmark.submission import reading
from benchmark.submission import score as sub
from benchmark.submission import validate as checks
from conftest import make_params, planted_scenario, write_scenario

sys.path.insert(0, str(paths.ROOT / "scripts"))
from make_example_submission import make_predictions  # noqa: E402

KS = [3, 5, 10, 20]
PARAMS = make_params({"tiny-planted": {"builder": "real", "min_support": 1}}, ks=KS)


@pytest.fixture(scope="module")
def scenario_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenarios")
    write_scenario(planted_scenario(seed=0, n_users=60, n_groups=6).tables(), root)
    return root


@pytest.fixture(scope="module")
def good_predictions(scenario_root) -> pd.DataFrame:
    return make_predictions(scenario_root / "tiny-planted", seeds=[0], min_support=1, n_items=20)


def make_submission(folder: Path, scenario_root: Path, preds: pd.DataFrame, fmt: str = "csv", **meta_over) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"model": "My Pop Model", "authors": ["A. Author"], "code_url": "https://example.org/code",
            "description": "popularity, resubmitted", "scenario": "tiny-planted",
            "scenario_hash": scenario_hash(scenario_root / "tiny-planted"), "seeds": [0], "folds": [0, 1, 2, 3, 4]}
    meta.update(meta_over)
    meta = {k: v for k, v in meta.items() if v is not None}
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=True))
    if fmt == "csv":
        preds.to_csv(folder / "predictions.csv", index=False)
    else:
        preds.to_parquet(folder / "predictions.parquet", index=False)
    return folder


def tree_hashes(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        if root.exists():
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def rejected(tmp_path, scenario_root, folder, params=PARAMS) -> list[str]:
    runs = tmp_path / "runs"
    (runs / "tiny-planted" / "popularity").mkdir(parents=True, exist_ok=True)
    (runs / "tiny-planted" / "popularity" / "marker.txt").write_text("existing run")
    before = tree_hashes(runs, scenario_root, folder)
    with pytest.raises(sub.SubmissionError) as e:
        sub.submit(folder, scenario_root, runs, params)
    assert tree_hashes(runs, scenario_root, folder) == before, "a rejected submission changed files on disk"
    assert str(e.value).count("\n- ") == len(e.value.problems)
    return e.value.problems


def one(problems: list[str], *words: str) -> str:
    hits = [p for p in problems if all(w in p for w in words)]
    assert hits, f"no problem mentions {words}: {problems}"
    return hits[0]


def test_accepts_and_scores_from_lists(tmp_path, scenario_root, good_predictions):
    runs = tmp_path / "runs"
    other = runs / "tiny-planted" / "popularity" / "s0_f0"
    other.mkdir(parents=True)
    (other / "note.txt").write_text("untouched")
    before_other = tree_hashes(runs, scenario_root)
    folder = make_submission(tmp_path / "subm", scenario_root, good_predictions, fmt="parquet")
    res = sub.submit(folder, scenario_root, runs, PARAMS)
    assert res["model"] == "external-my-pop-model" and len(res["runs"]) == 5
    after = tree_hashes(runs, scenario_root)
    assert {k: v for k, v in after.items() if k in before_other} == before_other
    new = sorted(set(after) - set(before_other))
    assert new and all("/external-my-pop-model/" in k for k in new)

    records, per_user = collect_runs(runs, "tiny-planted")
    assert set(records["model"]) == {"external-my-pop-model"}
    assert records["external"].all() and (records["display_name"] == "My Pop Model").all()
    # Scored by the benchmark's evaluator: identical to evaluating Popularity itself.
    for fold in range(5):
        view, truth = load_fold(scenario_root / "tiny-planted", 0, fold, 1)
        ref, _ = evaluate_model(Popularity().fit(view), view.test_users, truth.test, KS, view.popularity())
        got = per_user[per_user["fold"] == fold].reset_index(drop=True)
        assert list(got["user"]) == list(view.users[view.test_users])
        for c in ("NDCG@10", "P@3", "HR@20", "tail/R@10"):
            np.testing.assert_allclose(got[c].to_numpy(), ref[c].to_numpy(), equal_nan=True)


def test_resubmission_replaces_own_entry_only_when_explicit(tmp_path, scenario_root, good_predictions):
    runs = tmp_path / "runs"
    folder = make_submission(tmp_path / "subm", scenario_root, good_predictions)
    assert sub.submit(folder, scenario_root, runs, PARAMS)["replaced"] is False
    first = collect_runs(runs, "tiny-planted")[1]["NDCG@10"].mean()
    worse = good_predictions.copy()
    worse["rank"] = worse.groupby(["seed", "fold", "user"])["rank"].transform(lambda r: r.max() + 1 - r)
    entry = runs / "tiny-planted" / "external-my-pop-model"
    before = tree_hashes(entry)
    again = make_submission(tmp_path / "subm2", scenario_root, worse, authors=["a.  AUTHOR"])  # same authors, normalised
    one(rejected(tmp_path, scenario_root, again), "already exists", "same authors", "replaces: external-my-pop-model")
    assert tree_hashes(entry) == before
    wrong = make_submission(tmp_path / "subm3", scenario_root, worse, replaces="external-someone-else")
    one(rejected(tmp_path, scenario_root, wrong), "'replaces: external-someone-else'", "can only replace itself")
    res = sub.submit(make_submission(tmp_path / "subm4", scenario_root, worse, replaces="external-my-pop-model"),
                     scenario_root, runs, PARAMS)
    assert res["replaced"] is True and tree_hashes(entry) != before
    records, per_user = collect_runs(runs, "tiny-planted")
    assert len(records) == 5 and not list((runs / "tiny-planted").glob(".*"))
    assert per_user["NDCG@10"].mean() < first  # the reversed lists replaced the first ones


def test_missing_files(tmp_path, scenario_root):
    folder = tmp_path / "empty"
    folder.mkdir()
    problems = rejected(tmp_path, scenario_root, folder)
    one(problems, "metadata", "none of")
    one(problems, "predictions", "none of")


def test_missing_folder(tmp_path, scenario_root):
    with pytest.raises(sub.SubmissionError, match="does not exist"):
        sub.submit(tmp_path / "nope", scenario_root, tmp_path / "runs", PARAMS)


def test_metadata_fields_and_types(tmp_path, scenario_root, good_predictions):
    folder = make_submission(tmp_path / "s", scenario_root, good_predictions, authors=None, seeds="0", code_url="")
    problems = rejected(tmp_path, scenario_root, folder)
    one(problems, "missing field 'authors'")
    one(problems, "'seeds'")
    one(problems, "'code_url'")


def test_unparseable_metadata(tmp_path, scenario_root, good_predictions):
    folder = make_submission(tmp_path / "s", scenario_root, good_predictions)
    (folder / "metadata.yaml").write_text("model: [unclosed\n")
    one(rejected(tmp_path, scenario_root, folder), "metadata.yaml", "cannot be parsed")


def test_unreadable_predictions(tmp_path, scenario_root, good_predictions):
    folder = make_submission(tmp_path / "s", scenario_root, good_predictions, fmt="parquet")
    (folder / "predictions.parquet").write_bytes(b"not a parquet file at all")
    one(rejected(tmp_path, scenario_root, folder), "predictions.parquet", "cannot be read")


def test_schema_columns_and_types(tmp_path, scenario_root, good_predictions):
    bad = good_predictions.drop(columns=["rank"])
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "a", scenario_root, bad)), "missing column", "rank")
    bad = good_predictions.astype({"rank": str})
    bad.loc[bad.index[:3], "rank"] = "first"
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "b", scenario_root, bad)), "'rank'", "integers")


def test_too_large(tmp_path, scenario_root, good_predictions, monkeypatch):
    monkeypatch.setattr(reading, "MAX_BYTES", 1000)
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, good_predictions)), "exceeds")


def test_unknown_scenario(tmp_path, scenario_root, good_predictions):
    folder = make_submission(tmp_path / "s", scenario_root, good_predictions, scenario="no-such-scenario")
    one(rejected(tmp_path, scenario_root, folder), "no-such-scenario", "not built")
    folder = make_submission(tmp_path / "t", scenario_root, good_predictions, scenario="../tiny-planted")
    one(rejected(tmp_path, scenario_root, folder), "not a scenario name")


def test_hash_mismatch(tmp_path, scenario_root, good_predictions):
    folder = make_submission(tmp_path / "s", scenario_root, good_predictions, scenario_hash="0123456789abcdef")
    one(rejected(tmp_path, scenario_root, folder), "scenario_hash", "does not match")


def test_wrong_user_sets(tmp_path, scenario_root, good_predictions):
    p = good_predictions
    gone_user = p.loc[(p.seed == 0) & (p.fold == 1), "user"].iloc[0]
    stranger = p.loc[(p.seed == 0) & (p.fold == 2), "user"].iloc[0]  # a test user of another fold
    extra = p[(p.fold == 2) & (p.user == stranger)].assign(fold=1)
    bad = pd.concat([p[~((p.fold == 1) & (p.user == gone_user))], extra])
    problems = rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad))
    assert gone_user in one(problems, "seed 0 fold 1", "no ranked list")
    assert stranger in one(problems, "seed 0 fold 1", "not test users")


def test_items_outside_catalog(tmp_path, scenario_root, good_predictions):
    bad = good_predictions.copy()
    bad.loc[bad.index[0], "item"] = "book:not-in-catalog"
    assert "book:not-in-catalog" in one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad)),
                                        "not in this fold's target catalog")


def test_duplicate_items(tmp_path, scenario_root, good_predictions):
    bad = good_predictions.copy()
    bad.loc[bad.index[1], "item"] = bad.loc[bad.index[0], "item"]
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad)), "list an item twice")


def test_ranks_not_contiguous(tmp_path, scenario_root, good_predictions):
    bad = good_predictions.copy()
    bad.loc[bad["rank"] == 5, "rank"] = 25
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad)), "not exactly 1..n")


def test_lists_too_short(tmp_path, scenario_root, good_predictions):
    bad = good_predictions[good_predictions["rank"] <= 10]
    one(rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad)), "fewer than 20")


def test_missing_and_undeclared_folds(tmp_path, scenario_root, good_predictions):
    bad = pd.concat([good_predictions[good_predictions["fold"] != 4],
                     good_predictions[good_predictions["fold"] == 0].assign(seed=7)])
    problems = rejected(tmp_path, scenario_root, make_submission(tmp_path / "s", scenario_root, bad))
    one(problems, "seed 0 fold 4", "no predictions")
    one(problems, "not declared")
    folder = make_submission(tmp_path / "t", scenario_root, good_predictions, seeds=[0, 3], folds=[0, 1])
    problems = rejected(tmp_path, scenario_root, folder)
    one(problems, "seed 3", "not dealt")
    one(problems, "must be all 5 folds")


def test_all_problems_reported_together(tmp_path, scenario_root, good_predictions):
    bad = good_predictions.copy()
    bad.loc[bad.index[0], "item"] = "book:nowhere"
    bad = bad[bad["rank"] <= 15]
    folder = make_submission(tmp_path / "s", scenario_root, bad, scenario_hash="ffff", authors=None)
    problems = rejected(tmp_path, scenario_root, folder)
    for words in (("authors",), ("scenario_hash",), ("target catalog",), ("fewer than 20",)):
        one(problems, *words)


def test_accepted_records_carry_the_run_record_keys(tmp_path, scenario_root, good_predictions):
    from benchmark.evaluation.records import REQUIRED_KEYS

    from benchmark.evaluation.records import read_record

    res = sub.submit(make_submission(tmp_path / "subm", scenario_root, good_predictions), scenario_root,
                     tmp_path / "runs", PARAMS)
    for folder in res["runs"]:
        rec = read_record(Path(folder))
        missing = sorted((set(REQUIRED_KEYS) | {"display_name", "setting"}) - set(rec))
        assert not missing, f"{folder}: external run record lacks {missing}"
        assert rec["setting"] == PARAMS.setting and rec["config_hash"]
