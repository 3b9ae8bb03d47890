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
from benchmark.report.transfer import NO_TWIN, explanation, fmt_gain

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


def _board_gain(d: dict) -> dict:
    """Transfer-gain cells of a leaderboard row (real scenarios), NaN where the board has none."""
    if "transfer_gain" not in d:
        return {"transfer_gain": np.nan, "transfer_lo": np.nan, "transfer_hi": np.nan, "transfer_p_holm": np.nan,
                "transfer_mark": ""}
    return {"transfer_gain": d["transfer_gain"], "transfer_lo": d["transfer_gain_lo"], "transfer_hi": d["transfer_gain_hi"],
            "transfer_p_holm": d["transfer_p_holm"], "transfer_mark": d["transfer_mark"]}


def table6(runs: dict[str, ScenarioRuns], boards: dict[str, pd.DataFrame], semi: dict[str, bool]) -> Table:
    out, rows, notes = [], [], []
    for s, sr in runs.items():
        df = boards.get(s)
        tag = f"{s} (SEMI-SYNTHETIC)" if semi[s] else s
        if df is None or df.empty:
            notes.append(f"not available: no model has runs for scenario {s}")
            continue
        for d in df.to_dict(orient="records"):
            cells = [tag, d["name"] + (" (adapted)" if d.get("adapted") else ""), str(d["family"])]
            gain = _board_gain(d)
            for metric in T7_METRICS:
                cells.append(fmt_abs((d[metric], d[f"{metric}_lo"], d[f"{metric}_hi"])))
                out.append({"scenario": s, "semi_synthetic": semi[s], "model": d["model"], "name": d["name"],
                            "metric": metric, "mean": d[metric], "lo": d[f"{metric}_lo"], "hi": d[f"{metric}_hi"],
                            "mark": d["mark"], "status": "ok",
                            **(gain if metric == HEADLINE else {k: (np.nan if k != "transfer_mark" else "") for k in gain})})
            cells.append(d["mark"] or "")
            cells.append("" if "transfer_gain" not in d else
                         fmt_gain({"gain": d["transfer_gain"], "gain_lo": d["transfer_gain_lo"],
                                   "gain_hi": d["transfer_gain_hi"], "mark": d["transfer_mark"]}))
            rows.append(cells)
    body = md_table(["Scenario", "Model", "Family"] + list(T7_METRICS)
                    + ["Sig. vs strongest baseline", f"Transfer gain {HEADLINE} (real scenarios)"], rows)
    if any(not semi[s] for s in runs):
        notes.append(explanation(HEADLINE, next(iter(runs.values())).settings.alpha)
                     + " Semi-synthetic scenarios have no twin (their rho = 0 recipe is the control): empty cell.")
    if any(d.get("adapted") for df in boards.values() if df is not None and not df.empty for d in df.to_dict(orient="records")):
        notes.append("(adapted): the paper needs target history; the row is the adaptation its model card names.")
    what = ("The full leaderboard: every model with runs on every scenario, absolute NDCG@10, P@3 and HR@3 with 95% "
            "bootstrap intervals over users; marks from each scenario's leaderboard (paired test against that "
            "scenario's strongest baseline on NDCG@10, Holm-corrected). Scenarios marked SEMI-SYNTHETIC are a "
            "controlled testbed, not evidence about real users; the real scenarios are. Settings per scenario: "
            + "; ".join(f"{s}: {sr.setting_text()}" for s, sr in runs.items()) + ".")
    return Table("table6_leaderboard", "Table 6: full leaderboard, all models and scenarios", what,
                 pd.DataFrame(out), body, notes)


def table7(real: dict[str, ScenarioRuns], gains: dict[str, pd.DataFrame] | None = None) -> Table:
    """Real-data replication: every model x the real scenarios, relative to Popularity, and
    (``gains``: :func:`benchmark.report.transfer.scenario_gains` per scenario) the transfer gain."""
    models = ordered({m for sr in real.values() for m in sr.models})
    gains = gains or {}
    out, parts, notes = [], [], []
    for metric in T7_METRICS:
        rows = []
        for m in models:
            cells = [display_name(m, real_info(real, m))]
            for s, sr in real.items():
                if not sr.has(m) or not sr.has(REFERENCE):
                    gone = m if not sr.has(m) else REFERENCE
                    cells.append("not available")
                    notes.append(missing(gone, s))
                    out.append({"scenario": s, "model": m, "name": cells[0], "metric": metric, "rel_pct": np.nan,
                                "lo": np.nan, "hi": np.nan, "p": np.nan, "p_holm": np.nan, "mark": "",
                                "status": missing(gone, s)})
                    continue
                mk = sr.marks_vs(REFERENCE, sr.models, metric)[m]
                v = sr.relative(m, REFERENCE, metric)
                cells.append(fmt_rel(v) + (f" {mk['mark']}" if mk["mark"] and m != REFERENCE else ""))
                out.append({"scenario": s, "model": m, "name": sr.name(m), "metric": metric, "rel_pct": v[0],
                            "lo": v[1], "hi": v[2], "p": mk["p"], "p_holm": mk["p_holm"], "mark": mk["mark"], "status": "ok",
                            **_gain_fields(gains.get(s), m, metric == HEADLINE)})
            rows.append(cells)
        parts.append(f"## {metric}, relative to Popularity\n\n" + md_table(["Model"] + list(real), rows))
    if real:
        rows = [[display_name(m, real_info(real, m))]
                + [fmt_gain(_gain_row(gains.get(s), m)) if sr.has(m) else "not available" for s, sr in real.items()]
                for m in models]
        parts.append(f"## Transfer gain on {HEADLINE}: real minus null twin\n\n" + md_table(["Model"] + list(real), rows)
                     + "\n\n" + explanation(HEADLINE, next(iter(real.values())).settings.alpha))
    what = ("Real-data replication: every model on the real music -> book scenarios side by side, relative "
            "improvement (%) over Popularity with 95% paired bootstrap intervals; marks: paired sign-flip test "
            "against Popularity on the same metric, Holm-corrected across the models of each scenario "
            "(† significantly better, ‡ significantly worse). A finding that holds on one dataset only shows as such. "
            "Settings: " + "; ".join(f"{s}: {sr.setting_text()}" for s, sr in real.items()) + ".")
    return Table("table7_real_replication", "Table 7: real-data replication", what, pd.DataFrame(out),
                 "\n\n".join(parts) if real else "not available: no real scenario has runs", notes)


