"""``cdrbench``: the command line the DVC stages call. Thin wrappers over library functions.

Every command reads ``params.yaml`` (or ``--params``) through the typed schema of
:mod:`benchmark.config.params` and writes to the fixed paths of
:mod:`benchmark.config.paths`, so DVC can track outputs. Bad input (a params typo, an
unknown scenario, source or model key, a raw file that fails its checks, a missing
input) is a one-line error and exit code 1, never a traceback (``--debug`` shows it).
Heavy imports happen inside the commands, so ``cdrbench --help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

# ray 2.6 imports pkg_resources at import time; the deprecation notice is not ours to fix
# and would otherwise print on every run stage.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from benchmark.config import paths
from benchmark.config.params import Params, load_params

# Input mistakes: (module, class) pairs, checked only once their module is loaded (an
# error of a module that was never imported cannot have happened), so --help stays fast.
INPUT_ERRORS = (
    ("benchmark.config.params", "ParamsError"),
    ("benchmark.config.specs", "SpecError"),
    ("benchmark.data.fetch", "FetchError"),
    ("benchmark.data.loaders.common", "LoaderError"),
    ("benchmark.scenarios.schema", "SchemaError"),
    ("benchmark.features.embed", "EmbedModelError"),
    ("benchmark.submission.validate", "SubmissionError"),
)


def is_input_error(exc: BaseException) -> bool:
    """A mistake in what the user gave (params, names, files), not a bug of ours."""
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return True
    known = tuple(getattr(sys.modules[m], c) for m, c in INPUT_ERRORS if m in sys.modules)
    return isinstance(exc, known)


class _OneLineErrors(TyperGroup):
    """Every command's input errors become ``error: <one line>`` and exit code 1, in one
    place so no command (present or future) can let a traceback reach a user;
    ``cdrbench --debug <command>`` re-raises instead."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if ctx.params.get("debug") or not is_input_error(exc):
                raise
            _fail(" ".join(str(exc).split()) or type(exc).__name__)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=_OneLineErrors)

ParamsOpt = typer.Option(paths.PARAMS, "--params", help="Params file (its `setting: full` overlays params-full.yaml).")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error instead of one line.")) -> None:
    """Global options (read by :class:`_OneLineErrors`)."""


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _params(path: Path) -> Params:
    return load_params(Path(path))


def _stage_params(path: Path, name: str, built: bool = True) -> Params:
    """The params of a stage that reads a built scenario, after checking the scenario
    exists in params and (``built``) has been built."""
    params = _params(path)
    params.scenario(name)
    if built:
        _require_built(name)
    return params


def _require_built(name: str) -> None:
    if not (paths.SCENARIOS / name / "meta.json").is_file():
        _fail(f"scenario {name!r} is not built ({paths.SCENARIOS / name} has no meta.json): run `cdrbench scenario {name}` first")


def _echo(info: dict) -> None:
    typer.echo(json.dumps(info, sort_keys=True, default=str))


@app.command()
def fetch(
    source: str = typer.Argument(..., help="Source id from datasets/sources.tsv, or 'all'."),
    mirror: Optional[Path] = typer.Option(None, help="Mirror folder (overrides params fetch.mirror; env CDRBENCH_DATA_MIRROR overrides both)."),
    offline: bool = typer.Option(False, help="Skip the download attempt and use the mirror only."),
    params_path: Path = ParamsOpt,
) -> None:
    """Download (or copy from the mirror) one source's raw files and verify their sha256."""
    from benchmark.data.fetch import fetch_source, sources_table

    params = _params(params_path)
    mirror_dir = Path(os.environ.get("CDRBENCH_DATA_MIRROR") or mirror or params.fetch.mirror)
    if not mirror_dir.is_absolute():
        mirror_dir = (paths.ROOT / mirror_dir).resolve()
    ids = sorted(sources_table(paths.SOURCES_TSV)["source"].unique()) if source == "all" else [source]
    for sid in ids:  # CDRBENCH_OFFLINE is read (and checked) by fetch_source
        files = fetch_source(sid, paths.RAW, mirror=mirror_dir, sources_tsv=paths.SOURCES_TSV, allow_network=not offline)
        typer.echo(f"{sid}: {len(files)} file(s) verified")


