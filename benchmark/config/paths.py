"""Fixed output paths shared by the CLI and the DVC stages.

DVC tracks files by path, so every stage writes to a path derived only from its
arguments (never a timestamp). Keeping them in one module means ``dvc.yaml`` and the
code cannot drift apart silently: tests import these and compare.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
RAW = DATA / "raw"
PREPARED = DATA / "prepared"
SCENARIOS = DATA / "scenarios"
EMBED = DATA / "embed"
PRETRAIN = DATA / "pretrain"
RESULTS = ROOT / "results"
RUNS = RESULTS / "runs"
# Run records of the real scenarios' null twins (same layout as RUNS; not scenarios of their own).
TWINS = RESULTS / "twins"
# External submissions live apart from the run stage outputs, which DVC rebuilds whole.
EXTERNAL = RESULTS / "external"
LEADERBOARD = RESULTS / "leaderboard"
TABLES = RESULTS / "tables"
FIGURES = RESULTS / "figures"
SUBMISSIONS = ROOT / "submissions"
DATASET_CARDS = ROOT / "datasets"
MODEL_CARDS = ROOT / "models"
SOURCES_TSV = DATASET_CARDS / "sources.tsv"
PARAMS = ROOT / "params.yaml"


def scenario_dir(name: str, root: Path | None = None) -> Path:
    return (root or SCENARIOS) / name


def run_dir(scenario: str, model: str, seed: int, fold: int, root: Path | None = None) -> Path:
    return (root or RUNS) / scenario / model / f"s{seed}_f{fold}"
