"""The README's "Add a model" example, run as written: one module plus one spec is all it takes.

The test copies the two code blocks of that README section into a temporary module of
``benchmark.models`` and a temporary specs folder (nothing in the repository changes),
then checks that the spec is discovered, listed by ``models: all``, built through the
registry, fitted and scored by the runner's own fit-and-evaluate step, and that its
display name reaches the report. If the README drifts from the code, this fails.
"""

from __future__ import annotations

import re
import shutil
import sys

import numpy as np
import pytest

import benchmark.models
from benchmark.config import paths
from benchmark.config.params import load_params
from benchmark.config.specs import discover, load_spec
from benchmark.experiment import registry
from benchmark.experiment.runner import fit_and_evaluate
from benchmark.report.runs import display_name


def _section_blocks() -> tuple[str, str, str, str]:
    text = (paths.ROOT / "README.md").read_text()
    section = text[text.index("### Add a model"):]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    files = re.findall(r"`((?:benchmark/models|models)/[\w./-]+\.(?:py|yaml))`:\n\n```(?:python|yaml)\n(.*?)```", section, re.S)
    assert len(files) == 2, f"expected one module and one spec in the README section, found {[f for f, _ in files]}"
    (mod_path, mod_src), (spec_path, spec_src) = files
    return mod_path, mod_src, spec_path, spec_src


@pytest.fixture
def example(tmp_path, monkeypatch):
    mod_path, mod_src, spec_path, spec_src = _section_blocks()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / mod_path.split("/")[-1]).write_text(mod_src)
    specs = tmp_path / "models"
    shutil.copytree(paths.MODEL_CARDS, specs)  # the existing specs, plus the new one
    (specs / spec_path.split("/")[-1]).write_text(spec_src)
    monkeypatch.setattr(benchmark.models, "__path__", [*benchmark.models.__path__, str(pkg)])
    key = spec_path.split("/")[-1].removesuffix(".yaml")
    yield key, specs
    sys.modules.pop(f"benchmark.models.{mod_path.split('/')[-1].removesuffix('.py')}", None)


def test_one_module_and_one_spec(example, planted_fold, tmp_path):
    key, specs = example
    assert key in discover(specs)
    assert key in load_params().model_keys(discover(specs))  # `models: all` picks it up
    spec = registry.checked_spec(key, specs)
    view, truth = planted_fold
    res = fit_and_evaluate(spec, (view, truth), {}, 0, [5, 10])
    assert len(res["per_user"]) == len(view.test_users)
    assert np.isfinite(res["per_user"]["NDCG@10"]).all()
    assert res["fit_info"]["cohorts"] >= 1  # fit_info reaches the record
    assert {"distinct_share", "pop_overlap", "collapsed"} <= set(res["collapse"])
    res["per_user"].to_parquet(tmp_path / "per_user.parquet")  # what write_run does: frame attrs must be JSON-able
    assert display_name(key, {"display_name": load_spec(key, specs).display_name}) == "Cohort popularity"
