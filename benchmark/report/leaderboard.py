"""The leaderboard of one scenario: a frame of every model's numbers, its Markdown, CSV and JSON.

The numbers come from :class:`~benchmark.report.runs.ScenarioRuns` (one memoised object
per scenario); this module only lays them out. Beside the metrics, every row carries
what a reader needs to judge a number: the tuned configuration, the collapse figures
of :mod:`benchmark.evaluation.collapse` (a model whose lists are Popularity's for
everyone is flagged, so nobody mistakes parity for transfer), users scored by a
fall-back, and the epochs early stopping chose. A real scenario's leaderboard also
carries each model's transfer gain over the scenario's null twin
(:mod:`benchmark.report.transfer`): the part of its score that comes from each user's own
source history. Semi-synthetic scenarios have no twin (rho = 0 is their control) and no
such column.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.collapse import MAX_DISTINCT_SHARE, MAX_POP_OVERLAP
from benchmark.report.csvcells import write_csv
from benchmark.report.ranges import edge_note
from benchmark.report.recipes import REFERENCE
from benchmark.report.runs import HEADLINE, MARK_BETTER, MARK_REF, MARK_WORSE, ScenarioRuns, fmt_abs, fmt_rel
from benchmark.report.transfer import NO_TWIN, explanation, fmt_gain

COLLAPSED = "collapsed to Popularity"
MARK_ADAPTED = "(adapted)"  # the paper needs target history; the row is the adaptation its card names (not a symbol: † and ‡ are the significance marks)


def _pct(v: float) -> str:
    return "" if not np.isfinite(v) else f"{100 * v:.1f}%"


def summarise_config(records: pd.DataFrame) -> tuple[str, list[dict]]:
    """One-line summary of the tuned configs of a model's runs, plus the full per-run list."""
    per_run, values = [], {}
    for r in records.sort_values(["seed", "fold"]).itertuples():
        tuning = r.tuning if isinstance(r.tuning, dict) else {}
        chosen = tuning.get("chosen_config") or {}
        per_run.append({"seed": int(r.seed), "fold": int(r.fold), "chosen_config": chosen,
                        "inherited_from": tuning.get("inherited_from"), "note": tuning.get("note")})
        for k, v in chosen.items():
            values.setdefault(k, []).append(v)
    if not values:
        inh = {p["inherited_from"] for p in per_run if p["inherited_from"]}
        notes = {p["note"] for p in per_run if p["note"]}
        if inh:
            return f"inherited from {', '.join(sorted(inh))}", per_run
        return ("; ".join(sorted(notes)) if notes else "(nothing tuned)"), per_run

    def f(v):
        return f"{v:.3g}" if isinstance(v, float) else json.dumps(v, sort_keys=True)

    parts = []
    for k in sorted(values):
        uniq = sorted({f(v) for v in values[k]})
        parts.append(f"{k}={uniq[0]}" if len(uniq) == 1 else f"{k} in {{{', '.join(uniq)}}}")
    return "; ".join(parts), per_run


def _mean_of(values: list) -> float:
    vals = [float(v) for v in values if v is not None and np.isfinite(float(v))]
    return float(np.mean(vals)) if vals else np.nan


def _run_facts(model: str, recs: pd.DataFrame) -> dict:
    """Collapse figures (mean over runs), fall-back users (summed) and chosen epochs of a model's runs."""
    col = [c if isinstance(c, dict) else {} for c in recs.get("collapse", pd.Series([None] * len(recs)))]
    info = [f if isinstance(f, dict) else {} for f in recs.get("fit_info", pd.Series([None] * len(recs)))]
    fallback = [f.get("fallback_users") for f in info if f.get("fallback_users") is not None]
    epochs = sorted({int(f["chosen_epoch"]) for f in info if f.get("chosen_epoch") is not None})
    flagged = sum(bool(c.get("collapsed")) for c in col)
    return {
        "distinct_share": _mean_of([c.get("distinct_share") for c in col]),
        "pop_overlap": _mean_of([c.get("pop_overlap") for c in col]),
        "score_pop_spearman": _mean_of([c.get("score_pop_spearman") for c in col]),
        "collapsed_runs": int(flagged),
        # The reference is Popularity's list by definition; flagging it would be noise.
        "collapsed": bool(model != REFERENCE and col and flagged * 2 > len(col)),
        "fallback_users": int(sum(fallback)) if fallback else None,
        "chosen_epochs": " ".join(str(e) for e in epochs),
        # "+Pop" rows: the blend weight on Popularity chosen on held-out training users, per run.
        "pop_blend_w": " ".join(f"{float(f['pop_blend_w']):g}" for f in info if f.get("pop_blend_w") is not None),
    }