def _gain_row(g: pd.DataFrame | None, m: str):
    return g.loc[m] if g is not None and m in g.index else None


def _gain_fields(g: pd.DataFrame | None, m: str, headline: bool) -> dict:
    """Transfer-gain columns of a table-7 CSV row (filled on the headline metric's rows only)."""
    r = _gain_row(g, m) if headline else None
    if r is None:
        return {"transfer_gain": np.nan, "transfer_lo": np.nan, "transfer_hi": np.nan, "transfer_p_holm": np.nan,
                "transfer_mark": NO_TWIN if headline else ""}
    return {"transfer_gain": r["gain"], "transfer_lo": r["gain_lo"], "transfer_hi": r["gain_hi"],
            "transfer_p_holm": r["p_holm"], "transfer_mark": r["mark"]}


def real_info(real: dict[str, ScenarioRuns], m: str) -> dict:
    for sr in real.values():
        if sr.has(m):
            return sr.info(m)
    return {}


def table7_history(real: dict[str, ScenarioRuns]) -> Table:
    """Breakdown by source-history length: quantile bins of n_source per scenario."""
    out, parts, notes = [], [], []
    for s, sr in real.items():
        if not sr.has(REFERENCE):
            notes.append(missing(REFERENCE, s))
            continue
        labels = sr.bin_labels()
        rows = []
        for m in ordered(sr.models):
            cells = [sr.name(m)]
            for i, lab in enumerate(labels):
                sub = ("bin", i)
                v = sr.relative(m, REFERENCE, HEADLINE, sub)
                cells.append(fmt_rel(v))
                out.append({"scenario": s, "model": m, "bin": i, "bin_label": lab, "metric": HEADLINE, "rel_pct": v[0],
                            "lo": v[1], "hi": v[2], "n_rows": int(len(sr.rows(m, sub))), "status": "ok"})
            rows.append(cells)
        n = [int(len(sr.rows(REFERENCE, ("bin", i)))) for i in range(len(labels))]
        parts.append(f"## {s}\n\n" + md_table(["Model"] + [f"{lab} (n={k})" for lab, k in zip(labels, n)], rows))
    n_bins = next(iter(real.values())).settings.n_bins if real else 3
    what = (f"Breakdown by source-history length: test users split into {n_bins} "
            f"quantile bins of their number of source-domain items (n_source, edges per scenario); relative "
            f"improvement (%) of {HEADLINE} over Popularity within each bin, 95% paired bootstrap interval. "
            "A gain confined to long histories shows here.")
    return Table("table7b_history_length", "Table 7b: real scenarios by source-history length", what,
                 pd.DataFrame(out), "\n\n".join(parts) or "not available: no real scenario has runs", notes)


def table7_head_tail(real: dict[str, ScenarioRuns], k: int = 10) -> Table:
    """Breakdown by target-item popularity: recall on head vs long-tail positives."""
    out, parts, notes = [], [], []
    cols = [f"head/R@{k}", f"tail/R@{k}"]
    for s, sr in real.items():
        rows = []
        for m in ordered(sr.models):
            cells = [sr.name(m)]
            for c in cols:
                a = sr.absolute(m, c)
                r = sr.relative(m, REFERENCE, c) if sr.has(REFERENCE) else (np.nan,) * 3
                cells += [fmt_abs(a), fmt_rel(r)]
                out.append({"scenario": s, "model": m, "metric": c, "mean": a[0], "lo": a[1], "hi": a[2],
                            "rel_pct": r[0], "rel_lo": r[1], "rel_hi": r[2], "status": "ok"})
            rows.append(cells)
        if not sr.has(REFERENCE):
            notes.append(missing(REFERENCE, s))
        heads = [f"{cols[0]}", "vs Pop", f"{cols[1]}", "vs Pop"]
        parts.append(f"## {s}\n\n" + md_table(["Model"] + heads, rows))
    what = (f"Breakdown by target-item popularity: recall@{k} restricted to head positives (the 20% most popular "
            "catalog items among the fold's training users) and to long-tail positives, over users who have such "
            "positives; absolute value with 95% interval and relative improvement over Popularity (n/a where "
            "Popularity scores 0, which is common on the tail: it only recommends head items).")
    return Table("table7c_head_tail", "Table 7c: real scenarios, head vs long-tail target items", what,
                 pd.DataFrame(out), "\n\n".join(parts) or "not available: no real scenario has runs", notes)
