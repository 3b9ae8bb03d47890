"""The ``scenario`` stage: named recipes -> built scenario folders (DESIGN sections 3-4).

A builder (``real``, ``multi``, ``linked`` or ``goodreads-audio``) turns prepared
canonical tables into a :class:`~benchmark.scenarios.export.Built`; :func:`build_scenario`
then does what is common to every scenario, in one place so no builder can skip it:
schema checks, k-fold dealing (:func:`benchmark.scenarios.protocol.deal_folds`), the
parquet tables and ``meta.json``, RecBole atomic files, and the dataset card
(:mod:`benchmark.scenarios.card`). Every real scenario also gets its null twin in
``<name>/twin/`` (:mod:`benchmark.scenarios.twin`), written here so no real scenario
can lack one; ``linked`` scenarios have none (their rho = 0 recipe is the
control). Outputs are a pure function of (prepared tables, spec, protocol): rebuilding
gives byte-identical files. Both the scenario folder and the git-tracked card are
replaced only once the new ones are complete, so a failed or interrupted build leaves
the previous ones in place.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from benchmark.config import paths
from benchmark.config.atomic import atomic_dir, atomic_files
from benchmark.config.params import LinkedScenario, MultiScenario, ProtocolParams, RealScenario
from benchmark.scenarios.protocol import deal_folds
from benchmark.scenarios.schema import TARGET, read_meta, scenario_hash
from benchmark.scenarios import twin as null_twin
from benchmark.scenarios.export import (
    SEMI_SYNTHETIC_BANNER,
    Built,
    domain_stats,
    fold_stats,
    validate,
    write_json,
    write_parquet,
    write_recbole,
)
from benchmark.scenarios.card import card_markdown, card_notes, source_licences
from benchmark.scenarios.audiobook import build_goodreads_audio
from benchmark.scenarios.linked import build_linked
from benchmark.scenarios.multi import build_multi
from benchmark.scenarios.real import build_real

BUILDERS: dict[str, Callable[[str, dict, Path], Built]] = {"real": build_real, "linked": build_linked,
                                                          "goodreads-audio": build_goodreads_audio, "multi": build_multi}

__all__ = ["BUILDERS", "Built", "build_scenario"]


def build_scenario(
    name: str,
    spec: RealScenario | LinkedScenario | MultiScenario,
    protocol: ProtocolParams,
    prepared_root: Path = paths.PREPARED,
    out_root: Path = paths.SCENARIOS,
    cards_root: Path = paths.DATASET_CARDS,
) -> dict:
    """Build scenario ``name`` from its typed ``spec`` (params.yaml ``scenarios.<name>``).

    Writes ``out_root/<name>/`` (schema files, ``recbole/<name>/<name>.{inter,item,user}``
    -- loadable with RecBole's ``data_path=out_root/<name>/recbole``, builder extras such as
    ``linkage.parquet``, and for a real scenario its null twin ``twin/``) and
    ``cards_root/<name>/{CARD.md,card.json}``; returns the card's numbers plus the output
    folder and the scenario hash.
    """
    resolved = spec.model_dump()  # every default made explicit: the recipe as built
    built = BUILDERS[spec.builder](name, resolved, Path(prepared_root))
    validate(built)

    evaluable = built.users.loc[built.users["evaluable"], "user"].to_numpy()
    folds = deal_folds(evaluable, protocol.k, list(protocol.seeds), protocol.valid_share)

    out, cdir = Path(out_root) / name, Path(cards_root) / name
    # The folder is swapped in first, the card files after it (exits run inner first).
    with atomic_files(cdir / "card.json", cdir / "CARD.md") as (card_json, card_md), atomic_dir(out) as tmp:
        card = _write_scenario(tmp, name, spec, resolved, protocol, built, folds)
        if spec.builder in null_twin.REAL_BUILDERS:
            card["null_twin"] = _write_twin(tmp, name, card["scenario_hash"], built)
        write_json(card_json, card)
        card_md.write_text(card_markdown(card))
    return {**card, "dir": str(out), "card_dir": str(cdir)}


def _write_scenario(out: Path, name: str, spec, resolved: dict, protocol: ProtocolParams, built: Built, folds) -> dict:
    """Write the scenario's files into ``out`` (a fresh folder: no stale files from an
    older recipe); return the card's content."""
    users = built.users
    write_parquet(built.interactions, out / "interactions.parquet")
    write_parquet(built.items, out / "items.parquet")
    write_parquet(users, out / "users.parquet")
    write_parquet(folds, out / "folds.parquet")
    for fname, table in sorted(built.extra_tables.items()):
        write_parquet(table, out / fname)

    cohorts = users["cohort"].value_counts().sort_index()
    cohorts_eval = users.loc[users["evaluable"], "cohort"].value_counts().sort_index()
    stats = {
        "domains": domain_stats(built.interactions),
        "users_total": int(len(users)),
        "evaluable_users": int(users["evaluable"].sum()),
        "cohorts": {str(k): int(v) for k, v in cohorts.items()},
        "cohorts_evaluable": {str(k): int(v) for k, v in cohorts_eval.items()},
        "folds": fold_stats(folds, len(users)),
    }
    rb = write_recbole(out / "recbole" / name, name, built.interactions, built.items, users)
    meta = {
        "name": name,
        "source_domains": list(built.source_domains),
        "target_domain": TARGET,
        "semi_synthetic": bool(built.semi_synthetic),
        "params": {**resolved, "protocol": protocol.model_dump()},
        "stats": stats,
        "notes": {**built.notes, "recbole": rb, "sources": sorted(built.sources)},
    }
    if built.semi_synthetic:
        meta["notes"]["banner"] = SEMI_SYNTHETIC_BANNER
    write_json(out / "meta.json", meta)

    return {
        "name": name,
        "semi_synthetic": bool(built.semi_synthetic),
        "banner": SEMI_SYNTHETIC_BANNER if built.semi_synthetic else "",
        "source_domains": list(built.source_domains),
        "target_domain": TARGET,
        "positive_threshold": spec.positive_threshold,
        "min_support": spec.min_support,
        **stats,
        "time_cut": built.notes.get("time_cut") if built.notes.get("time_cut", {}).get("applied") else None,
        "linkage": built.notes.get("linkage"),
        "filters": built.notes.get("filters"),
        "sources": source_licences(built.sources),
        **card_notes(built.notes),  # optional notes (a CI sample, the modalities), only where a builder set them
        "recbole": rb,
        "scenario_hash": scenario_hash(out),
    }