@app.command()
def prepare(source: str = typer.Argument(..., help="Source id."), params_path: Path = ParamsOpt) -> None:
    """Parse one source into canonical parquet tables with a malformed-row report.

    The raw files are checked against datasets/sources.tsv first; a file the loader
    cannot read (or keeps less than prepare.min_kept_share of) is refused and the
    previous output is left as it was."""
    from benchmark.data.prepare import prepare_source

    params = _params(params_path)
    report = prepare_source(source, paths.RAW, paths.PREPARED, sources_tsv=paths.SOURCES_TSV, min_kept_share=params.prepare.min_kept_share)
    typer.echo(json.dumps(report, indent=1, sort_keys=True, default=str)[:2000])


@app.command("prepare-full")
def prepare_full_cmd(source: str = typer.Argument(..., help="Id from params full_sources."), params_path: Path = ParamsOpt) -> None:
    """Prepare a downloaded full public dataset out of core (DuckDB) into data/prepared/<id>/."""
    from benchmark.data.full import prepare_full

    params = _params(params_path)
    if source not in params.full_sources:
        _fail(f"{source!r} is not in params full_sources {sorted(params.full_sources)}")
    s = params.full_sources[source]
    report = prepare_full(source, s.kind, s.path, paths.PREPARED, memory_limit=s.memory_limit, threads=s.threads,
                          work_dir=Path(s.work_dir) if s.work_dir else None, min_kept_share=params.prepare.min_kept_share)
    typer.echo(json.dumps(report, indent=1, sort_keys=True, default=str)[:2000])


@app.command()
def scenario(name: str = typer.Argument(..., help="Scenario name from params.yaml."), params_path: Path = ParamsOpt) -> None:
    """Build one scenario: canonical parquet, folds, RecBole atomic files, dataset card."""
    from benchmark.scenarios import build_scenario

    params = _params(params_path)
    summary = build_scenario(name, params.scenario(name), params.protocol, paths.PREPARED, paths.SCENARIOS, paths.DATASET_CARDS)
    typer.echo(json.dumps(summary, indent=1, sort_keys=True, default=str)[:3000])


@app.command("code-hash")
def code_hash_cmd(
    check: Optional[Path] = typer.Option(None, help="A leaderboard JSON: warn (exit 0) when its runs came from other modelling code."),
) -> None:
    """Print the hash of the modelling code (models, experiment, evaluation, features, specs) that run records carry."""
    from benchmark.evaluation.records import code_hash

    now = code_hash()
    if check is None:
        typer.echo(now)
        return
    try:
        board = json.loads(Path(check).read_text())
    except (OSError, ValueError) as e:
        _fail(f"{check}: cannot read a leaderboard JSON ({e})")
    then = (board.get("setting") or {}).get("code_hashes") or []
    if then != [now]:
        typer.echo(f"warning: {check} was produced by modelling code {', '.join(then) or 'of unknown hash'}; "
                   f"the code here hashes to {now}: regenerate it with `dvc repro` before citing it", err=True)
    else:
        typer.echo(f"{check}: produced by this modelling code ({now})")


@app.command("export-hf")
def export_hf(
    name: str = typer.Argument(..., help="Scenario name."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default data/hf/<name>)."),
    params_path: Path = ParamsOpt,
) -> None:
    """Write a built scenario as a Hugging Face datasets folder (parquet + README.md with the Hub's YAML).

    Open it with ``datasets.load_dataset(folder, "interactions")`` or a fold config such as
    ``"fold-s0-f0"``; publish it unchanged with ``huggingface-cli upload``."""
    from benchmark.scenarios.hf import export_hf as _export

    _stage_params(params_path, name)
    info = _export(paths.SCENARIOS / name, paths.DATASET_CARDS / name / "card.json", out or paths.DATA / "hf" / name)
    _echo(info)


