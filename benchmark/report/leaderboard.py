"""Per-scenario statistics over run records, and the leaderboard files built from them.

Why one memoised object per scenario (:class:`ScenarioRuns`): the leaderboard, the
seven tables, the figures and the findings of ``results/README.md`` all ask the same
questions ("mean and interval of NDCG@10 for model X", "relative improvement of X
over Popularity on the m&p cohort"). Answering each once keeps the bootstraps from
being recomputed, and guarantees that a number quoted twice is the same number.

Conventions used everywhere in the report:

* absolute metrics: mean over users pooled over every (seed, fold) run, 95% percentile
  bootstrap interval over users (a user tested under several seeds is one cluster);
* relative improvement: ``mean(model) / mean(reference) - 1`` per run, averaged over
  runs, with a paired bootstrap interval (``stats.relative_improvement``), in percent;
* significance: paired sign-flip test on per-user values (averaged per user over
  seeds, so a user counts once), Holm-corrected across the models of one comparison.
"""

from __future__ import annotations

import json
import zlib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.records import collect_runs
from benchmark.evaluation.stats import bootstrap_ci, holm, paired_test, relative_improvement
from benchmark.config.params import Params
from benchmark.config.specs import display_names
from benchmark.report.csvcells import write_csv
from benchmark.report.recipes import REFERENCE
from benchmark.scenarios.schema import COHORT_MP

METRIC_NAMES = ("P", "R", "F1", "HR", "NDCG", "MAP")
HEADLINE = "NDCG@10"
# Families whose members count as "baselines" when picking the strongest one to test against.
BASELINE_FAMILIES = ("baseline", "heuristic", "recbole", "neighbour", "mapping", "shared-factors", "dual-target")
MARK_BETTER, MARK_WORSE, MARK_REF = "†", "‡", "ref"


@dataclass(frozen=True)
class Settings:
    """Report parameters, read from ``params.yaml`` (sections ``evaluation`` and ``report``)."""

    ks: tuple[int, ...] = (3, 5, 10, 20)
    n_boot: int = 1000
    alpha: float = 0.05
    level: float = 0.95
    seed: int = 0
    n_bins: int = 3

    @classmethod
    def from_params(cls, params: Params | None) -> "Settings":
        if params is None:
            return cls()
        rep = params.report
        return cls(ks=tuple(params.evaluation.ks), n_boot=rep.bootstrap, alpha=rep.alpha, seed=rep.seed,
                   n_bins=rep.history_bins)

    @property
    def metrics(self) -> list[str]:
        return [f"{m}@{k}" for k in self.ks for m in METRIC_NAMES]


@functools.lru_cache(maxsize=1)
def _spec_names() -> dict[str, str]:
    return display_names()


def display_name(model: str, info: dict | None = None) -> str:
    """Human name of a model key: the record's (copied from the spec when it ran), else the
    spec's; external submissions carry their own name and a tag."""
    info = info or {}
    name = info.get("display_name")
    if not isinstance(name, str) or not name:
        name = _spec_names().get(model, model)
    return f"{name} (external)" if info.get("external") else name


def fmt_abs(t: tuple[float, float, float]) -> str:
    m, lo, hi = t
    return "n/a" if not np.isfinite(m) else f"{m:.4f} [{lo:.4f}, {hi:.4f}]"


def fmt_rel(t: tuple[float, float, float]) -> str:
    m, lo, hi = t
    if not np.isfinite(m):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m:+.1f}%"
    return f"{m:+.1f}% [{lo:+.1f}, {hi:+.1f}]"


def _seed_for(*parts: str) -> int:
    """Stable per-question bootstrap seed (crc32 of the question; Python's hash() is salted)."""
    return zlib.crc32("|".join(parts).encode()) % (2**31)


