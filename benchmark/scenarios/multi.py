"""Real multi-source scenarios (epinions-mv2b, epinions-mm2b, ciao-me2b): music + a
second category -> books, the same people in all three.

Why: the semi-synthetic scenario is the only one where some users have two source
modalities, and its users are linked, not real. Epinions and Ciao users rate many
categories, so Music plus a second category (Movies, Magazines & Newspapers,
Entertainment) plus Books gives real people with zero, one or two source modalities:
the m&p / m-only / p-only cohorts of DESIGN section 5 on real data.

Roles: the schema has one slot per source modality, ``music`` and ``podcast``. The
second category takes the ``podcast`` slot (its rows get domain ``podcast`` and item ids
``podcast:<product>``) because the pipeline, the models and the cohorts read that slot
as "the second source modality"; what it really holds travels in the notes (meta.json
and the card): ``modalities`` (role -> "Movies (Epinions category 3)"),
``second_modality`` and ``podcast_pretrain: svd`` (the pretrain stage must not embed
movies with the Apple podcast co-subscription graph; :mod:`benchmark.features.pretrain`).
The category names come from the prepared items table (``category_name``, written by
:mod:`benchmark.data.loaders.tang`).

* evaluable = >= 1 source row (music or the second modality) and >= 1 book positive
  (value >= ``positive_threshold``), both after the time cut;
* users with book rows only stay as training users, users with source rows only stay
  as source-side input; cohorts come from :func:`~benchmark.scenarios.export.users_table`
  after the cut;
* ``time_cut`` (Ciao): every candidate's (evaluable before the cut) music and
  second-modality rows with timestamp >= their first book rating are dropped, with the
  rule of :func:`benchmark.scenarios.real.cut_after_first_book`; a user whose
  second-modality history came entirely after that moves from m&p to m-only (or loses
  evaluability if nothing is left);
* ``user_sample: N``: a seeded sample of N of all users of the three domains keeps all
  its rows, the others are dropped entirely (whole users, so every kept history is
  complete). Drawn before the time cut, seeded by the scenario name (crc32), so a rebuild
  is byte-identical. For CI only; the card says so in a banner.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.params import MultiScenario, parse_params_section
from benchmark.data.loaders.common import CATEGORY_DOMAIN
from benchmark.scenarios.export import Built, finalize_interactions, items_table, read_prepared, users_table
from benchmark.scenarios.real import cut_after_first_book
from benchmark.scenarios.schema import TARGET, prefixed

MUSIC, SECOND = "music", "podcast"  # the schema's two source roles
SOURCE_NAMES = {"epinions-tang": "Epinions", "ciao-tang": "Ciao"}


def _resolve(name: str, spec: dict) -> dict:
    """The spec through the params schema: defaults filled in one place, typos refused."""
    return parse_params_section(MultiScenario, {"builder": "multi", **spec}, f"scenarios.{name}").model_dump()


def sample_seed(name: str) -> int:
    """The fixed seed of a scenario's user sample (crc32 of its name: Python's hash() is salted)."""
    return zlib.crc32(f"user-sample|{name}".encode()) % (2**31)


def sample_users(inter: pd.DataFrame, n: int | None, seed: int) -> tuple[pd.DataFrame, dict]:
    """Keep every row of a seeded sample of ``n`` users (all users when ``n`` is None or >= their number).

    Users are sorted before drawing, so the sample does not depend on row order.
    """
    users = np.sort(inter["user"].astype(str).unique())
    if n is None or n >= len(users):
        why = "user_sample: null" if n is None else f"user_sample {n} >= the {len(users)} users"
        return inter, {"applied": False, "kept": int(len(users)), "of": int(len(users)), "rule": f"every user kept ({why})"}
    rng = np.random.default_rng(seed)
    keep = users[np.sort(rng.choice(len(users), size=n, replace=False))]
    out = inter[inter["user"].isin(set(keep))]
    return out, {
        "applied": True, "kept": int(n), "of": int(len(users)), "seed": int(seed),
        "rows_kept": int(len(out)), "rows_dropped": int(len(inter) - len(out)),
        "rule": (f"CI sample: {n} of {len(users)} users of the three domains (seeded by the scenario name), every row of "
                 "the other users dropped, before the time cut; the full setting sets user_sample: null"),
    }


def modality_names(items_raw: pd.DataFrame | None, source: str, domains: dict[str, str]) -> dict[str, str]:
    """Role -> "Movies (Epinions category 3)" from the prepared items' category columns.

    ``domains`` maps role -> prepared domain. A category domain (``cat<N>``) without a
    ``category_name`` column means a prepared folder older than the loader that writes
    it: refused, since the card would not say what the modality is.
    """
    label = SOURCE_NAMES.get(source, source)
    out = {}
    for role, dom in domains.items():
        rows = items_raw[items_raw["domain"] == dom] if items_raw is not None else None
        if rows is None or "category_name" not in rows.columns or rows.empty:
            if CATEGORY_DOMAIN.fullmatch(dom):
                raise ValueError(f"prepared items of {source} carry no category_name for {dom}: re-run `cdrbench prepare {source}`")
            out[role] = f"{dom} (prepared domain of {source})"
            continue
        names, ids = sorted(set(rows["category_name"].astype(str))), sorted(set(rows["category_id"].astype(int)))
        if len(names) != 1 or len(ids) != 1:
            raise ValueError(f"prepared items of {source}, domain {dom}: one category expected, found {names} {ids}")
        out[role] = f"{names[0]} ({label} category {ids[0]})"
    return out


def _time_cut(inter: pd.DataFrame, candidates: set[str], second: str) -> tuple[pd.DataFrame, dict]:
    """The cut on both source domains, and what it removed (card numbers)."""
    out, drop_idx = cut_after_first_book(inter, candidates, [MUSIC, second])
    dropped = inter.loc[drop_idx]

    def _in(df: pd.DataFrame, doms: list[str]) -> set[str]:
        return set(df.loc[df["domain"].isin(doms) & df["user"].isin(candidates), "user"])

    def _all_after(dom: str) -> int:  # candidates whose whole history of dom was at/after their first book
        return len(_in(inter, [dom]) - _in(out, [dom]))

    return out, {
        "applied": True,
        "rule": ("music and second-modality interactions with timestamp >= the user's first book rating are dropped "
                 "(users that had a source row and a book positive)"),
        "interactions_removed": int(len(drop_idx)),
        "interactions_removed_music": int((dropped["domain"] == MUSIC).sum()),
        "interactions_removed_podcast": int((dropped["domain"] == second).sum()),
        "users_affected": int(dropped["user"].nunique()),
        "users_lost_evaluability": int(len(candidates - _in(out, [MUSIC, second]))),
        "users_music_entirely_after_first_book": _all_after(MUSIC),
        "users_podcast_entirely_after_first_book": _all_after(second),
    }


def build_multi(name: str, spec: dict, prepared_root: Path) -> Built:
    """Build one music + second category -> book scenario from ``prepared_root/<source>/``."""
    spec = _resolve(name, spec)
    src, second, thr = spec["source"], spec["second_domain"], float(spec["positive_threshold"])
    raw = read_prepared(prepared_root, src, "interactions")
    items_raw = read_prepared(prepared_root, src, "items", required=False)
    roles = {MUSIC: MUSIC, SECOND: second, TARGET: TARGET}  # role -> prepared domain
    missing = sorted(set(roles.values()) - set(raw["domain"].unique()))
    if missing:
        raise ValueError(f"scenario {name}: prepared source {src} has no rows of domains {missing}; "
                         f"has {sorted(raw['domain'].unique())}")
    modalities = modality_names(items_raw, src, roles)

    inter = raw[raw["domain"].isin(list(roles.values()))].copy()
    other_rows = int(len(raw) - len(inter))
    inter["user"] = inter["user"].astype(str)
    inter["item"] = inter["item"].astype(str)
    inter["timestamp"] = pd.array(inter["timestamp"], dtype="Int64")
    inter = inter.reset_index(drop=True)
    inter, sample = sample_users(inter, spec["user_sample"], sample_seed(name))

    def _eligible(df: pd.DataFrame) -> set[str]:
        has_src = set(df.loc[df["domain"].isin([MUSIC, second]), "user"])
        return has_src & set(df.loc[(df["domain"] == TARGET) & (df["value"] >= thr), "user"])

    before = _eligible(inter)
    cut_note = {"applied": False}
    if spec["time_cut"]:
        inter, cut_note = _time_cut(inter, before, second)
    evaluable = _eligible(inter)

    inter["positive"] = (inter["domain"] != TARGET) | (inter["value"] >= thr)
    inter["domain"] = inter["domain"].map({dom: role for role, dom in roles.items()})
    inter["item"] = [prefixed(d, i) for d, i in zip(inter["domain"], inter["item"])]
    inter = finalize_interactions(inter)

    meta_by_domain = {}
    if items_raw is not None:
        items_raw = items_raw.assign(item=items_raw["item"].astype(str))
        meta_by_domain = {role: items_raw[items_raw["domain"] == dom] for role, dom in roles.items()}
    items = items_table(inter, meta_by_domain)

    second_name = modalities[SECOND].split(" (")[0]
    notes = {
        "time_cut": cut_note,
        "user_sample": sample,
        "modalities": modalities,
        "second_modality": second_name,
        "podcast_pretrain": "svd",
        "filters": {
            "evaluable_rule": f">= 1 source interaction (music or {second_name}) and >= 1 book positive (after the time cut)",
            "evaluable_before_time_cut": len(before),
            "second_domain": f"prepared domain {second} ({second_name}) -> role podcast, item ids podcast:<product>",
            "rows_of_other_domains_dropped": other_rows,
            "item_text": "title/creator/description of the prepared items table where present (none in Epinions / Ciao: item-side inputs are collaborative)",
        },
    }
    return Built(
        interactions=inter,
        items=items,
        users=users_table(inter, evaluable),
        source_domains=[MUSIC, SECOND],
        semi_synthetic=False,
        sources=[src],
        notes=notes,
    )