# Leaderboard columns of the transfer gain <- columns of benchmark.report.transfer.transfer_gains.
GAIN_COLUMNS = {"transfer_gain": "gain", "transfer_gain_lo": "gain_lo", "transfer_gain_hi": "gain_hi",
                "transfer_p": "p", "transfer_p_holm": "p_holm", "transfer_users": "n_users",
                "transfer_users_changed": "n_changed", "transfer_runs": "n_runs", "transfer": "transfer",
                "transfer_mark": "mark"}


def _gain_cells(model: str, gains: pd.DataFrame) -> dict:
    if model in gains.index:
        g = gains.loc[model]
        return {col: g[src] for col, src in GAIN_COLUMNS.items()}
    return {**{col: np.nan for col in GAIN_COLUMNS}, "transfer_users": 0, "transfer_users_changed": 0,
            "transfer_runs": 0, "transfer": False, "transfer_mark": NO_TWIN}


def leaderboard_frame(sr: ScenarioRuns, gains: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str | None]:
    """One row per model: absolute and relative metrics, significance, tuning, setting; with
    ``gains`` (a real scenario: :func:`benchmark.report.transfer.scenario_gains`), the transfer gain."""
    if not sr.models:
        return pd.DataFrame(), None
    best = sr.strongest_baseline()
    marks = sr.marks_vs(best, sr.models, HEADLINE) if best else {}
    rows = []
    for m in sr.models:
        info, recs = sr.info(m), sr.records[sr.records["model"] == m]
        summary, per_run = summarise_config(recs)
        edge = edge_note(m, [p["chosen_config"] for p in per_run if p["chosen_config"]])
        row = {
            "model": m, "name": sr.name(m), "family": info.get("family"), "external": bool(info.get("external")),
            # numpy bool from a records frame, absent (NaN) for external submissions and older records
            "adapted": isinstance(info.get("adapted"), (bool, np.bool_)) and bool(info.get("adapted")), "description": info.get("description") or "",
            "n_runs": int(len(recs)), "seeds": " ".join(str(s) for s in sorted(recs["seed"].unique())),
            "folds": " ".join(str(f) for f in sorted(recs["fold"].unique())),
            "n_test_users": int(recs["n_test_users"].sum()), "n_dropped_test": int(recs["n_dropped_test"].sum()),
            "catalog_min": int(recs["catalog_size"].min()), "catalog_max": int(recs["catalog_size"].max()),
        }
        for metric in sr.settings.metrics:
            row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = sr.absolute(m, metric)
        for metric in sr.settings.metrics:
            r = sr.relative(m, REFERENCE, metric)
            row[f"rel_{metric}"], row[f"rel_{metric}_lo"], row[f"rel_{metric}_hi"] = r
        mk = marks.get(m, {})
        row.update({"vs_best": best, "p_vs_best": mk.get("p", np.nan), "p_holm": mk.get("p_holm", np.nan),
                    "mark": mk.get("mark", ""), "tuned_config": summary + (f" ({edge})" if edge else ""),
                    "config_at_edge": edge})
        row.update(_run_facts(m, recs))
        if gains is not None:
            row.update(_gain_cells(m, gains))
        rows.append(row)
    df = pd.DataFrame(rows)
    df = df.sort_values([HEADLINE, "model"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return df, best


def METRIC_COLUMNS(sr: ScenarioRuns) -> list[str]:  # noqa: N802 (a computed constant)
    """Leaderboard columns copied into the JSON's flat ``metrics`` block: the headline, P@ and HR@ at the first K, relative values, transfer gain."""
    k0 = sr.settings.ks[0]
    base = [HEADLINE, f"P@{k0}", f"HR@{k0}"]
    return base + [f"rel_{c}" for c in base] + ["transfer_gain"]


def banner(semi: bool) -> str:
    if not semi:
        return ""
    return ("> **SEMI-SYNTHETIC**: composite users formed by a seeded linkage of real per-domain histories. "
            "A controlled testbed, not evidence about real users; the real scenarios are.\n\n")


def leaderboard_markdown(sr: ScenarioRuns, df: pd.DataFrame, best: str | None, semi: bool) -> str:
    """The Markdown view; a transfer-gain column when ``df`` has one (real scenarios)."""
    s = sr.settings
    head = f"# Leaderboard: {sr.scenario}\n\n" + banner(semi)
    if df.empty:
        return head + f"not available: no model has runs for scenario {sr.scenario}\n"
    k0, k1 = s.ks[0], s.ks[min(1, len(s.ks) - 1)]
    shown = [HEADLINE, f"P@{k0}", f"R@{k0}", f"HR@{k0}", f"P@{k1}", f"HR@{k1}"]
    shown = [c for c in dict.fromkeys(shown) if c in df.columns]
    lines = [
        head + f"Setting: {sr.setting_text()}.\n",
        f"Absolute metrics: mean over evaluated users pooled over all runs, {int(s.level * 100)}% bootstrap interval "
        f"({s.n_boot} resamples). Relative columns: improvement over Popularity computed per (seed, fold) run and "
        f"averaged, paired bootstrap interval. Sig.: paired sign-flip test on per-user {HEADLINE} against the "
        f"strongest baseline ({sr.name(best) if best else 'none'}), Holm-corrected across models at alpha={s.alpha}: "
        f"{MARK_BETTER} significantly better, {MARK_WORSE} significantly worse, {MARK_REF} the reference itself. "
        "CSV/JSON beside this file hold every metric at every K.\n",
    ]
    gain = "transfer_gain" in df.columns
    cols = ["Model", "Family", "Runs"] + shown + [f"vs Pop {HEADLINE}", f"vs Pop P@{k0}", "Sig."]
    cols += ([f"Transfer gain {HEADLINE} (real - twin)"] if gain else []) + ["Distinct top-10", "Pop overlap"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in df.itertuples(index=False):
        d = dict(zip(df.columns, r))
        cells = [d["name"] + (f" {MARK_ADAPTED}" if d["adapted"] else ""), str(d["family"]), str(d["n_runs"])]
        cells += [fmt_abs((d[c], d[f"{c}_lo"], d[f"{c}_hi"])) for c in shown]
        cells += [fmt_rel((d[f"rel_{c}"], d[f"rel_{c}_lo"], d[f"rel_{c}_hi"])) for c in (HEADLINE, f"P@{k0}")]
        cells.append(d["mark"] or "")
        if gain:
            cells.append(fmt_gain({"gain": d["transfer_gain"], "gain_lo": d["transfer_gain_lo"],
                                   "gain_hi": d["transfer_gain_hi"], "mark": d["transfer_mark"]}))
        cells.append(_pct(d["distinct_share"]) + (f" **{COLLAPSED}**" if d["collapsed"] else ""))
        cells.append("" if not np.isfinite(d["pop_overlap"]) else f"{d['pop_overlap']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\nDistinct top-10: distinct ordered top-10 lists / evaluated users (mean over runs); Pop overlap: mean share of a user's top 10 that is in "
        f"Popularity's top 10. A model is marked **{COLLAPSED}** when most of its runs have distinct lists for at "
        f"most {MAX_DISTINCT_SHARE:.0%} of users or a Pop overlap of at least {MAX_POP_OVERLAP:.1f} "
        "(benchmark/evaluation/collapse.py): its score is Popularity's, not transfer.")
    if gain:
        lines.append("\n" + explanation(HEADLINE, s.alpha) + " " + _reference_check(df))
    if df["adapted"].any():
        lines.append(
            f"\n{MARK_ADAPTED}: the model's paper scores users from their own target history, which a "
            "cold-start user does not have; this row is the closest adaptation its architecture allows (its model "
            "card, `models/<key>.yaml`, says what was changed and how a zero-history user is scored), not the "
            "paper's model as published.")
    def known(v) -> bool:
        return v is not None and not (isinstance(v, float) and np.isnan(v))

    facts = [(d["name"], d["fallback_users"], d["chosen_epochs"], d.get("pop_blend_w") or "")
             for d in df.to_dict(orient="records") if known(d["fallback_users"]) or d["chosen_epochs"]]
    if facts:
        lines.append("\n## Fall-back users and chosen epochs\n")
        lines.append("Fall-back users: valid+test users with no source item the model could read (for the RecBole "
                     "models, none kept in the merged graph), summed over runs; they get the Popularity ranking. "
                     "Chosen epochs: what early stopping on held-out training users picked, over runs (0-based). "
                     "Blend w (+Pop rows): the weight on Popularity's ranking chosen on the same held-out training "
                     "users, per run (1 = the row is Popularity's ranking).\n")
        for name, fb, ep, w in facts:
            fb = int(fb) if known(fb) else "n/a"
            lines.append(f"- {name}: fall-back users {fb}; chosen epochs {ep or 'n/a'}" + (f"; blend w {w}" if w else ""))
    lines.append("\n## Tuned configurations (chosen on validation users, per fold)\n")
    if df["config_at_edge"].astype(bool).any():
        lines.append("A value \"at the top/bottom of its range\" sits on a bound of the spec's search space "
                     "(models/<key>.yaml; the largest or smallest of three or more choices, or within 1% of a "
                     "continuous range's end): the best configuration may lie outside the space searched.\n")
    for r in df.itertuples(index=False):
        d = dict(zip(df.columns, r))
        lines.append(f"- {d['name']}: {d['tuned_config']}")
    return "\n".join(lines) + "\n"


def _reference_check(df: pd.DataFrame) -> str:
    """Popularity's gain, computed like any other, must be exactly zero: say what was found."""
    ref = df[df["model"] == REFERENCE]
    if ref.empty or not ref["transfer_users"].iloc[0]:
        return "(Popularity has no twin run here.)"
    n, changed = int(ref["transfer_users"].iloc[0]), int(ref["transfer_users_changed"].iloc[0])
    if changed == 0:
        return f"Check: Popularity's {HEADLINE} is identical on the real scenario and its twin for all {n} paired users."
    return (f"**Check failed**: Popularity's {HEADLINE} differs between the real scenario and its twin for {changed} of "
            f"{n} users, so the twin does not keep the real target side; its gains cannot be trusted.")


def _clean(v):
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_leaderboard(sr: ScenarioRuns, out_dir: Path, semi: bool,
                      gains: pd.DataFrame | None = None) -> tuple[list[Path], pd.DataFrame]:
    """Write ``<scenario>.md|csv|json``; return the paths and the frame (for tables/figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df, best = leaderboard_frame(sr, gains)
    md, csv, js = (out_dir / f"{sr.scenario}.{ext}" for ext in ("md", "csv", "json"))
    md.write_text(leaderboard_markdown(sr, df, best, semi))
    if df.empty:
        write_csv(pd.DataFrame({"status": [f"not available: no model has runs for scenario {sr.scenario}"]}), csv)
    else:
        write_csv(df, csv)
    payload = {
        "scenario": sr.scenario, "semi_synthetic": semi, "setting": sr.setting(), "setting_text": sr.setting_text(), "strongest_baseline": best,
        "headline": HEADLINE, "alpha": sr.settings.alpha, "n_boot": sr.settings.n_boot,
        "models": [{k: _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")],
        "tuned_configs": {m: summarise_config(sr.records[sr.records["model"] == m])[1] for m in sr.models},
    }
    if gains is not None:
        payload["transfer_gain"] = explanation(HEADLINE, sr.settings.alpha)
    # Flat per-model numbers for `dvc metrics show/diff` (DVC flattens dicts, not lists of rows).
    payload["metrics"] = {
        row["model"]: {c: _clean(row[c]) for c in METRIC_COLUMNS(sr) if c in row and _clean(row[c]) is not None}
        for row in df.to_dict(orient="records")
    } if not df.empty else {}
    js.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_clean, allow_nan=False) + "\n")
    # The same flat block in results/metrics/<scenario>.json, declared as DVC metrics (a metrics
    # file may not sit inside the leaderboard folder, which is a stage output of its own).
    mdir = out_dir.parent / "metrics"
    mdir.mkdir(parents=True, exist_ok=True)
    mjs = mdir / f"{sr.scenario}.json"
    mjs.write_text(json.dumps({"scenario": sr.scenario, "code_hashes": payload["setting"].get("code_hashes", []),
                               "metrics": payload["metrics"]}, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return [md, csv, js, mjs], df
