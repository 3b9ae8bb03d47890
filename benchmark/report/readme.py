"""``results/README.md``: what every output is, how it was made, and what it shows.

The findings section compares the paper's qualitative claims with our numbers. Every
outcome is *computed* here from the same statistics as the tables, by a rule stated
next to the claim, never written by hand: a claim "A > B" counts as reproduced only
when the 95% paired bootstrap interval of A's relative improvement over B lies above
zero. Point estimates alone are quoted as evidence but never decide an outcome,
because on these data Popularity is strong and many differences are within noise.

A claim that a modality or a source history helps is also checked against the real
scenario's null twin (:mod:`benchmark.report.transfer`): beating Popularity says nothing
about transfer if the same model scores as well with strangers' histories. The extra
column says, for every model the claim credits with using the source history, whether
its transfer gain is significantly above zero. Semi-synthetic scenarios have no twin
(their rho = 0 recipe is the control) and keep their rows as they were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.report.runs import HEADLINE, MARK_BETTER, ScenarioRuns, display_name, fmt_rel
from benchmark.report.recipes import (FUSION, IMPUTED, POSITIVE_CONTROL, MTL_ABLATIONS, MTL_FULL, ORDERING_MIDDLE, ORDERING_TOP, PODCAST_STEP,
                                      REFERENCE, TABLE2, TABLE3)
from benchmark.scenarios.schema import COHORT_MP
from benchmark.report.transfer import NO_TRANSFER, fmt_gain

REPRODUCED, NOT_REPRODUCED, NOT_AVAILABLE = "reproduced", "not reproduced", "not available"
K3 = ["P@3", "R@3", "F1@3", "HR@3"]
NEARLY_UNCHANGED_PCT = 2.0  # |relative HR@3 change| below this, or an interval covering 0, is "nearly unchanged"


INVESTIGATIONS = "INVESTIGATIONS.md"


def _above(v) -> bool:
    return bool(np.isfinite(v[1]) and v[1] > 0)


def _need(sr: ScenarioRuns, models: list[str]) -> str | None:
    gone = [m for m in models if not sr.has(m)]
    return None if not gone else f"no runs of {', '.join(display_name(m) for m in gone)}"


def claim_ordering(sr: ScenarioRuns, linked: bool) -> tuple[str, str]:
    top, mid = ORDERING_TOP["linked" if linked else "real"], ORDERING_MIDDLE
    miss = _need(sr, [top, mid, REFERENCE])
    if miss:
        return NOT_AVAILABLE, miss
    held, ev = 0, []
    for m in K3:
        a, b = sr.relative(top, mid, m), sr.relative(mid, REFERENCE, m)
        held += _above(a) and _above(b)
        ev.append(f"{m}: {display_name(top)} vs {display_name(mid)} {fmt_rel(a)}, "
                  f"{display_name(mid)} vs {display_name(REFERENCE)} {fmt_rel(b)}")
    outcome = REPRODUCED if held == len(K3) else NOT_REPRODUCED
    return outcome, f"both gaps significant on {held}/{len(K3)} metrics; " + "; ".join(ev)


def claim_fusion(sr: ScenarioRuns) -> tuple[str, str]:
    concat, gated = FUSION
    miss = _need(sr, [gated, concat])
    if miss:
        return NOT_AVAILABLE, miss
    p, h = sr.relative(gated, concat, "P@3"), sr.relative(gated, concat, "HR@3")
    flat = abs(h[0]) < NEARLY_UNCHANGED_PCT or (np.isfinite(h[1]) and h[1] <= 0 <= h[2])
    ok = _above(p) and flat
    return (REPRODUCED if ok else NOT_REPRODUCED), f"gated vs concat: P@3 {fmt_rel(p)}, HR@3 {fmt_rel(h)}"


def claim_podcast(sr: ScenarioRuns) -> tuple[str, str]:
    a, b = PODCAST_STEP
    miss = _need(sr, [a, b])
    if miss:
        return NOT_AVAILABLE, miss
    v = sr.relative(a, b, "P@3")
    return (REPRODUCED if _above(v) else NOT_REPRODUCED), f"adding podcast to music+book: P@3 {fmt_rel(v)}"


def claim_mp(sr: ScenarioRuns, model: str, refs: list[str]) -> tuple[str, str]:
    """Paper Figs. 3-4: ``model`` above each reference on the m&p cohort at P@3 (K = 3)."""
    miss = _need(sr, [model, *refs])
    if miss:
        return NOT_AVAILABLE, miss
    vals = {r: sr.relative(model, r, "P@3", ("cohort", COHORT_MP)) for r in refs}
    held = sum(_above(v) for v in vals.values())
    ev = "; ".join(f"vs {display_name(r)} {fmt_rel(v)}" for r, v in vals.items())
    return (REPRODUCED if held == len(refs) else NOT_REPRODUCED), f"m&p test users, P@3: {ev}"


def claim_mtl_aux(sr: ScenarioRuns) -> tuple[str, str]:
    """Spotify MTL summary: the ancillary objectives carry cold-start performance (MTL > MTL without them)."""
    miss = _need(sr, [MTL_FULL, *MTL_ABLATIONS["all"]])
    if miss:
        return NOT_AVAILABLE, miss
    v = sr.relative(MTL_FULL, MTL_ABLATIONS["all"][0], HEADLINE)
    return (REPRODUCED if _above(v) else NOT_REPRODUCED), f"MTL vs MTL (no auxiliary heads), {HEADLINE}: {fmt_rel(v)}"


def claim_imputed(sr: ScenarioRuns) -> tuple[str, str]:
    miss = _need(sr, [IMPUTED, REFERENCE])
    if miss:
        return NOT_AVAILABLE, miss
    vs = {m: sr.relative(IMPUTED, REFERENCE, m) for m in K3}
    held = sum(_above(v) for v in vs.values())
    ev = "; ".join(f"{m} {fmt_rel(v)}" for m, v in vs.items())
    outcome = REPRODUCED if held == len(K3) else NOT_REPRODUCED
    return outcome, f"{display_name(IMPUTED)} vs {display_name(REFERENCE)}, significant on {held}/4: {ev}"


def claim_null(sr: ScenarioRuns) -> tuple[str, str]:
    if not sr.has(REFERENCE) or len(sr.models) < 2:
        return NOT_AVAILABLE, "needs Popularity and at least one other model"
    marks = sr.marks_vs(REFERENCE, sr.models, HEADLINE)
    winners = sorted(m for m, d in marks.items() if d["mark"] == MARK_BETTER)
    if winners:
        return NOT_REPRODUCED, ("significant gain over Popularity on the null control (look for leakage): "
                                + ", ".join(f"{sr.name(m)} {fmt_rel(sr.relative(m, REFERENCE, HEADLINE))}" for m in winners))
    return REPRODUCED, f"no model significantly above Popularity on {HEADLINE} (Holm, {len(marks) - 1} models)"


def claim_positive(sr: ScenarioRuns) -> tuple[str, str]:
    """DESIGN section 3: at rho = 1 a source-history model is significantly above Popularity (Holm over all models)."""
    miss = _need(sr, [REFERENCE, *POSITIVE_CONTROL])
    if miss:
        return NOT_AVAILABLE, miss
    marks = sr.marks_vs(REFERENCE, sr.models, HEADLINE)
    ev = "; ".join(f"{sr.name(m)} {fmt_rel(sr.relative(m, REFERENCE, HEADLINE))}"
                   + (" (significant, Holm)" if marks.get(m, {}).get("mark") == MARK_BETTER else "") for m in POSITIVE_CONTROL)
    held = any(marks.get(m, {}).get("mark") == MARK_BETTER for m in POSITIVE_CONTROL)
    return (REPRODUCED if held else NOT_REPRODUCED), f"{HEADLINE} vs Popularity: {ev}"


def against_twin(sr: ScenarioRuns, gains: pd.DataFrame | None, models: list[str]) -> str:
    """Does the claim's credit to the source history survive the null twin? One sentence."""
    if gains is None:
        return "no twin (semi-synthetic: the rho = 0 scenario is the control)"
    parts, held, known = [], 0, 0
    for m in models:
        row = gains.loc[m] if m in gains.index else None
        parts.append(f"{sr.name(m)} {fmt_gain(row)}")
        if row is not None and np.isfinite(row["gain"]):
            known += 1
            held += bool(row["transfer"])
    if known < len(models):
        return f"{NOT_AVAILABLE}: not every model has a twin run; " + "; ".join(parts)
    verdict = "survives" if held == len(models) else "does not survive"
    return (f"{verdict}: {held}/{len(models)} of the models it credits draw a significant {HEADLINE} gain from the "
            "user's own source history; " + "; ".join(parts))


