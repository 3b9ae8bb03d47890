"""Transfer gain: how much of a model's score comes from each user's own source history.

DESIGN section 5, item 9. On these data Popularity is strong for cold users, so a rank
against it does not tell transfer from its absence: a model can sit below Popularity and
still read real signal from a user's history, or match it by collapsing to it. The null
twin of a real scenario (:mod:`benchmark.scenarios.twin`) keeps the users, target rows,
folds and catalogs and permutes source histories within cohort; every model runs on it
with the configuration tuned on the real scenario. A model's *transfer gain* is then

    real minus twin, per test user, on the same (seed, fold): paired by construction.

Conventions (those of :mod:`benchmark.report.runs`, so numbers read alike):

* the gain is the mean of the per-user differences over the (seed, fold) runs that have
  a twin run, with a 95% percentile bootstrap interval over users (a user tested under
  several seeds is one cluster: ``stats.bootstrap_ci``);
* significance: the paired sign-flip test (``stats.paired_test``) on per-user values
  averaged over seeds, Holm-corrected (``stats.holm``) across the models of the scenario;
* a model whose gain is not significantly above zero is marked :data:`NO_TRANSFER`,
  whatever its rank. Popularity ignores source history, so its gain is exactly zero on
  every user; it is computed like every other model's (a check that the twin kept the
  target side), never set by hand.

The twin run must score exactly the real run's test users; anything else means the two
were built from different scenarios, and :func:`paired_rows` refuses to pair them.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from benchmark.evaluation.stats import bootstrap_ci, holm, paired_test
from benchmark.report.runs import HEADLINE, ScenarioRuns, Settings

NO_TRANSFER = "no measurable transfer"
NO_TWIN = "no twin run"
KEYS = ["seed", "fold", "user"]
COLUMNS = ["model", "gain", "gain_lo", "gain_hi", "p", "p_holm", "n_users", "n_changed", "n_runs", "transfer", "mark"]


def _seed(*parts: str) -> int:
    return zlib.crc32("|".join(("transfer",) + parts).encode()) % (2**31)


def paired_rows(real: pd.DataFrame, twin: pd.DataFrame, metric: str = HEADLINE) -> pd.DataFrame:
    """Per-user rows of one model, real and twin side by side on (seed, fold, user).

    Only the (seed, fold) runs with a twin run take part. Columns: seed, fold, user,
    ``real``, ``twin``. A twin run whose users are not exactly its real run's is an error.
    """
    runs = twin[["seed", "fold"]].drop_duplicates()
    r = real.merge(runs, on=["seed", "fold"])
    for (seed, fold), g in twin.groupby(["seed", "fold"], sort=True):
        a = set(r.loc[(r["seed"] == seed) & (r["fold"] == fold), "user"].astype(str))
        b = set(g["user"].astype(str))
        if a != b:
            raise ValueError(f"twin run (seed={seed}, fold={fold}) scores other users than the real run: "
                             f"{len(a - b)} only real, {len(b - a)} only twin (rebuild both from one scenario build)")
    cols = KEYS + [metric]
    m = r[cols].merge(twin[cols], on=KEYS, suffixes=("_real", "_twin"))
    m = m.rename(columns={f"{metric}_real": "real", f"{metric}_twin": "twin"})
    return m.sort_values(KEYS, kind="stable").reset_index(drop=True)


def gain_of(pairs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean per-user gain with its bootstrap interval, and the two-sided sign-flip p-value."""
    d = (pairs["real"] - pairs["twin"]).to_numpy(float)
    mean, lo, hi = bootstrap_ci(d, n_boot, seed, level, clusters=pairs["user"].astype(str).to_numpy())
    per_user = pairs.groupby("user", sort=True)[["real", "twin"]].mean()
    p = paired_test(per_user["real"].to_numpy(), per_user["twin"].to_numpy(), seed=seed) if len(per_user) else np.nan
    return {"gain": mean, "gain_lo": lo, "gain_hi": hi, "p": p, "n_users": int(per_user.shape[0]),
            "n_changed": int((np.abs(d) > 0).sum()), "n_runs": int(len(pairs[["seed", "fold"]].drop_duplicates()))}