class ScenarioRuns:
    """All run records of one scenario plus memoised statistics over them."""

    def __init__(self, scenario: str, records: pd.DataFrame, per_user: pd.DataFrame, settings: Settings):
        self.scenario = scenario
        self.records = records
        self.per_user = per_user
        self.settings = settings
        self._cache: dict[tuple, object] = {}
        self._edges: np.ndarray | None = None
        self._by_model: dict | None = None

    @classmethod
    def load(cls, runs_roots: Path | list[Path], scenario: str, settings: Settings) -> "ScenarioRuns":
        """Records of one scenario from one or several run roots (e.g. runs + external submissions)."""
        roots = [runs_roots] if isinstance(runs_roots, (str, Path)) else list(runs_roots)
        parts = [collect_runs(r, scenario) for r in roots if (Path(r) / scenario).is_dir()]
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return cls(scenario, pd.DataFrame(), pd.DataFrame(), settings)
        records = pd.concat([p[0] for p in parts], ignore_index=True)
        dup = records[records.duplicated(["model", "seed", "fold"])]
        if len(dup):
            raise ValueError(f"{scenario}: run (model={dup.iloc[0]['model']}, seed={dup.iloc[0]['seed']}, "
                             f"fold={dup.iloc[0]['fold']}) found under more than one runs root {roots}")
        return cls(scenario, records, pd.concat([p[1] for p in parts], ignore_index=True), settings)

    # ----- what is there -------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        return sorted(self.records["model"].unique()) if len(self.records) else []

    def has(self, model: str) -> bool:
        return model in self.models

    def info(self, model: str) -> dict:
        """First record of a model (identity fields are the same in every run)."""
        rec = self.records[self.records["model"] == model].sort_values(["seed", "fold"]).iloc[0]
        return {k: rec[k] for k in rec.index}

    def name(self, model: str) -> str:
        return display_name(model, self.info(model)) if self.has(model) else display_name(model)

    @property
    def semi_synthetic(self) -> bool:
        return bool(len(self.records)) and bool(self.records["semi_synthetic"].astype(bool).any())

    def setting(self) -> dict:
        """The protocol setting that produced these runs: folds, seeds, catalog, drops."""
        if not len(self.records):
            return {}
        r = self.records
        ref = r[r["model"] == REFERENCE] if self.has(REFERENCE) else r[r["model"] == self.models[0]]
        seeds = sorted({int(s) for lst in r["seeds_setting"] for s in lst})
        return {
            "k": int(r["n_folds"].max()),
            "seeds": seeds,
            "min_support": int(r["min_support"].max()),
            "catalog_min": int(ref["catalog_size"].min()),
            "catalog_max": int(ref["catalog_size"].max()),
            "n_test_users": int(ref["n_test_users"].sum()),
            "n_dropped_test": int(ref["n_dropped_test"].sum()),
            "n_runs": int(len(ref)),
        }

    def setting_text(self) -> str:
        s = self.setting()
        if not s:
            return "no runs"
        cat = f"{s['catalog_min']}" if s["catalog_min"] == s["catalog_max"] else f"{s['catalog_min']}-{s['catalog_max']}"
        return (
            f"k={s['k']} folds x seeds {s['seeds']} ({s['n_runs']} runs), min_support={s['min_support']}; "
            f"{s['n_test_users']} evaluated test-user rows, {s['n_dropped_test']} test users dropped "
            f"(no positive in the fold catalog); catalog size per fold {cat}"
        )

    # ----- user subsets ----------------------------------------------------------------
    def history_edges(self) -> np.ndarray:
        """Quantile edges of source-history length (n_source) over the scenario's test users."""
        if self._edges is None:
            users = self.per_user.drop_duplicates("user")["n_source"].to_numpy(dtype=float)
            qs = np.linspace(0, 1, self.settings.n_bins + 1)[1:-1]
            self._edges = np.unique(np.quantile(users, qs)) if len(users) else np.array([])
        return self._edges

    def bin_labels(self) -> list[str]:
        e = [int(np.floor(x)) for x in self.history_edges()]
        if not e:
            return ["all"]
        labels = [f"n_source <= {e[0]}"]
        labels += [f"{a} < n_source <= {b}" for a, b in zip(e[:-1], e[1:])]
        return labels + [f"n_source > {e[-1]}"]

    def rows(self, model: str, subset: tuple | None = None) -> pd.DataFrame:
        """Per-user rows of a model, optionally restricted to ("cohort", c) or ("bin", i)."""

        def go():
            if subset is None:
                if self._by_model is None:
                    self._by_model = {m: g for m, g in self.per_user.groupby("model", sort=True)} if len(self.per_user) else {}
                return self._by_model.get(model, self.per_user.iloc[:0])
            df = self.rows(model)
            kind, val = subset
            if kind == "cohort":
                return df[df["cohort"] == val]
            if kind == "bin":
                b = np.searchsorted(self.history_edges(), df["n_source"].to_numpy(dtype=float), side="left")
                return df[b == val]
            raise ValueError(f"unknown subset kind {kind!r}")

        return self._memo(("rows", model, subset), go)

    # ----- statistics --------------------------------------------------------------------
    def _memo(self, key: tuple, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def absolute(self, model: str, metric: str, subset: tuple | None = None) -> tuple[float, float, float]:
        def go():
            df = self.rows(model, subset)
            if not len(df) or metric not in df:
                return (np.nan, np.nan, np.nan)
            s = self.settings
            return bootstrap_ci(df[metric].to_numpy(float), s.n_boot, _seed_for("abs", model, metric), s.level,
                                clusters=df["user"].astype(str).to_numpy())

        return self._memo(("abs", model, metric, subset), go)

    def _paired(self, model: str, ref: str, metric: str, subset: tuple | None) -> pd.DataFrame:
        """Rows of model and ref joined on (seed, fold, user); all metric columns, merged once."""

        def go():
            keys = ["seed", "fold", "user"]
            a, b = self.rows(model, subset), self.rows(ref, subset)
            cols = keys + [c for c in a.columns if c not in keys + ["scenario", "model", "cohort", "n_source", "n_pos"]]
            m = a[cols].merge(b[cols], on=keys, suffixes=("_a", "_b"))
            return m.sort_values(keys, kind="stable").reset_index(drop=True)

        return self._memo(("pairs", model, ref, subset), go)

    def relative(self, model: str, ref: str, metric: str, subset: tuple | None = None) -> tuple[float, float, float]:
        """Relative improvement (%) of ``model`` over ``ref`` on paired users; NaN if undefined."""

        def go():
            if not (self.has(model) and self.has(ref)):
                return (np.nan, np.nan, np.nan)
            if model == ref:
                return (0.0, 0.0, 0.0)
            m = self._paired(model, ref, metric, subset)
            m = m[~(m[f"{metric}_a"].isna() | m[f"{metric}_b"].isna())]
            if not len(m):
                return (np.nan, np.nan, np.nan)
            runs = [g for _, g in m.groupby(["seed", "fold"], sort=True)]
            s = self.settings
            pt, lo, hi = relative_improvement(
                [g[f"{metric}_a"].to_numpy() for g in runs], [g[f"{metric}_b"].to_numpy() for g in runs],
                [g["user"].astype(str).to_numpy() for g in runs], s.n_boot, _seed_for("rel", model, ref, metric), s.level)
            return (100 * pt, 100 * lo, 100 * hi)

        return self._memo(("rel", model, ref, metric, subset), go)

    def pvalue(self, model: str, ref: str, metric: str, subset: tuple | None = None) -> float:
        """Two-sided paired p-value of model vs ref (per-user values averaged over seeds)."""

        def go():
            if not (self.has(model) and self.has(ref)) or model == ref:
                return np.nan
            m = self._paired(model, ref, metric, subset)
            per_user = m.groupby("user", sort=True)[[f"{metric}_a", f"{metric}_b"]].mean()
            if not len(per_user):
                return np.nan
            return paired_test(per_user[f"{metric}_a"].to_numpy(), per_user[f"{metric}_b"].to_numpy(),
                               seed=_seed_for("p", model, ref, metric))

        return self._memo(("p", model, ref, metric, subset), go)

    def marks_vs(self, ref: str, models: list[str], metric: str, subset: tuple | None = None) -> dict[str, dict]:
        """Holm-corrected significance of each model against ``ref``: p, adjusted p, mark."""
        others = [m for m in models if m != ref and self.has(m) and self.has(ref)]
        raw = {m: self.pvalue(m, ref, metric, subset) for m in others}
        raw = {m: p for m, p in raw.items() if np.isfinite(p)}
        adj = holm(raw) if raw else {}
        out = {}
        for m in models:
            if m == ref:
                out[m] = {"p": np.nan, "p_holm": np.nan, "mark": MARK_REF}
                continue
            p, pa = raw.get(m, np.nan), adj.get(m, np.nan)
            mark = ""
            if np.isfinite(pa) and pa <= self.settings.alpha:
                diff = self.absolute(m, metric, subset)[0] - self.absolute(ref, metric, subset)[0]
                mark = MARK_BETTER if diff > 0 else MARK_WORSE
            out[m] = {"p": p, "p_holm": pa, "mark": mark}
        return out

    def strongest_baseline(self) -> str | None:
        """Best registered (non-external) baseline by mean NDCG@10; Popularity is a candidate."""
        cands = [m for m in self.models if not bool(self.info(m).get("external"))
                 and (m == REFERENCE or self.info(m).get("family") in BASELINE_FAMILIES)]
        if not cands:
            return None
        def key(m):
            v = self.absolute(m, HEADLINE)[0]
            return (v if np.isfinite(v) else -np.inf, m == REFERENCE)

        return max(sorted(cands), key=key)


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


def leaderboard_frame(sr: ScenarioRuns) -> tuple[pd.DataFrame, str | None]:
    """One row per model: absolute and relative metrics, significance, tuning, setting."""
    if not sr.models:
        return pd.DataFrame(), None
    best = sr.strongest_baseline()
    marks = sr.marks_vs(best, sr.models, HEADLINE) if best else {}
    rows = []
    for m in sr.models:
        info, recs = sr.info(m), sr.records[sr.records["model"] == m]
        summary, _ = summarise_config(recs)
        row = {
            "model": m, "name": sr.name(m), "family": info.get("family"), "external": bool(info.get("external")),
            "description": info.get("description") or "",
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
                    "mark": mk.get("mark", ""), "tuned_config": summary})
        rows.append(row)
    df = pd.DataFrame(rows)
    df = df.sort_values([HEADLINE, "model"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return df, best


def banner(semi: bool) -> str:
    if not semi:
        return ""
    return ("> **SEMI-SYNTHETIC**: composite users formed by a seeded linkage of real per-domain histories. "
            "A controlled testbed, not evidence about real users; the real scenarios are.\n\n")


def leaderboard_markdown(sr: ScenarioRuns, df: pd.DataFrame, best: str | None, semi: bool) -> str:
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
    cols = ["Model", "Family", "Runs"] + shown + [f"vs Pop {HEADLINE}", f"vs Pop P@{k0}", "Sig."]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in df.itertuples(index=False):
        d = dict(zip(df.columns, r))
        cells = [d["name"], str(d["family"]), str(d["n_runs"])]
        cells += [fmt_abs((d[c], d[f"{c}_lo"], d[f"{c}_hi"])) for c in shown]
        cells += [fmt_rel((d[f"rel_{c}"], d[f"rel_{c}_lo"], d[f"rel_{c}_hi"])) for c in (HEADLINE, f"P@{k0}")]
        cells.append(d["mark"] or "")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("\n## Tuned configurations (chosen on validation users, per fold)\n")
    for r in df.itertuples(index=False):
        d = dict(zip(df.columns, r))
        lines.append(f"- {d['name']}: {d['tuned_config']}")
    return "\n".join(lines) + "\n"


def _clean(v):
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_leaderboard(sr: ScenarioRuns, out_dir: Path, semi: bool) -> tuple[list[Path], pd.DataFrame]:
    """Write ``<scenario>.md|csv|json``; return the paths and the frame (for tables/figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    df, best = leaderboard_frame(sr)
    md, csv, js = (out_dir / f"{sr.scenario}.{ext}" for ext in ("md", "csv", "json"))
    md.write_text(leaderboard_markdown(sr, df, best, semi))
    if df.empty:
        write_csv(pd.DataFrame({"status": [f"not available: no model has runs for scenario {sr.scenario}"]}), csv)
    else:
        write_csv(df, csv)
    payload = {
        "scenario": sr.scenario, "semi_synthetic": semi, "setting": sr.setting(), "strongest_baseline": best,
        "headline": HEADLINE, "alpha": sr.settings.alpha, "n_boot": sr.settings.n_boot,
        "models": [{k: _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")],
        "tuned_configs": {m: summarise_config(sr.records[sr.records["model"] == m])[1] for m in sr.models},
    }
    js.write_text(json.dumps(payload, indent=1, sort_keys=True, default=_clean, allow_nan=False) + "\n")
    return [md, csv, js], df
