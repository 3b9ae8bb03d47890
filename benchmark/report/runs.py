"""Per-scenario statistics over run records: the one object every report module asks.

Why one memoised object per scenario (:class:`ScenarioRuns`): the leaderboard, the
seven tables, the figures and the findings of ``results/README.md`` all ask the same
questions ("mean and interval of NDCG@10 for model X", "relative improvement of X
over Popularity on the m&p cohort"). Answering each once keeps the bootstraps from
being recomputed, and guarantees that a number quoted twice is the same number.

Conventions used everywhere in the report:

* absolute metrics: mean over users pooled over every (seed, fold) run, 95% percentile
  bootstrap interval over users (a user tested under several seeds is one cluster);
* relative improvement: ``mean(model) / mean(reference) - 1`` per run, averaged over
  runs, with a paired bootstrap interval of that same per-run average
  (:func:`benchmark.report.relative.per_run_relative`), in percent;
* significance: paired sign-flip test on per-user values (averaged per user over
  seeds, so a user counts once), Holm-corrected across the models of one comparison.
"""

from __future__ import annotations

import zlib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.evaluation.records import collect_runs
from benchmark.evaluation.stats import bootstrap_ci, holm, paired_test
from benchmark.config.params import Params
from benchmark.config.specs import display_names
from benchmark.report.recipes import REFERENCE
from benchmark.report.relative import per_run_relative

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
        """Display name; on a scenario whose second modality is not podcasts, a name that says
        "podcast" (the role) also says what the role holds here, e.g. "ColloPop-Podcast [podcast = Movies]"."""
        name = display_name(model, self.info(model)) if self.has(model) else display_name(model)
        second = self.second_modality()
        if second and "podcast" in name.lower() and "podcast" not in second.lower():
            name += f" [podcast = {second.split(' (')[0]}]"
        return name

    def second_modality(self) -> str | None:
        """The real name of the second source modality (the schema's "podcast" role), if the scenario says.

        Multi-source real scenarios put another category (Movies, Magazines) in the role the
        paper fills with podcasts; the run records carry the scenario's names for each role.
        """
        if not len(self.records) or "modalities" not in self.records:
            return None
        names = [m.get("podcast") for m in self.records["modalities"] if isinstance(m, dict) and m.get("podcast")]
        return str(names[0]) if names else None

    @property
    def semi_synthetic(self) -> bool:
        return bool(len(self.records)) and bool(self.records["semi_synthetic"].astype(bool).any())

    def setting(self) -> dict:
        """The protocol setting that produced these runs: folds, seeds, catalog, drops."""
        if not len(self.records):
            return {}
        r = self.records
        ref = r[r["model"] == REFERENCE] if self.has(REFERENCE) else r[r["model"] == self.models[0]]
        own = r[~r["external"].astype(bool)] if "external" in r else r
        seeds = sorted({int(s) for lst in r["seeds_setting"] for s in lst})
        return {
            "k": int(r["n_folds"].max()),
            "seeds": seeds,
            "min_support": int(r["min_support"].max()),
            "catalog_min": int(ref["catalog_size"].min()),
            "catalog_max": int(ref["catalog_size"].max()),
            "n_test_users": int(ref["n_test_users"].sum()),
            "n_dropped_test": int(ref["n_dropped_test"].sum()),
            # test users not scored because their fold reused the configuration chosen on them
            "n_excluded_tuning": int(pd.to_numeric(ref["n_excluded_tuning_users"], errors="coerce").fillna(0).sum())
            if "n_excluded_tuning_users" in ref else 0,
            "n_runs": int(len(ref)),
            # which setting and code produced the benchmark's own runs (external submissions carry their own)
            **self._code_of(own),
            "tuning": self._tuning_of(own),
        }

    @staticmethod
    def _tuning_of(r: pd.DataFrame) -> dict:
        """Where the configurations were chosen: the trial budget and each tuning fold's validation users.

        Why on the setting line: a reader judging a baseline's gap to Popularity needs to
        know how many users its configuration was chosen on (42 on one published fold of
        ciao-m2b), not only how many trials it had.
        """
        slots, budgets = set(), set()
        for t in (r["tuning"] if "tuning" in r else []):
            if isinstance(t, dict) and t.get("tuned_on"):
                slots.add((int(t["tuned_on"][0]), int(t["tuned_on"][1])))
                if t.get("budget_trials"):
                    budgets.add(int(t["budget_trials"]))
        folds = []
        for seed, fold in sorted(slots):
            at = r[(r["seed"] == seed) & (r["fold"] == fold)]
            n = pd.to_numeric(at["n_valid_users"], errors="coerce").max() if "n_valid_users" in at and len(at) else None
            folds.append({"seed": seed, "fold": fold, "n_valid_users": None if n is None or pd.isna(n) else int(n)})
        return {"trials": sorted(budgets), "folds": folds}

    @staticmethod
    def _code_of(r: pd.DataFrame) -> dict:
        def values(col: str) -> list[str]:
            return sorted({str(v) for v in r[col] if isinstance(v, str) and v}) if col in r else []

        dirty = bool(r["git_dirty"].fillna(False).astype(bool).any()) if "git_dirty" in r else False
        models = r.groupby("code_hash")["model"].nunique() if "code_hash" in r and "model" in r else pd.Series(dtype=int)
        return {"setting_name": " + ".join(values("setting")) or "unknown", "git_revs": values("git_rev"),
                "git_dirty": dirty, "code_hashes": values("code_hash"),
                "models_per_code_hash": {str(h): int(n) for h, n in models.items() if isinstance(h, str) and h}}

    def setting_text(self) -> str:
        s = self.setting()
        if not s:
            return "no runs"
        cat = f"{s['catalog_min']}" if s["catalog_min"] == s["catalog_max"] else f"{s['catalog_min']}-{s['catalog_max']}"
        revs = ", ".join(x[:10] for x in s["git_revs"]) or "unknown"
        code = ", ".join(s["code_hashes"]) or "unknown"
        if len(s["code_hashes"]) > 1:  # an incremental build (benchmark/experiment/reuse.py): say which rows came from where
            per = s.get("models_per_code_hash", {})
            code = (", ".join(f"{h} ({per.get(h, 0)} model{'' if per.get(h, 0) == 1 else 's'})" for h in s["code_hashes"])
                    + " (incremental build: a model's records are kept while its own code and inputs are unchanged)")
        tuning = s.get("tuning") or {}
        tuned = ""
        if tuning.get("folds"):
            where = ", ".join(f"seed {f['seed']} / fold {f['fold']}" + (f" ({f['n_valid_users']} users)" if f["n_valid_users"] is not None else "")
                              for f in tuning["folds"])
            trials = "/".join(map(str, tuning.get("trials") or [])) or "?"
            tuned = f"; tuned with {trials} trials per model on the validation users of {where}"
        return (
            f"{s['setting_name']} setting, code revision {revs}{' (uncommitted changes)' if s['git_dirty'] else ''}, "
            f"modelling-code hash {code}; "
            f"k={s['k']} folds x seeds {s['seeds']} ({s['n_runs']} runs"
            + (f"; folds evaluated per seed: {s['n_runs'] // max(1, len(s['seeds']))} of {s['k']}, so these test users are "
               f"a {s['n_runs'] // max(1, len(s['seeds']))}/{s['k']} share of the evaluable users"
               if s["n_runs"] < s["k"] * len(s["seeds"]) else "")
            + f"), min_support={s['min_support']}; "
            f"{s['n_test_users']} evaluated test-user rows, {s['n_dropped_test']} test users dropped "
            f"(no positive in the fold catalog)"
            + (f", {s['n_excluded_tuning']} test-user rows not scored because the configurations "
               "were tuned on them in another fold" if s.get("n_excluded_tuning") else "")
            + f"; catalog size per fold {cat}{tuned}"
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
            pt, lo, hi = per_run_relative(
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