def _write_twin(real: Path, name: str, real_hash: str, built: Built) -> dict:
    """Write the null twin of the scenario in ``real`` into ``real/twin/``; return its card facts.

    Users, folds and items are copied file for file (byte-identical by construction, not
    by a second write); only ``interactions.parquet`` differs, in its source rows. The
    twin's ``meta.json`` is the real one (same name, so the run stage attaches the real
    scenario's frozen source vectors and text vectors to it: same items, same set of source
    histories) plus a ``null_twin`` section with the seed, the rule and the counts.
    ``permutation.parquet`` says who got whose history. No RecBole files: the twin is an
    instrument of the run stage, not a dataset of its own.
    """
    out = real / null_twin.TWIN_DIR
    out.mkdir()
    seed = null_twin.twin_seed(name)
    inter, perm = null_twin.permute_sources(built.interactions, list(built.source_domains), seed)
    write_parquet(inter, out / "interactions.parquet")
    for fname in ("items.parquet", "users.parquet", "folds.parquet"):
        shutil.copyfile(real / fname, out / fname)
    write_parquet(perm, out / null_twin.PERMUTATION_FILE)
    facts = null_twin.summary(perm, seed)
    meta = read_meta(real)
    meta["null_twin"] = {**facts, "of": name, "real_scenario_hash": real_hash}
    write_json(out / "meta.json", meta)
    return {**facts, "folder": f"data/scenarios/{name}/{null_twin.TWIN_DIR}/", "scenario_hash": scenario_hash(out)}
