"""Where the run stage's time goes, from the run records the pipeline wrote (issue 16, item 2).

usage: python scripts/profile_runs.py [runs_root] [twins_root] [out_dir]
       (defaults: results/runs results/twins results/perf)

Every run record holds the final fit's and scoring's wall seconds (``fit_time_s``,
``score_time_s``) and, since trials record them, each tuning trial's seconds (fit +
validation scoring). This sums them per scenario, per model and per phase (tuning
trials, final fits, scoring, null-twin fits) and lists the ten largest costs. Seconds
are per worker: the stage runs two workers side by side on this machine, so a stage's
wall time is about half the sum plus Ray's overhead. Trials reused by folds outside
``tune_folds`` are counted once (on the fold that ran them), and so is a fit shared by two
rows (a "+Pop" row derived from its base's fit, ``fit_info.fit_shared_with``): the row
that derived it counts only the blend choice on top of the shared fit.

Writes ``profile.csv`` (one row per scenario x model) and ``profile.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def _rows(root: Path, twin: bool) -> list[dict]:
    out = []
    for rec in sorted(Path(root).glob("*/*/s*_f*/record.json")):
        r = json.loads(rec.read_text())
        tuning = r.get("tuning") or {}
        own = tuning.get("tuned_on") == [r["seed"], r["fold"]] and not tuning.get("inherited_from")
        trials = tuning.get("trials") or [] if own and not twin else []
        fit_s = float(r.get("fit_time_s") or 0.0)
        base = r.get("fit_info", {}).get("fit_shared_with")
        if base:  # the shared fit is the base record's; this row only added its blend choice
            base_rec = rec.parents[1].parent / base / rec.parent.name / "record.json"
            if base_rec.is_file():
                fit_s = max(0.0, fit_s - float(json.loads(base_rec.read_text()).get("fit_time_s") or 0.0))
        out.append({
            "scenario": r["scenario"] if not twin else r.get("null_twin", {}).get("of", r["scenario"]),
            "model": r["model"], "twin": twin,
            "tuning_s": sum(float(t.get("seconds") or 0.0) for t in trials), "n_trials": len(trials),
            "fit_s": fit_s, "score_s": float(r.get("score_time_s") or 0.0),
            "setting": r.get("setting", "?"), "code_hash": r.get("code_hash", "?"),
        })
    return out


def profile(runs_root: Path, twins_root: Path) -> pd.DataFrame:
    rows = _rows(runs_root, False) + (_rows(twins_root, True) if Path(twins_root).is_dir() else [])
    if not rows:
        raise SystemExit(f"no run records under {runs_root}: run `dvc repro` first")
    df = pd.DataFrame(rows)
    df["twin_s"] = (df["fit_s"] + df["score_s"]).where(df["twin"], 0.0)
    df.loc[df["twin"], ["fit_s", "score_s"]] = 0.0
    g = df.groupby(["scenario", "model"], as_index=False)[["tuning_s", "n_trials", "fit_s", "score_s", "twin_s"]].sum()
    g["total_s"] = g[["tuning_s", "fit_s", "score_s", "twin_s"]].sum(axis=1)
    g.attrs["provenance"] = sorted({f"{a} setting, code hash {b}" for a, b in zip(df["setting"], df["code_hash"])})
    return g.sort_values("total_s", ascending=False, kind="stable").reset_index(drop=True)


def markdown(g: pd.DataFrame, runs: Path = Path("results/runs"), twins: Path = Path("results/twins")) -> str:
    phases = g[["tuning_s", "fit_s", "score_s", "twin_s"]].sum()
    total = float(phases.sum())
    prov = "; ".join(g.attrs.get("provenance", []))
    L = ["# Run-stage profile (from run records)", "",
         f"Seconds summed over the records of `{runs.as_posix()}` and `{twins.as_posix()}` ({prov}; per worker: two "
         f"workers run side by side). Regenerate: `python scripts/profile_runs.py {runs.as_posix()} {twins.as_posix()} OUT`.", "",
         "## By phase", "", "| phase | seconds | share |", "|---|---|---|"]
    names = {"tuning_s": "tuning trials (fit + validation)", "fit_s": "final fits", "score_s": "final scoring + evaluation",
             "twin_s": "null-twin fits + evaluation"}
    L += [f"| {names[k]} | {v:,.0f} | {v / total:.0%} |" for k, v in phases.items()]
    L += ["", "## By scenario", "", "| scenario | seconds |", "|---|---|"]
    L += [f"| {s} | {v:,.0f} |" for s, v in g.groupby("scenario")["total_s"].sum().sort_values(ascending=False).items()]
    L += ["", "## By model (all scenarios)", "", "| model | seconds | share |", "|---|---|---|"]
    L += [f"| {m} | {v:,.0f} | {v / total:.0%} |" for m, v in g.groupby("model")["total_s"].sum().sort_values(ascending=False).items()]
    L += ["", "## Ten largest costs (scenario x model)", "",
          "| scenario | model | tuning | final fits | scoring | twin | total |", "|---|---|---|---|---|---|---|"]
    for r in g.head(10).itertuples():
        L.append(f"| {r.scenario} | {r.model} | {r.tuning_s:,.0f} | {r.fit_s:,.0f} | {r.score_s:,.0f} | {r.twin_s:,.0f} | {r.total_s:,.0f} |")
    return "\n".join(L) + "\n"


def main(argv: list[str]) -> None:
    runs = Path(argv[1]) if len(argv) > 1 else Path("results/runs")
    twins = Path(argv[2]) if len(argv) > 2 else Path("results/twins")
    out = Path(argv[3]) if len(argv) > 3 else Path("results/perf")
    out.mkdir(parents=True, exist_ok=True)
    g = profile(runs, twins)
    g.round(3).to_csv(out / "profile.csv", index=False)
    text = markdown(g, runs, twins)
    (out / "profile.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv)
