"""The dataset card (``datasets/<name>/CARD.md``): ``card.json`` rendered for people.

Split from :mod:`benchmark.scenarios.export` (tables and files) because the card is
prose about the tables, and grows with every kind of scenario. What a builder wants on
the card travels in ``Built.notes``; :data:`CARD_NOTES` names the optional notes the
scenario stage copies into ``card.json`` (only when a builder sets them, so the cards of
scenarios without them are unchanged) and :func:`card_markdown` prints them:

* ``user_sample``: a seeded sample of the users stands for the scenario (CI); printed as
  a banner at the top, because numbers from a sample must never pass for the full data;
* ``modalities`` / ``second_modality``: what each schema role really holds when a role
  name ("podcast") is borrowed for another kind of item (Epinions Movies);
* ``podcast_pretrain``: how the pretrain stage must embed the podcast role.

Same numbers as ``card.json``, no clock: a rebuild is byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.config import paths
from benchmark.scenarios.export import SEMI_SYNTHETIC_BANNER

CARD_NOTES = ("user_sample", "modalities", "second_modality", "podcast_pretrain")


def card_notes(notes: dict) -> dict:
    """The optional notes of :data:`CARD_NOTES` a builder set (card.json keys)."""
    return {k: notes[k] for k in CARD_NOTES if k in notes}


def sample_banner(sample: dict) -> str:
    """The loud line of a sampled scenario ('' when every user is kept)."""
    if not sample or not sample.get("applied"):
        return ""
    return (f"CI SAMPLE: {sample['kept']:,} of {sample['of']:,} users (seeded, seed {sample['seed']}; every row of the other "
            "users dropped). Numbers on this card and on any leaderboard built from it are of the sample, not of the "
            "full data; the full setting (params-full.yaml) builds every user.")



def source_licences(sources: list[str], tsv: Path = paths.SOURCES_TSV) -> list[dict]:
    """Licence/provenance line per source from ``datasets/sources.tsv`` ("same" rows
    inherit the first licence text of their source)."""
    table = pd.read_csv(tsv, sep="\t", dtype=str).fillna("")
    out = []
    for s in sorted(set(sources)):
        rows = table[table["source"] == s]
        if rows.empty:
            out.append({"source": s, "licence": "not listed in datasets/sources.tsv", "upstream": ""})
            continue
        lic = next((x for x in rows["licence"] if x and x != "same"), "")
        out.append({"source": s, "licence": lic, "upstream": f"{rows['repo'].iloc[0]}@{rows['commit'].iloc[0][:12]}"})
    return out


def card_markdown(card: dict) -> str:
    """Human-readable rendering of ``card.json`` (same numbers, no clock)."""
    L = []
    if card["semi_synthetic"]:
        L += [f"**{SEMI_SYNTHETIC_BANNER}**", ""]
    if sample_banner(card.get("user_sample")):
        L += [f"**{sample_banner(card['user_sample'])}**", ""]
    L += [f"# Dataset card: {card['name']}", ""]
    L += [f"- source domains: {', '.join(card['source_domains'])}; target domain: {card['target_domain']}"]
    L += [f"- semi-synthetic: {'yes' if card['semi_synthetic'] else 'no (real users)'}"]
    L += [f"- positive threshold (target): value >= {card['positive_threshold']}; min_support: {card['min_support']}"]
    L += [f"- users: {card['users_total']}; evaluable users: {card['evaluable_users']}", ""]
    if card.get("modalities"):
        L += _modalities_section(card)
    L += ["## Domains", "", "| domain | users | items | interactions | positives |", "|---|---|---|---|---|"]
    for d, s in card["domains"].items():
        L.append(f"| {d} | {s['users']} | {s['items']} | {s['interactions']} | {s['positives']} |")
    L += ["", "## Cohorts (all users / evaluable users)", ""]
    for c, n in card["cohorts"].items():
        L.append(f"- {c}: {n} / {card['cohorts_evaluable'].get(c, 0)}")
    L += ["", "## Folds (evaluable users per role; all training users)", "", "| seed | fold | train | valid | test | train users total |", "|---|---|---|---|---|---|"]
    for f in card["folds"]:
        L.append(f"| {f['seed']} | {f['fold']} | {f['train_evaluable']} | {f['valid_evaluable']} | {f['test_evaluable']} | {f['train_users_total']} |")
    for key, title in (("time_cut", "Time cut"), ("linkage", "Linkage"), ("user_sample", "User sample"), ("filters", "Filters")):
        if card.get(key):
            L += ["", f"## {title}", ""]
            L += [f"- {k}: {v}" for k, v in sorted(card[key].items())]
    if card.get("null_twin"):
        L += _twin_section(card["name"], card["null_twin"])
    L += ["", "## Sources and licences", ""]
    L += [f"- {s['source']} ({s['upstream']}): {s['licence']}" for s in card["sources"]]
    L += ["", f"Scenario hash: `{card['scenario_hash']}`. RecBole atomic files: `recbole/{card['name']}/`.", ""]
    L += ["Built by `benchmark.scenarios.build_scenario`; numbers are recomputed from the written tables."]
    return "\n".join(L) + "\n"


def _modalities_section(card: dict) -> list[str]:
    """What each schema role holds, when a builder borrowed a role name for other items."""
    L = ["## Modalities (schema role: what it really holds)", ""]
    L += [f"- {role}: {what}" for role, what in card["modalities"].items()]
    if card.get("second_modality"):
        L.append(f"- the second source modality is {card['second_modality']}: every row and item of the `podcast` role "
                 "(item ids `podcast:<product>`) is of it; models and cohorts read `podcast` as 'the second source modality'")
    if card.get("podcast_pretrain"):
        L.append(f"- pretrain of the podcast role: {card['podcast_pretrain']}")
    return L + [""]


def _twin_section(name: str, t: dict) -> list[str]:
    """The card's words on the null twin (benchmark/scenarios/twin.py): what it is, what moved."""
    cohorts = "; ".join(f"{c}: {v['users']} users, {v['moved']} moved" for c, v in sorted(t["by_cohort"].items()))
    return [
        "", "## Null twin", "",
        f"`{t['folder']}` is the null twin of {name}: the same users, folds, items and target rows (so the same "
        "fold catalogs and held-out truth), but every user's source history is another user's of the same cohort. "
        "Whatever a model scores there it scores without its own source history; the run stage evaluates every "
        "model on it with the configuration tuned here, and the leaderboard's transfer gain is real minus twin, "
        f"paired per test user. It is not a scenario of its own. Rule: {t['rule']}.", "",
        f"- permuted: {t['users_permuted']} users with a source history ({cohorts}); seed {t['seed']}",
        f"- users moved (given another user's history): {t['users_moved']}",
        f"- twin scenario hash: `{t['scenario_hash']}`",
    ]