def transfer_gains(real: pd.DataFrame, twin: pd.DataFrame, metric: str = HEADLINE, n_boot: int = 1000,
                   alpha: float = 0.05, level: float = 0.95, models: list[str] | None = None) -> pd.DataFrame:
    """One row per model (columns :data:`COLUMNS`): its transfer gain on ``metric``.

    ``real`` and ``twin`` are per-user frames with columns model, seed, fold, user and the
    metric (run records' ``per_user`` rows, as ``collect_runs`` returns them). ``models``
    defaults to every model of ``real``; one without twin runs gets NaN and :data:`NO_TWIN`.
    Holm's correction runs over the models that have twin runs.
    """
    models = sorted(real["model"].unique()) if models is None else list(models)
    by_twin = {m: g for m, g in twin.groupby("model", sort=True)} if len(twin) else {}
    by_real = {m: g for m, g in real.groupby("model", sort=True)} if len(real) else {}
    rows = {}
    for m in models:
        if m not in by_twin or m not in by_real:
            rows[m] = {"gain": np.nan, "gain_lo": np.nan, "gain_hi": np.nan, "p": np.nan, "n_users": 0,
                       "n_changed": 0, "n_runs": 0}
            continue
        rows[m] = gain_of(paired_rows(by_real[m], by_twin[m], metric), n_boot, _seed(m, metric), level)
    tested = {m: r["p"] for m, r in rows.items() if np.isfinite(r["p"])}
    adj = holm(tested) if tested else {}
    out = []
    for m in models:
        r = rows[m]
        pa = adj.get(m, np.nan)
        measured = bool(np.isfinite(pa) and pa <= alpha and r["gain"] > 0)
        mark = NO_TWIN if m not in tested else ("" if measured else NO_TRANSFER)
        out.append({"model": m, **r, "p_holm": pa, "transfer": measured, "mark": mark})
    return pd.DataFrame(out, columns=COLUMNS)


def scenario_gains(real: ScenarioRuns, twin: ScenarioRuns | None, metric: str = HEADLINE) -> pd.DataFrame:
    """:func:`transfer_gains` for every model of a real scenario, indexed by model key."""
    s: Settings = real.settings
    twin_rows = twin.per_user if twin is not None and len(twin.per_user) else pd.DataFrame(columns=["model", *KEYS, metric])
    if not len(real.per_user):
        return pd.DataFrame(columns=COLUMNS).set_index("model")
    return transfer_gains(real.per_user, twin_rows, metric, s.n_boot, s.alpha, s.level, real.models).set_index("model")


def fmt_gain(row) -> str:
    """``+0.0123 [+0.0050, +0.0190]`` plus the mark; ``n/a`` without a twin run."""
    if row is None or not np.isfinite(row["gain"]):
        return f"n/a ({NO_TWIN})"
    cell = f"{row['gain']:+.4f} [{row['gain_lo']:+.4f}, {row['gain_hi']:+.4f}]"
    return cell + (f" *{row['mark']}*" if row["mark"] else "")


def explanation(metric: str = HEADLINE, alpha: float = 0.05) -> str:
    """The sentence every table with a transfer-gain column carries under it."""
    return (f"Transfer gain: {metric} on the real scenario minus {metric} on its null twin (the same test users, "
            "target rows, folds and catalogs, with source histories permuted among users of the same cohort; "
            "`data/scenarios/<scenario>/twin/`), paired per test user over the (seed, fold) runs that have a twin "
            "run, each twin run with the configuration tuned on the real scenario; mean with a 95% bootstrap "
            "interval over users. It is the part of a score that comes from each user's own source history. "
            f"*{NO_TRANSFER}*: the gain is not significantly above zero (paired sign-flip test, Holm-corrected "
            f"across the scenario's models, alpha={alpha}), whatever the model's rank. Popularity ignores source "
            "history, so its gain is exactly zero.")