@app.command()
def embed(name: str = typer.Argument(..., help="Scenario name."), params_path: Path = ParamsOpt) -> None:
    """Encode the scenario's item text with sentence-transformers (cached by text hash)."""
    from benchmark.features.embed import embed_scenario

    p = _stage_params(params_path, name).embed
    _echo(embed_scenario(paths.SCENARIOS / name, paths.EMBED / name, p.model, p.batch_size))


@app.command()
def pretrain(name: str = typer.Argument(..., help="Scenario name."), params_path: Path = ParamsOpt) -> None:
    """Learn the frozen source-domain item embeddings of one scenario."""
    from benchmark.features.pretrain import pretrain_scenario

    p = _stage_params(params_path, name).pretrain
    _echo(pretrain_scenario(paths.SCENARIOS / name, paths.PRETRAIN / name, p.dim, p.seed, paths.PREPARED))


@app.command()
def run(
    name: str = typer.Argument(..., help="Scenario name."),
    model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Only these model keys (default: params models)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: env RAY_ADDRESS or params tuning.address; else local)."),
    params_path: Path = ParamsOpt,
) -> None:
    """Tune (Ray Tune), fit and evaluate every model on every fold; write run records."""
    from benchmark.experiment.registry import checked_spec
    from benchmark.experiment.runner import run_scenario

    params = _stage_params(params_path, name, built=False)
    for key in model or []:
        checked_spec(key)
    _require_built(name)
    records = run_scenario(name, params, address=address or params.tuning.address, only=model)
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
    from benchmark.experiment.registry import checked_spec
    from benchmark.experiment.tuning import Budget, tune_models
    from benchmark.features.vectors import attach_features
    from benchmark.scenarios.protocol import load_fold

    params = _stage_params(params_path, name, built=False)
    spec_p = params.scenario(name)
    spec = checked_spec(model)
    if seed not in params.protocol.seeds or not 0 <= fold < params.protocol.k:
        _fail(f"no fold (seed={seed}, fold={fold}): params protocol has seeds {list(params.protocol.seeds)} and folds 0-{params.protocol.k - 1}")
    _require_built(name)
    t = params.tuning
    view, truth = load_fold(paths.SCENARIOS / name, seed, fold, spec_p.min_support)
    attach_features(view, paths.PRETRAIN / name, paths.EMBED / name)
    res = tune_models([spec], {(seed, fold): (view, truth)}, Budget.from_params(t), address or t.address)[(model, seed, fold)]
    typer.echo(json.dumps(res, sort_keys=True))


@app.command()
def report(params_path: Path = ParamsOpt) -> None:
    """Regenerate leaderboards, tables, figures, results/README.md and the static site results/site/ from run records."""
    from benchmark.report import build_report
    from benchmark.report.site import write_site

    written = build_report(paths.RUNS, paths.RESULTS, _params(params_path), external_root=paths.EXTERNAL, twins_root=paths.TWINS)
    # The site reads the finished report outputs, the model specs and the dataset cards.
    written["site"] = write_site(paths.RESULTS, paths.RESULTS / "site", paths.MODEL_CARDS, paths.DATASET_CARDS)
    typer.echo(f"report: {sum(len(v) if isinstance(v, list) else 1 for v in written.values())} files written")


@app.command()
def submit(folder: Path = typer.Argument(..., help="Submission folder (metadata.yaml + predictions)."), params_path: Path = ParamsOpt) -> None:
    """Validate an external submission and, if valid, score it into results/external/ (then run `cdrbench report`)."""
    from benchmark.submission.score import submit as do_submit

    res = do_submit(folder, runs_root=paths.EXTERNAL, params=_params(params_path))
    typer.echo(json.dumps(res, sort_keys=True, default=str))


@app.command()
def models() -> None:
    """List model specs under models/ and the classes they use."""
    from benchmark.config.specs import discover
    from benchmark.experiment.registry import checked_spec

    for key in discover():
        s = checked_spec(key)
        typer.echo(f"{s.key:26s} {s.display_name:28s} {s.family:10s} {s.cls}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
