"""The seven tables of DESIGN section 5, computed from :class:`ScenarioRuns` only.

Every table is a long-format frame (one row per model x comparison x metric, with
mean, interval and a ``status``) written as CSV, plus a Markdown rendering with a
caption that states what it is, the setting that produced it, and the
semi-synthetic warning where it applies. A model with no runs does not make a table
disappear: its rows say ``not available: model X has no runs for scenario Y``, so a
reader can tell "not run" from "not applicable".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.stats import holm
from benchmark.report.csvcells import write_csv
from benchmark.scenarios.schema import COHORT_MP
from benchmark.report.leaderboard import banner
from benchmark.report.runs import HEADLINE, ScenarioRuns, display_name, fmt_abs, fmt_rel
from benchmark.report.recipes import CHAIN_PREFIX, CHAINS, FUSION, MTL_ABLATIONS, MTL_FULL, REFERENCE, TABLE1

SHORT = {"P": "Precision", "R": "Recall", "F1": "F1", "HR": "Hit Rate"}
T7_METRICS = (HEADLINE, "P@3", "HR@3")
MP = ("cohort", COHORT_MP)


@dataclass
class Table:
    stem: str
    title: str
    caption: str
    frame: pd.DataFrame
    body: str
    notes: list[str] = field(default_factory=list)

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        md, csv = out_dir / f"{self.stem}.md", out_dir / f"{self.stem}.csv"
        notes = "".join(f"- {n}\n" for n in sorted(set(self.notes)))
        md.write_text(f"# {self.title}\n\n{self.caption}\n\n{self.body}\n" + (f"\n{notes}" if notes else ""))
        write_csv(self.frame, csv)
        return [md, csv]


def ordered(models) -> list[str]:
    """Popularity (the reference) first, then model keys alphabetically: a stable row order."""
    return sorted(set(models), key=lambda m: (m != REFERENCE, m))


def missing(model: str, scenario: str) -> str:
    return f"not available: model {display_name(model)} ({model}) has no runs for scenario {scenario}"


def md_table(cols: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def caption(what: str, sr: ScenarioRuns, semi: bool) -> str:
    second = sr.second_modality()
    role = (f" In this scenario the second source modality, called \"podcast\" in model names and cohorts, is "
            f"{second}." if second else "")
    return banner(semi) + f"{what}{role} Setting: {sr.setting_text()}."


def rel_rows(sr: ScenarioRuns, specs: list[dict], subset: tuple | None = None) -> pd.DataFrame:
    """Long frame of relative improvements: one row per (spec, metric).

    A spec is ``{"labels": {...}, "model": key, "ref": key, "metrics": [...]}``; labels
    become leading columns. Missing models produce rows whose status says so.
    """
    out = []
    for sp in specs:
        m, ref = sp["model"], sp["ref"]
        gone = [x for x in (m, ref) if not sr.has(x)]
        status = missing(gone[0], sr.scenario) if gone else "ok"
        for metric in sp["metrics"]:
            v = sr.relative(m, ref, metric, subset) if not gone else (np.nan,) * 3
            out.append({**sp["labels"], "scenario": sr.scenario, "model": m, "reference": ref,
                        "subset": "all" if subset is None else f"{subset[0]}={subset[1]}", "metric": metric,
                        "rel_pct": v[0], "lo": v[1], "hi": v[2],
                        "n_rows": int(len(sr.rows(m, subset))) if not gone else 0, "status": status})
    return pd.DataFrame(out)


def rel_markdown(frame: pd.DataFrame, label_cols: list[str], metric_order: list[str]) -> str:
    """Pivot a :func:`rel_rows` frame: label columns, then one column per metric."""
    rows = []
    for _, g in frame.groupby(label_cols + ["model", "reference"], sort=False):
        first = g.iloc[0]
        cells = [str(first[c]) for c in label_cols]
        by = {r.metric: r for r in g.itertuples()}
        for metric in metric_order:
            r = by.get(metric)
            if r is None or r.status != "ok":
                cells.append("not available")
            else:
                cells.append("reference" if r.model == r.reference else fmt_rel((r.rel_pct, r.lo, r.hi)))
        rows.append(cells)
    heads = [SHORT.get(m.split("@")[0], m.split("@")[0]) + "@" + m.split("@")[1] for m in metric_order]
    return md_table(label_cols + heads, rows)


def _k_metrics(k: int) -> list[str]:
    return [f"{m}@{k}" for m in SHORT]


def table1(sr: ScenarioRuns, two_sources: bool, semi: bool | None = None) -> Table:
    """Table 1; ``two_sources``: the scenario has a second source modality (linked or multi)."""
    linked = two_sources
    semi = linked if semi is None else semi
    models = TABLE1["linked" if linked else "real"]
    ks = [k for k in (3, 5) if k in sr.settings.ks]
    specs = [{"labels": {"Model": display_name(m), "K": k}, "model": m, "ref": REFERENCE, "metrics": _k_metrics(k)}
             for k in ks for m in models]
    f = rel_rows(sr, specs)
    body = "\n\n".join(rel_markdown(f[f["K"] == k], ["Model", "K"], _k_metrics(k)) for k in ks)
    what = ("Relative improvement (%) over Popularity at K = 3 and 5, after the paper's Table 1; "
            + ("MAP-2T(imputed_p) gives every user the imputed podcast embedding, MAP-2T(full) imputes only users "
               "without a podcast history." if linked else
               "this scenario has one source modality (music), so the table compares ColloPop-Artist and MAP-2T(music)."))
    what += " Point: per-run relative improvement averaged over runs; brackets: 95% paired bootstrap interval over users."
    return Table(f"table1_relative_improvement_{sr.scenario}", f"Table 1: relative improvement over Popularity ({sr.scenario})",
                 caption(what, sr, semi), f, body, list(f.loc[f.status != "ok", "status"]))


COHORTS = ("m&p", "m-only", "p-only")


def table_cohorts(sr: ScenarioRuns, semi: bool) -> Table:
    """Every model by cohort: NDCG@10 and P@3 relative to Popularity on each cohort's test users.

    The paper reports its cohort results for a few models; a reader of a benchmark wants
    to know for every model whether the second modality helps the users who have it, so
    each (model, cohort) pair is one row, Popularity on the same users the reference.
    """
    specs = [{"labels": {"Model": sr.name(m)}, "model": m, "ref": REFERENCE, "metrics": [HEADLINE, "P@3"]}
             for m in ordered(sr.models) if m != REFERENCE]
    frames, parts = [], []
    for c in COHORTS:
        f = rel_rows(sr, specs, ("cohort", c))
        f.insert(0, "cohort", c)
        frames.append(f)
        n = int(len(sr.rows(REFERENCE, ("cohort", c)))) if sr.has(REFERENCE) else 0
        body = rel_markdown(f, ["Model"], [HEADLINE, "P@3"]) if len(f) else "no model besides Popularity has runs"
        parts.append(f"**{c}** ({n} test-user rows)\n\n" + body)
    f = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    what = ("Every model on each cohort's test users (m&p: music and second-modality history; m-only; p-only: "
            "second modality only): relative improvement (%) over Popularity on the same users, NDCG@10 and P@3, "
            "95% paired bootstrap intervals over users.")
    return Table(f"table_cohorts_{sr.scenario}", f"Per-cohort results, every model ({sr.scenario})",
                 caption(what, sr, semi), f, "\n\n".join(parts), list(f.loc[f.status != "ok", "status"]) if len(f) else [])


def table_cohort(sr: ScenarioRuns, n: int, model: str, refs: list[str], semi: bool) -> Table:
    """Tables 2 and 3: one MAP-2T variant against references on the m&p cohort at K=3."""
    specs = [{"labels": {"Comparison": f"{display_name(model)} vs {display_name(r)}"}, "model": model, "ref": r,
              "metrics": _k_metrics(3)} for r in refs]
    f = rel_rows(sr, specs, MP)
    if n == 2:
        stem, title = "table2_mp_cohort", "Table 2: users with music and podcast history (m&p cohort), K = 3"
        what = ("Relative improvement (%) of MAP-2T(full) over Popularity and over ColloPop-Artist on test users with "
                "both music and podcast history (cohort m&p), K = 3, after the paper's Fig. 3.")
    else:
        stem, title = "table3_dual_signal_training", "Table 3: MAP-2T trained on dual-signal users only, m&p cohort, K = 3"
        what = ("Relative improvement (%) of MAP-2T(music_podcast), trained only on training users with both music and "
                "podcast history, over Popularity and ColloPop-Podcast on m&p test users, K = 3, after the paper's Fig. 4.")
    return Table(f"{stem}_{sr.scenario}", f"{title} ({sr.scenario})", caption(what, sr, semi), f,
                 rel_markdown(f, ["Comparison"], _k_metrics(3)), list(f.loc[f.status != "ok", "status"]))


def table4(sr: ScenarioRuns, semi: bool) -> Table:
    specs, abs_cells = [], {}
    for chain, models in CHAINS.items():
        for i, m in enumerate(models):
            step = " -> ".join(x.removeprefix(CHAIN_PREFIX) for x in models[: i + 1]) if i else models[0].removeprefix(CHAIN_PREFIX)
            specs.append({"labels": {"Chain": f"from {chain}", "Step": step, "Model": display_name(m)},
                          "model": m, "ref": models[0], "metrics": _k_metrics(3)})
            abs_cells[m] = fmt_abs(sr.absolute(m, "P@3")) if sr.has(m) else "not available"
    f = rel_rows(sr, specs)
    f["P@3_abs"] = [sr.absolute(m, "P@3")[0] if sr.has(m) else np.nan for m in f["model"]]
    body = rel_markdown(f, ["Chain", "Step", "Model"], _k_metrics(3))
    lines = body.split("\n")
    lines[0] = lines[0] + " P@3 (absolute) |"
    lines[1] = lines[1] + "---|"
    order = [sp["model"] for sp in specs]
    lines[2:] = [ln + f" {abs_cells[m]} |" for ln, m in zip(lines[2:], order)]
    what = ("Input-modality ablation (paper section 5.2): each chain adds one input modality to MAP-2T; relative "
            "improvement (%) at K = 3 over the first step of its chain (the first row is the chain's reference), "
            "with the absolute P@3 of each step. Users without a podcast history get the imputed podcast embedding.")
    return Table(f"table4_modality_ablation_{sr.scenario}", f"Table 4: input-modality ablation ({sr.scenario})",
                 caption(what, sr, semi), f, "\n".join(lines), list(f.loc[f.status != "ok", "status"]))


def table4b(sr: ScenarioRuns, two_sources: bool, semi: bool) -> Table:
    """The multi-task model's ablations, each relative to the full MTL on the same users.

    Beside Table 4 because it asks the same question of another architecture: which
    inputs and which objectives carry the cold-start score. Popularity is listed too, so a
    reader sees whether MTL itself is above it.
    """
    models = MTL_ABLATIONS["all"] + (MTL_ABLATIONS["two_sources"] if two_sources else [])
    specs = [{"labels": {"Model": display_name(m)}, "model": m, "ref": MTL_FULL, "metrics": [HEADLINE, "P@3", "HR@3"]}
             for m in [MTL_FULL, *models, REFERENCE]]
    f = rel_rows(sr, specs)
    for c in ("Model",):
        f[c] = [sr.name(m) if sr.has(m) else display_name(m) for m in f["model"]]
    what = ("Multi-task model ablations (after the Spotify MTL summary: ancillary objectives and feature groups carry "
            "cold-start performance): MTL without its auxiliary reconstruction heads"
            + (", MTL reading music only and the second modality only" if two_sources else "")
            + ", and Popularity, each relative (%) to the full MTL on the same test users; the first row is the reference.")
    return Table(f"table4b_mtl_ablation_{sr.scenario}", f"Table 4b: multi-task model ablations ({sr.scenario})",
                 caption(what, sr, semi), f, rel_markdown(f, ["Model"], [HEADLINE, "P@3", "HR@3"]),
                 list(f.loc[f.status != "ok", "status"]))


def table5(sr: ScenarioRuns, semi: bool) -> Table:
    (concat, gated), metrics = FUSION, ["P@3", "HR@3"]
    notes = [missing(m, sr.scenario) for m in (concat, gated) if not sr.has(m)]
    rows, out = [], []
    for m in (concat, gated):
        cells = [display_name(m) + (" (gated)" if m == gated else "")]
        for metric in metrics:
            v = sr.absolute(m, metric) if sr.has(m) else (np.nan,) * 3
            cells.append(fmt_abs(v) if sr.has(m) else "not available")
            out.append({"scenario": sr.scenario, "row": m, "metric": metric, "kind": "absolute", "value": v[0],
                        "lo": v[1], "hi": v[2], "p": np.nan, "p_holm": np.nan,
                        "status": "ok" if sr.has(m) else missing(m, sr.scenario)})
        rows.append(cells)
    ok = sr.has(concat) and sr.has(gated)
    pvals = {x: sr.pvalue(gated, concat, x) for x in metrics} if ok else {}
    adj = holm(pvals) if pvals and all(np.isfinite(list(pvals.values()))) else {}
    cells = ["gated vs concat (relative)"]
    for metric in metrics:
        v = sr.relative(gated, concat, metric) if ok else (np.nan,) * 3
        p, pa = pvals.get(metric, np.nan), adj.get(metric, np.nan)
        cells.append(f"{fmt_rel(v)} (Holm p={pa:.3g})" if ok else "not available")
        out.append({"scenario": sr.scenario, "row": "gated_vs_concat", "metric": metric, "kind": "relative_pct",
                    "value": v[0], "lo": v[1], "hi": v[2], "p": p, "p_holm": pa,
                    "status": "ok" if ok else (notes[0] if notes else "not available")})
    rows.append(cells)
    what = ("Fusion ablation (paper section 5.2.1): MAP-2T with concatenation fusion versus the feature-gated fusion "
            "of MAP-2T(full), absolute P@3 and HR@3 with 95% intervals, and the relative difference with a paired "
            "sign-flip test, Holm-corrected over the two metrics.")
    return Table(f"table5_fusion_ablation_{sr.scenario}", f"Table 5: fusion ablation, concat vs gated ({sr.scenario})",
                 caption(what, sr, semi), pd.DataFrame(out), md_table(["Variant", "P@3", "HR@3"], rows), notes)
