"""PNG figures of the report, drawn from the same frames as the tables.

Why from the table frames: a bar in a figure and a number in a table are then the
same number by construction. Figures are deterministic (Agg backend, fixed size and
dpi, fixed metadata, stable order), so a rebuild from unchanged runs writes the same
bytes and DVC sees no change. A figure whose data is missing is still written, as a
panel that says "not available", so the set of plot paths DVC declares is fixed by
the scenario list, not by which runs happened to finish.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from benchmark.report.runs import HEADLINE  # noqa: E402
from benchmark.report.recipes import REFERENCE  # noqa: E402

DPI = 110
META = {"Software": "cdrbench report (matplotlib Agg)"}
SEMI_NOTE = "SEMI-SYNTHETIC testbed: not evidence about real users"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata=META)
    plt.close(fig)
    return path


def _unavailable(path: Path, title: str, reason: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=9)
    return _save(fig, path)


def _err(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Asymmetric error bars; clipped at 0 (the point is a per-run mean, the interval pooled)."""
    lo_e = np.where(np.isfinite(lo), np.clip(v - lo, 0, None), 0)
    hi_e = np.where(np.isfinite(hi), np.clip(hi - v, 0, None), 0)
    return np.vstack([lo_e, hi_e])


def _grouped(ax, frame: pd.DataFrame, x_col: str, hue_col: str, x_order: list, hue_order: list,
             val: str = "rel_pct", lo: str = "lo", hi: str = "hi") -> None:
    width = 0.8 / max(len(hue_order), 1)
    x = np.arange(len(x_order))
    for j, h in enumerate(hue_order):
        g = frame[frame[hue_col] == h].set_index(x_col).reindex(x_order)
        v = g[val].to_numpy(float)
        ax.bar(x + (j - (len(hue_order) - 1) / 2) * width, np.nan_to_num(v), width, label=str(h),
               yerr=_err(v, g[lo].to_numpy(float), g[hi].to_numpy(float)), capsize=2, color=f"C{j}")
    ax.set_xticks(x, [str(s) for s in x_order], fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", lw=0.3)


def relative_figure(frame: pd.DataFrame, path: Path, title: str, hue_col: str, semi: bool,
                    panel_col: str | None = None) -> Path:
    """Paper Fig. 3/4 style: relative improvement (%) per metric, one bar per comparison."""
    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    if not len(ok):
        reasons = sorted(set(frame["status"])) if len(frame) else ["no runs"]
        return _unavailable(path, title, "\n".join(reasons))
    panels = list(dict.fromkeys(ok[panel_col])) if panel_col else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, p in zip(axes[0], panels):
        sub = ok if p is None else ok[ok[panel_col] == p]
        sub = sub.assign(short=sub["metric"])
        _grouped(ax, sub, "short", hue_col, list(dict.fromkeys(sub["short"])), list(dict.fromkeys(sub[hue_col])))
        ax.set_ylabel("relative improvement (%)", fontsize=8)
        if p is not None:
            ax.set_title(f"{panel_col} = {p}", fontsize=9)
    fig.suptitle(title + (f"\n{SEMI_NOTE}" if semi else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def leaderboard_figure(board: pd.DataFrame, path: Path, scenario: str, semi: bool, metric: str = HEADLINE) -> Path:
    title = f"{scenario}: {metric} per model (95% bootstrap interval)"
    if board is None or board.empty:
        return _unavailable(path, title, f"not available: no model has runs for scenario {scenario}")
    b = board.sort_values([metric, "model"], ascending=[True, True], kind="stable")
    v = b[metric].to_numpy(float)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(b) + 1.4))
    colors = ["C3" if e else ("C1" if f == "transfer" else "C0") for e, f in zip(b["external"], b["family"])]
    ax.barh(np.arange(len(b)), v, xerr=_err(v, b[f"{metric}_lo"].to_numpy(float), b[f"{metric}_hi"].to_numpy(float)),
            color=colors, capsize=2)
    ax.set_yticks(np.arange(len(b)), [f"{n} {m}".strip() for n, m in zip(b["name"], b["mark"])], fontsize=8)
    ax.set_xlabel(metric, fontsize=8)
    ax.grid(axis="x", lw=0.3)
    ax.legend(handles=[Patch(color=c, label=lab) for c, lab in (("C0", "baseline"), ("C1", "transfer"), ("C3", "external"))],
              fontsize=7, loc="lower right")
    ax.set_title(title + (f"\n{SEMI_NOTE}" if semi else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def replication_figure(frame: pd.DataFrame, path: Path, metric: str = HEADLINE) -> Path:
    """Table 7 as bars: models on the x axis, one bar per real scenario."""
    title = f"Real-data replication: {metric} relative to Popularity (95% interval)"
    ok = frame[(frame["status"] == "ok") & (frame["metric"] == metric)] if len(frame) else frame
    if not len(ok):
        return _unavailable(path, title, "not available: no real scenario has runs of Popularity and another model")
    models = sorted(set(ok["model"]), key=lambda m: (m != REFERENCE, m))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(models) + 2), 3.8))
    _grouped(ax, ok, "model", "scenario", models, list(dict.fromkeys(ok["scenario"])))
    names = ok.drop_duplicates("model").set_index("model")["name"]
    ax.set_xticks(np.arange(len(models)), [names[m] for m in models], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("relative improvement (%)", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def transfer_figure(board: pd.DataFrame, path: Path, scenario: str, metric: str = HEADLINE) -> Path:
    """Score against transfer gain, one labelled point per model (a real scenario's leaderboard frame).

    Why this plot: a model's rank says how good its lists are, the gain how much of that
    comes from each user's own source history; a model far right transfers, a model on
    the zero line scores what it scores without transfer (Popularity sits there by
    construction). Hollow points: no measurable transfer (Holm-corrected test).
    """
    title = f"{scenario}: {metric} against transfer gain over the null twin"
    ok = board[np.isfinite(board["transfer_gain"].to_numpy(float))] if board is not None and not board.empty \
        and "transfer_gain" in board.columns else pd.DataFrame()
    if ok.empty:
        return _unavailable(path, title, f"not available: no model has both real and null-twin runs on {scenario}")
    ok = ok.sort_values(["transfer_gain", "model"], kind="stable")
    x, y = ok["transfer_gain"].to_numpy(float), ok[metric].to_numpy(float)
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.errorbar(x, y, xerr=_err(x, ok["transfer_gain_lo"].to_numpy(float), ok["transfer_gain_hi"].to_numpy(float)),
                yerr=_err(y, ok[f"{metric}_lo"].to_numpy(float), ok[f"{metric}_hi"].to_numpy(float)),
                fmt="none", ecolor="0.6", elinewidth=0.7, capsize=2)
    measured = ok["transfer"].astype(bool).to_numpy()
    ax.scatter(x[measured], y[measured], s=36, color="C1", zorder=3, label="transfer gain significantly > 0")
    ax.scatter(x[~measured], y[~measured], s=36, facecolors="white", edgecolors="C0", zorder=3,
               label="no measurable transfer")
    for i, (xi, yi, name) in enumerate(zip(x, y, ok["name"])):
        ax.annotate(name, (xi, yi), xytext=(4, 4 if i % 2 else -9), textcoords="offset points", fontsize=7)
    ax.set_xlabel(f"transfer gain: {metric} real minus null twin, paired per user (95% interval)", fontsize=8)
    ax.set_ylabel(f"{metric} on the real scenario (95% interval)", fontsize=8)
    ax.grid(lw=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def overview_figure(boards: dict[str, pd.DataFrame], semi: dict[str, bool], path: Path, metric: str = HEADLINE) -> Path:
    """Every model on every scenario, relative to Popularity, as one annotated heatmap.

    Why a heatmap: with ~40 models and nine scenarios, grouped bars (Table 7's figure)
    hide the pattern a reader looks for first, namely which rows are above Popularity
    anywhere and whether that holds across scenarios. A cell shows the per-run mean
    improvement (%) and is boxed when its paired bootstrap interval excludes zero; the
    colour scale is clipped at +-60% so the small differences near Popularity stay
    visible. Rows are sorted by the mean over the real scenarios; external submissions
    are left out (they run on one scenario).
    """
    title = f"{metric} relative to Popularity (%), per-run mean; boxed: 95% interval excludes 0"
    col = f"rel_{metric}"
    frames = []
    for s, b in boards.items():
        if b is None or b.empty or col not in b:
            continue
        own = b[~b["external"].astype(bool)] if "external" in b else b
        frames.append(own.assign(scenario=s)[["scenario", "model", "name", col, f"{col}_lo", f"{col}_hi"]])
    if not frames:
        return _unavailable(path, title, "not available: no scenario has runs of Popularity and another model")
    df = pd.concat(frames, ignore_index=True)
    scen = [s for s in boards if s in set(df["scenario"])]
    real = [s for s in scen if not semi.get(s)]
    grid = df.pivot_table(index="model", columns="scenario", values=col, aggfunc="first").reindex(columns=scen)
    lo = df.pivot_table(index="model", columns="scenario", values=f"{col}_lo", aggfunc="first").reindex(index=grid.index, columns=scen)
    hi = df.pivot_table(index="model", columns="scenario", values=f"{col}_hi", aggfunc="first").reindex(index=grid.index, columns=scen)
    order = grid[real].mean(axis=1, skipna=True) if real else grid.mean(axis=1, skipna=True)
    rows = sorted(grid.index, key=lambda m: (-np.nan_to_num(order[m], nan=-1e9), m))
    grid, lo, hi = grid.loc[rows], lo.loc[rows], hi.loc[rows]
    names = df.drop_duplicates("model").set_index("model")["name"]
    v = grid.to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.0 * len(scen) + 3.2, 0.26 * len(rows) + 1.8))
    im = ax.imshow(np.clip(v, -60, 60), cmap="RdBu", vmin=-60, vmax=60, aspect="auto")
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if not np.isfinite(v[i, j]):
                ax.text(j, i, "-", ha="center", va="center", fontsize=6, color="0.5")
                continue
            sig = (lo.iat[i, j] > 0) or (hi.iat[i, j] < 0)
            ax.text(j, i, f"{v[i, j]:+.0f}", ha="center", va="center", fontsize=6,
                    fontweight="bold" if sig else "normal", color="white" if abs(v[i, j]) > 40 else "black")
            if sig:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=0.8, edgecolor="black"))
    ax.set_xticks(np.arange(len(scen)), [s + ("\n(SEMI-SYNTH.)" if semi.get(s) else "") for s in scen],
                  rotation=45, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(rows)), [names.get(m, m) for m in rows], fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02).ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
