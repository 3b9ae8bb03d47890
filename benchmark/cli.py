"""``cdrbench``: the command line the DVC stages call. Thin wrappers over library functions.

Every command reads ``params.yaml`` (or ``--params``) and writes to the fixed paths of
:mod:`benchmark.paths`, so DVC can track outputs. Heavy imports happen inside the
commands, so ``cdrbench --help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
import yaml

# ray 2.6 imports pkg_resources at import time; the deprecation notice is not ours to fix
# and would otherwise print on every run stage.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from . import paths

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

ParamsOpt = typer.Option(paths.PARAMS, "--params", help="Params file (params.yaml or params-full.yaml).")


def _params(path: Path) -> dict:
    if not Path(path).exists():
        raise typer.BadParameter(f"params file {path} not found")
    return yaml.safe_load(Path(path).read_text())


def _scenario_spec(params: dict, name: str) -> dict:
    if name not in params.get("scenarios", {}):
        raise typer.BadParameter(f"unknown scenario {name!r}; params list {sorted(params.get('scenarios', {}))}")
    return params["scenarios"][name]


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@app.command()
def fetch(
    source: str = typer.Argument(..., help="Source id from datasets/sources.tsv, or 'all'."),
    mirror: Optional[Path] = typer.Option(None, help="Mirror folder (overrides params fetch.mirror; env CDRBENCH_DATA_MIRROR overrides both)."),
    offline: bool = typer.Option(False, help="Skip the download attempt and use the mirror only."),
    params_path: Path = ParamsOpt,
) -> None:
    """Download (or copy from the mirror) one source's raw files and verify their sha256."""
    from .fetch import FetchError, fetch_source, sources_table

    params = _params(params_path)
    mirror_dir = Path(os.environ.get("CDRBENCH_DATA_MIRROR") or mirror or params["fetch"]["mirror"])
    if not mirror_dir.is_absolute():
        mirror_dir = (paths.ROOT / mirror_dir).resolve()
    ids = sorted(sources_table()["source"].unique()) if source == "all" else [source]
    for sid in ids:
        try:
            files = fetch_source(sid, paths.RAW, mirror=mirror_dir, allow_network=not offline and not os.environ.get("CDRBENCH_OFFLINE"))
        except FetchError as e:
            _fail(str(e))
        typer.echo(f"{sid}: {len(files)} file(s) verified")


@app.command()
def prepare(source: str = typer.Argument(..., help="Source id.")) -> None:
    """Parse one source into canonical parquet tables with a malformed-row report."""
    from .prepare import prepare_source

    report = prepare_source(source, paths.RAW, paths.PREPARED)
    typer.echo(json.dumps(report, indent=1, sort_keys=True, default=str)[:2000])


@app.command()
def scenario(name: str = typer.Argument(..., help="Scenario name from params.yaml."), params_path: Path = ParamsOpt) -> None:
    """Build one scenario: canonical parquet, folds, RecBole atomic files, dataset card."""
    from .scenarios import build_scenario

    params = _params(params_path)
    summary = build_scenario(name, _scenario_spec(params, name), params["protocol"])
    typer.echo(json.dumps(summary, indent=1, sort_keys=True, default=str)[:3000])


@app.command()
def embed(name: str = typer.Argument(..., help="Scenario name."), params_path: Path = ParamsOpt) -> None:
    """Encode the scenario's item text with sentence-transformers (cached by text hash)."""
    from .embed import embed_scenario

    params = _params(params_path)
    _scenario_spec(params, name)
    p = params["embed"]
    info = embed_scenario(paths.SCENARIOS / name, paths.EMBED / name, p["model"], int(p["batch_size"]))
    typer.echo(json.dumps(info, sort_keys=True, default=str))


@app.command()
def pretrain(name: str = typer.Argument(..., help="Scenario name."), params_path: Path = ParamsOpt) -> None:
    """Learn the frozen source-domain item embeddings of one scenario."""
    from .pretrain import pretrain_scenario

    params = _params(params_path)
    _scenario_spec(params, name)
    p = params["pretrain"]
    info = pretrain_scenario(paths.SCENARIOS / name, paths.PRETRAIN / name, int(p["dim"]), int(p["seed"]))
    typer.echo(json.dumps(info, sort_keys=True, default=str))


@app.command()
def run(
    name: str = typer.Argument(..., help="Scenario name."),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Only these model keys (default: params models)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: env RAY_ADDRESS or params tuning.address; else local)."),
    params_path: Path = ParamsOpt,
) -> None:
    """Tune (Ray Tune), fit and evaluate every model on every fold; write run records."""
    from .runner import run_scenario

    params = _params(params_path)
    _scenario_spec(params, name)
    records = run_scenario(name, params, address=address or params["tuning"].get("address"), only=model)
    typer.echo(f"{name}: {len(records)} run records written under {paths.RUNS / name}")


@app.command()
def tune(
    name: str = typer.Argument(..., help="Scenario name."),
    model: str = typer.Option(..., "--model", "-m", help="Model key."),
    seed: int = typer.Option(0), fold: int = typer.Option(0),
    address: Optional[str] = typer.Option(None, help="Ray address, e.g. ray://HOST:10001; default local."),
    params_path: Path = ParamsOpt,
) -> None:
    """Run only the tuning sweep of one model on one fold and print the chosen config."""
    from .features import attach_features
    from .protocol import load_fold
    from .specs import load_spec
    from .tuning import Budget, tune_models

    params = _params(params_path)
    spec_p = _scenario_spec(params, name)
    t = params["tuning"]
    view, truth = load_fold(paths.SCENARIOS / name, seed, fold, int(spec_p.get("min_support", 1)))
    attach_features(view, paths.PRETRAIN / name, paths.EMBED / name)
    res = tune_models([load_spec(model)], {(seed, fold): (view, truth)}, Budget(int(t["n_trials"]), float(t["time_budget_s"]), t["metric"]),
                      address or t.get("address"))[(model, seed, fold)]
    typer.echo(json.dumps(res, sort_keys=True))


@app.command()
def report(params_path: Path = ParamsOpt) -> None:
    """Regenerate leaderboards, tables, figures and results/README.md from run records."""
    from .report import build_report

    written = build_report(paths.RUNS, paths.RESULTS, _params(params_path), external_root=paths.EXTERNAL)
    typer.echo(f"report: {sum(len(v) if isinstance(v, list) else 1 for v in written.values())} files written")


@app.command()
def submit(folder: Path = typer.Argument(..., help="Submission folder (metadata.yaml + predictions)."), params_path: Path = ParamsOpt) -> None:
    """Validate an external submission and, if valid, score it into results/external/ (then run `cdrbench report`)."""
    from .submit import SubmissionError, submit as do_submit

    try:
        res = do_submit(folder, runs_root=paths.EXTERNAL, params=_params(params_path))
    except SubmissionError as e:
        _fail(str(e))
    typer.echo(json.dumps(res, sort_keys=True, default=str))


@app.command()
def models() -> None:
    """List model specs under models/ and the classes they use."""
    from .specs import load_spec

    for p in sorted(paths.MODEL_CARDS.glob("*.yaml")):
        s = load_spec(p.stem)
        typer.echo(f"{s.key:28s} {s.cls:12s} {s.family:10s} {s.description}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