def findings(runs: dict[str, ScenarioRuns], kinds: dict[str, str], rho: dict[str, float | None],
             gains: dict[str, pd.DataFrame] | None = None) -> list[tuple[str, str, str, str, str]]:
    """Rows (claim, scenario, outcome, evidence, against the null twin) in a fixed order."""
    gains = gains or {}
    out = []
    for s, sr in runs.items():
        linked = kinds[s] in ("linked", "multi")  # two source modalities: the paper's three-domain claims apply
        top = ORDERING_TOP["linked" if linked else "real"]
        name = "MAP-2T(full)" if linked else "MAP-2T(music)"
        twin = "" if kinds[s] == "linked" else against_twin(sr, gains.get(s), [top, ORDERING_MIDDLE])
        out.append((f"{name} > ColloPop-Artist > Popularity at K=3 (Table 1)", s, *claim_ordering(sr, linked), twin))
        out.append(("auxiliary objectives carry cold-start performance (MTL summary; Table 4b)", s, *claim_mtl_aux(sr), ""))
        if linked:
            out.append(("gated > concat at P@3, HR@3 nearly unchanged (sec. 5.2.1)", s, *claim_fusion(sr), ""))
            out.append(("m&p cohort: MAP-2T(full) above Popularity and ColloPop-Artist (Fig. 3)", s,
                        *claim_mp(sr, TABLE2[0], TABLE2[1]), ""))
            out.append(("dual-signal training: MAP-2T(music_podcast) above Popularity and ColloPop-Podcast on m&p (Fig. 4)",
                        s, *claim_mp(sr, TABLE3[0], TABLE3[1]), ""))
            out.append(("podcast input adds precision (sec. 5.2)", s, *claim_podcast(sr), ""))
            out.append(("imputed variant still above Popularity at K=3 (Table 1)", s, *claim_imputed(sr), ""))
            if rho.get(s) == 1:
                out.append(("rho=1 positive control: a source-history model significantly above Popularity (design)", s,
                            *claim_positive(sr), ""))
            if rho.get(s) == 0:
                out.append(("rho=0 null control: no significant gain over Popularity (design)", s, *claim_null(sr), ""))
    return out


