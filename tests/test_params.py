"""params.yaml goes through one typed schema: typos and bad values are one-line errors.

Each case edits the committed params.yaml by one token, the way a user would mistype
it, and expects a ParamsError naming the key; the CLI turns the same error into one
line on stderr and exit code 1 (never a traceback, never a silently different run).
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.config import paths
from benchmark.config.params import ParamsError, load_params
from params_text import ci_params_text, write_params

BASE = ci_params_text()  # the committed file in the CI setting, whichever it selects
OVERLAY = (paths.ROOT / "params-full.yaml").read_text()


def test_committed_params_are_valid(tmp_path):
    assert load_params().setting in ("ci", "full")  # full when the committed leaderboards are the published ones
    p = load_params(write_params(tmp_path, BASE))
    assert p.setting == "ci" and p.protocol.k >= 2 and p.scenarios
    assert set(p.protocol.model_dump()) == {"k", "seeds", "valid_share"}  # report params stay out of the scenario hash


@pytest.mark.parametrize(
    "old, new, where",
    [
        ("time_cut: true", "timecut: true", "scenarios.ciao-m2b.timecut: unknown key"),
        ("protocol:\n", "protocl:\n", "protocl: unknown key"),
        ("  k: 2 ", "  k: two ", "protocol.k:"),
        ("seeds: [0]", "seeds: 0", "protocol.seeds:"),
        ("valid_share: 0.1", "valid_share: 1.5", "protocol.valid_share:"),
        ("rho: 1.0", "rho: 2.0", "scenarios.mpa-linked-rho1.rho:"),
        ("n_trials: 2", "n_trials: -1", "tuning.n_trials:"),
        ("metric: NDCG@10", "metric: NDCG@7", "evaluation.ks"),
        ("builder: real", "builder: reel", "scenarios.douban-m2b"),
        ("bootstrap: 1000", "bootstrap: lots", "report.bootstrap:"),
    ],
)
def test_one_line_error_names_the_key(tmp_path, old, new, where):
    assert old in BASE, f"the committed params.yaml no longer contains {old!r}"
    path = write_params(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ParamsError) as e:
        load_params(path)
    msg = str(e.value)
    assert where in msg and "\n" not in msg, msg


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "protocol: [unclosed\n"])
def test_empty_or_malformed_file(tmp_path, text):
    with pytest.raises(ParamsError, match="params.yaml"):
        load_params(write_params(tmp_path, text))


def test_full_setting_is_the_overlay(tmp_path):
    ci = load_params(write_params(tmp_path / "ci", BASE))
    full = load_params(write_params(tmp_path, BASE.replace("setting: ci", "setting: full", 1)))
    assert (full.protocol.k, full.protocol.seeds, full.tuning.n_trials) == (5, [0, 1], 8)
    assert (full.tuning.tune_folds, full.tuning.tune_seeds, full.twins.folds) == (1, 1, 1)
    # everything the overlay does not name is the base file's; for scenarios it names only the
    # CI user samples of the multi-source ones (deep merge: their other keys are the base file's)
    sampled = {n for n, s in ci.scenarios.items() if getattr(s, "user_sample", None) is not None}
    assert sampled == {"epinions-mv2b", "epinions-mm2b"}  # ciao-me2b is small enough to run whole
    assert all(full.scenarios[n].user_sample is None for n in sampled)
    unsample = {n: s.model_copy(update={"user_sample": None}) if n in sampled else s for n, s in ci.scenarios.items()}
    assert full.scenarios == unsample and ci.evaluation.folds == 1 and full.evaluation == ci.evaluation.model_copy(update={"folds": None}) and full.protocol.valid_share == ci.protocol.valid_share


def test_overlay_typo_is_an_error(tmp_path):
    path = write_params(tmp_path, BASE.replace("setting: ci", "setting: full", 1), OVERLAY.replace("tuning:", "tunning:"))
    with pytest.raises(ParamsError, match="params-full.yaml: tunning: unknown key"):
        load_params(path)


def test_cli_prints_one_line_and_exits_1(tmp_path):
    path = write_params(tmp_path, BASE.replace("time_cut: true", "timecut: true", 1))
    res = CliRunner().invoke(app, ["scenario", "ciao-m2b", "--params", str(path)])
    assert res.exit_code == 1
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert lines == ["error: params.yaml: scenarios.ciao-m2b.timecut: unknown key"], res.output


def test_cli_unknown_scenario_and_model(tmp_path):
    res = CliRunner().invoke(app, ["embed", "nosuch", "--params", str(paths.PARAMS)])
    assert res.exit_code == 1 and "unknown scenario 'nosuch'" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["tune", "douban-m2b", "-m", "nosuchmodel", "--params", str(paths.PARAMS)])
    assert res.exit_code == 1 and "no model spec" in res.output and "Traceback" not in res.output
