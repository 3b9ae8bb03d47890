"""The report stage: leaderboards, the seven tables of DESIGN section 5, figures, README.

``build_report`` reads run records only (``results/runs``), never models or data, and
rewrites ``results/leaderboard``, ``results/tables``, ``results/figures`` and
``results/README.md`` whole. Output is deterministic: no timestamps, stable sorting,
seeded bootstraps, so an unchanged set of runs gives byte-identical files.

Which tables and figures exist depends only on the scenario list (``params.yaml``
``scenarios`` plus any scenario found under the runs folder) and each scenario's kind
(``builder: linked`` = semi-synthetic three-domain; ``multi`` = real people with music, a
second source modality and books; otherwise real music -> book), not on which runs
finished: missing runs are reported inside the files. The paper's cohort and fusion
tables (2-5, Figs. 3-4) and the per-cohort table exist for every scenario with two source
modalities, linked or multi; the null twin and its transfer gain for every real one.

Real scenarios also get their transfer gain over the null twin
(:mod:`benchmark.report.transfer`), read from the twin run records (``results/twins``):
a column on the leaderboard and in tables 6-7, a figure of score against gain, and a
column of the findings. Twins are never scenarios of their own here.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.config import paths
from benchmark.report.figures import leaderboard_figure, overview_figure, relative_figure, replication_figure, transfer_figure
from benchmark.config.params import Params
from benchmark.report.leaderboard import write_leaderboard
from benchmark.report.runs import ScenarioRuns, Settings
from benchmark.report.recipes import TABLE2, TABLE3
from benchmark.report.readme import render
from benchmark.report.replication import table6, table7, table7_head_tail, table7_history
from benchmark.report.tables import T7_METRICS, table1, table4, table4b, table5, table_cohort, table_cohorts
from benchmark.report.transfer import scenario_gains

__all__ = ["build_report", "scenario_plan", "figure_paths"]

OUTPUT_SUFFIXES = (".md", ".csv", ".json", ".png")
TWO_SOURCES = ("linked", "multi")  # scenario kinds with a second source modality (the "podcast" role)


def scenario_plan(params: Params | None, runs_root: Path | list[Path]) -> tuple[list[str], dict[str, str], dict[str, float | None]]:
    """Scenario names (params order, then extra run folders sorted), their kind and rho."""
    spec = dict(params.scenarios) if params is not None else {}
    names = list(spec)
    roots = [runs_root] if isinstance(runs_root, (str, Path)) else list(runs_root)
    extra = {p.name for r in roots if Path(r).is_dir() for p in Path(r).iterdir() if p.is_dir() and not p.name.startswith(".")}
    names += sorted(extra - set(spec))
    kinds, rho = {}, {}
    for s in names:
        sp = spec.get(s)
        kinds[s] = "" if sp is None else (sp.builder if sp.builder in ("linked", "multi") else "real")  # goodreads-audio: real people
        rho[s] = float(sp.rho) if sp is not None and sp.builder == "linked" else None
    return names, kinds, rho


def figure_paths(params: Params | None, out_root: Path = paths.RESULTS, runs_root: Path | list[Path] = paths.RUNS) -> list[Path]:
    """The PNG files ``build_report`` writes for these params (for DVC plot declarations)."""
    names, kinds, _ = scenario_plan(params, runs_root)
    fig = Path(out_root) / "figures"
    out = []
    for s in names:
        out += [fig / f"leaderboard_{s}.png", fig / f"table1_relative_improvement_{s}.png"]
        if kinds[s] in TWO_SOURCES:
            out += [fig / f"fig3_mp_cohort_{s}.png", fig / f"fig4_dual_signal_{s}.png"]
        if kinds[s] != "linked":
            out.append(fig / f"transfer_{s}.png")
    return out + [fig / "table7_real_replication.png", fig / "overview_vs_popularity.png"]


def _clear(folder: Path) -> None:
    """Remove previous report files (only ours, by suffix) so a dropped scenario leaves nothing stale."""
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix in OUTPUT_SUFFIXES:
                p.unlink()


def build_report(runs_root: Path = paths.RUNS, out_root: Path = paths.RESULTS, params: Params | None = None,
                 external_root: Path | None = None, twins_root: Path | None = None) -> dict:
    """Regenerate every report output from the run records; return the written paths by kind.

    ``external_root``: an optional second runs folder (same layout) holding scored
    submissions, for a pipeline that keeps them outside the ``run`` stage's outputs.
    ``twins_root``: the null twins' run records (``results/twins``); without it every
    real scenario's transfer gain reads "no twin run".
    """
    out_root = Path(out_root)
    roots = [Path(runs_root)] + ([Path(external_root)] if external_root else [])
    settings = Settings.from_params(params)
    names, kinds, rho = scenario_plan(params, roots)
    declared = dict(kinds)  # the plan's kinds, before unknown scenarios are resolved: fixes the figure set
    runs = {s: ScenarioRuns.load(roots, s, settings) for s in names}
    for s, sr in runs.items():  # scenario not in params: decide its kind from its records
        if not kinds[s]:
            kinds[s] = "linked" if sr.semi_synthetic else "real"
    semi = {s: kinds[s] == "linked" for s in names}
    lb_dir, tb_dir, fg_dir = out_root / "leaderboard", out_root / "tables", out_root / "figures"
    for d in (lb_dir, tb_dir, fg_dir, out_root / "metrics"):
        _clear(d)
        d.mkdir(parents=True, exist_ok=True)

    written: dict[str, list[Path]] = {"leaderboard": [], "tables": [], "figures": [], "readme": []}
    boards, tables, figures = {}, [], []
    twins = {s: ScenarioRuns.load(twins_root, s, settings) if twins_root else None for s in names if not semi[s]}
    gains = {s: scenario_gains(runs[s], twin) for s, twin in twins.items()}
    for s, sr in runs.items():
        files, boards[s] = write_leaderboard(sr, lb_dir, semi[s], gains.get(s))
        written["leaderboard"] += files
        figures.append((leaderboard_figure(boards[s], fg_dir / f"leaderboard_{s}.png", s, semi[s]),
                        f"{s}: NDCG@10 per model with 95% intervals{' (SEMI-SYNTHETIC)' if semi[s] else ''}."))
        if declared[s] != "linked":
            figures.append((transfer_figure(boards[s], fg_dir / f"transfer_{s}.png", s),
                            f"{s}: NDCG@10 against transfer gain over the null twin, one point per model "
                            "(hollow: no measurable transfer)."))
        two = declared[s] in TWO_SOURCES or (not declared[s] and semi[s])
        t1 = table1(sr, two, semi[s])
        tables.append(t1)
        figures.append((relative_figure(t1.frame, fg_dir / f"{t1.stem}.png", t1.title, "Model", semi[s], "K"),
                        f"Table 1 as bars: relative improvement over Popularity at K=3 and 5 ({s})."))
        tables.append(table4b(sr, two, semi[s]))
        if two:
            t2 = table_cohort(sr, 2, TABLE2[0], TABLE2[1], semi[s])
            t3 = table_cohort(sr, 3, TABLE3[0], TABLE3[1], semi[s])
            tables += [t2, t3, table4(sr, semi[s]), table5(sr, semi[s]), table_cohorts(sr, semi[s])]
            tag = f"{s}, SEMI-SYNTHETIC" if semi[s] else s
            figures.append((relative_figure(t2.frame, fg_dir / f"fig3_mp_cohort_{s}.png", t2.title, "Comparison", semi[s]),
                            f"Paper Fig. 3 analogue: MAP-2T(full) vs Popularity and ColloPop-Artist on m&p users, "
                            f"K=3 ({tag})."))
            figures.append((relative_figure(t3.frame, fg_dir / f"fig4_dual_signal_{s}.png", t3.title, "Comparison", semi[s]),
                            f"Paper Fig. 4 analogue: MAP-2T(music_podcast) vs Popularity and ColloPop-Podcast, "
                            f"K=3 ({tag})."))
    tables.append(table6(runs, boards, semi))
    real = {s: sr for s, sr in runs.items() if kinds[s] in ("real", "multi")}
    t7 = table7(real, gains)
    tables += [t7, table7_history(real), table7_head_tail(real)]
    figures.append((replication_figure(t7.frame, fg_dir / "table7_real_replication.png", T7_METRICS[0]),
                    "Table 7 as bars: every model on the real scenarios, NDCG@10 relative to Popularity with intervals."))
    figures.append((overview_figure(boards, semi, fg_dir / "overview_vs_popularity.png"),
                    "Overview: every model on every scenario, NDCG@10 relative to Popularity (%); boxed cells have "
                    "a 95% interval that excludes zero. Semi-synthetic columns are marked."))
    for t in tables:
        written["tables"] += t.write(tb_dir)
    written["figures"] = [p for p, _ in figures]
    readme = out_root / "README.md"
    readme.write_text(render(out_root, runs, kinds, rho, written["leaderboard"], tables, figures, gains))
    written["readme"] = [readme]
    return written