def render(out_root: Path, runs: dict[str, ScenarioRuns], kinds: dict[str, str], rho: dict[str, float | None],
           leaderboards: list[Path], tables: list, figures: list[tuple[Path, str]],
           gains: dict[str, pd.DataFrame] | None = None) -> str:
    semi = [s for s in runs if kinds[s] == "linked"]
    real = [s for s in runs if kinds[s] != "linked"]
    rel = lambda p: Path(p).relative_to(out_root).as_posix()  # noqa: E731
    L = ["# Results", "",
         "`cdrbench report` (the `report` stage of `dvc.yaml`) regenerates `leaderboard/`, `tables/`, `figures/`, "
         "`metrics/`, `site/`, `external/` and this file from the run records (`runs/`, `twins/`: DVC outputs, not in "
         "git; the published run's records are committed in `records/`, with their manifest). Do not edit these files: "
         "change the code or the params and run `dvc repro`. Not written by the report: `perf/` (speed measurements: the "
         "frozen `bench-scale` stage, `scripts/bench_*.py` and `scripts/profile_runs.py`; `perf/NOTES.md` by hand) "
         "and `INVESTIGATIONS.md` (written by hand, naming the scripts behind its numbers).", ""]
    if semi:
        L += [f"> **SEMI-SYNTHETIC**: {', '.join(semi)} {'is' if len(semi) == 1 else 'are'} built by a seeded linkage of "
              "real per-domain histories (Last.fm music, Apple podcast reviews, Book-Crossing books) into composite users. "
              "They are a controlled testbed (rho=1: positive control, rho=0: null control), not evidence about real users; "
              f"the real scenarios are{': ' + ', '.join(real) if real else ''}.", ""]
    L += ["## How these numbers were produced", "",
          "1. `dvc repro` fetches and verifies the raw data, builds each scenario and its k-fold user split "
          "(DESIGN section 4), and runs every model of `params.yaml` on every (seed, fold).",
          "2. Each run writes `runs/<scenario>/<model>/s<seed>_f<fold>/`: `record.json` (config, tuned config, "
          "scenario hash, code revision, versions, timings), `per_user.parquet` (every metric for every evaluated "
          "user) and `topk.parquet` (the ranked lists). The evaluator ranks the full fold catalog; models never see it.",
          "3. `cdrbench report` reads only those records. Absolute metrics: mean over users pooled over runs with a "
          "95% percentile bootstrap interval over users. Relative improvement over Popularity: computed per run, "
          "averaged, with a paired bootstrap interval. Significance: paired sign-flip test, Holm-corrected.",
          "4. External submissions (`cdrbench submit <folder>`) are re-scored from their ranked lists by the same "
          "evaluator and appear marked \"(external)\".",
          "5. Every real scenario has a null twin (`data/scenarios/<scenario>/twin/`: the same users, target rows, "
          "folds and catalogs, source histories permuted within cohort). Every model also runs on it with the "
          "configuration tuned on the real scenario (`twins/<scenario>/<model>/s<seed>_f<fold>/`); the transfer gain "
          f"is real minus twin {HEADLINE}, paired per user, with a bootstrap interval and a Holm-corrected "
          f"sign-flip test. A model whose gain is not significantly above zero is marked *{NO_TRANSFER}*.", "",
          "## Protocol setting", ""]
    for s, sr in runs.items():
        L.append(f"- **{s}**{' (SEMI-SYNTHETIC)' if kinds[s] == 'linked' else ''}: {sr.setting_text()}")
    L += ["", "## Leaderboards", ""]
    L += [f"- [`{rel(p)}`]({rel(p)})" for p in leaderboards if str(p).endswith(".md")]
    L += ["", "Each has a Markdown view (headline subset with intervals), and CSV/JSON with every metric at every K, "
          "the tuned configuration of every fold, dropped test users and catalog sizes.", "",
          "## Tables (DESIGN section 5)", ""]
    for t in tables:
        L.append(f"- [`{t.stem}.md`](tables/{t.stem}.md) (+ `.csv`): {t.title}."
                 + (f" {len(set(t.notes))} not-available note(s)." if t.notes else ""))
    L += ["", "## Figures", ""]
    L += [f"- [`{rel(p)}`]({rel(p)}): {d}" for p, d in figures]
    L += ["", "## Findings: the paper's claims against our numbers", "",
          "Computed, not written by hand. Rule: a claim \"A > B\" is *reproduced* when the 95% paired bootstrap "
          "interval of A's relative improvement over B lies above 0 (for the ordering claim: on all of P, R, F1, HR "
          f"at K=3, for both gaps); \"nearly unchanged\" means |change| < {NEARLY_UNCHANGED_PCT}% or an interval "
          "containing 0; *not available* means a needed model has no runs. The paper's own numbers come from "
          "proprietary data, so a claim not reproduced here is a statement about these public proxies only. "
          "Against the null twin (real scenarios): whether every model the claim credits with using the source "
          f"history has a transfer gain on {HEADLINE} significantly above zero (Holm-corrected); a claim can be "
          "reproduced against Popularity and still not survive the twin.", "",
          "| Claim | Scenario | Outcome | Evidence | Against the null twin |", "|---|---|---|---|---|"]
    for claim, s, outcome, ev, twin in findings(runs, kinds, rho, gains):
        tag = f"{s} (SEMI-SYNTHETIC)" if kinds[s] == "linked" else s
        L.append(f"| {claim} | {tag} | **{outcome}** | {ev.replace('|', '/')} | {twin.replace('|', '/')} |")
    notes = Path(out_root) / INVESTIGATIONS
    if notes.exists():  # hand-written analysis of suspicious results, kept apart and labelled
        L += ["", "## Investigations (written by the maintainers; not regenerated)", "",
              f"From [`{INVESTIGATIONS}`]({INVESTIGATIONS}); every number there names the command that measured it.", "",
              notes.read_text().strip()]
    return "\n".join(L) + "\n"
