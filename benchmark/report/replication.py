"""The cross-scenario tables of DESIGN section 5: 6 (every leaderboard side by side) and 7
(the real-scenario replication, with its history-length and head/tail breakdowns).

Apart from :mod:`benchmark.report.tables` because their input is every scenario at once
(and the null-twin gains), where the per-scenario tables read one scenario's runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.report.runs import HEADLINE, ScenarioRuns, display_name, fmt_abs, fmt_rel
from benchmark.report.recipes import REFERENCE
from benchmark.report.tables import T7_METRICS, Table, md_table, missing, ordered
from benchmark.report.transfer import NO_TWIN, explanation, fmt_gain


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
