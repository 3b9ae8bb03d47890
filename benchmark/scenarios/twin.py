"""Null twins of the real scenarios (DESIGN section 3, "Null twins").

Why a twin: on these data Popularity is strong for users with no target history, so a
model's rank against it does not say how much of its score comes from the user's *own*
source history (a model can sit below Popularity and still transfer, or match it by
collapsing to it). The twin is the same scenario -- the same users, every target row,
the same folds, hence the same catalogs and held-out truth -- in which each user's
source history is another user's of the same cohort. Whatever a model scores on the
twin it scores without transfer; real minus twin, paired per test user, is its transfer
gain (:mod:`benchmark.report.transfer`).

Choices, and why:

* **Cohort = the set of source domains a user has rows in** (``music``, ``music+podcast``,
  ...). Permuting inside it keeps every ``has_<domain>`` flag, cohort label and
  evaluable flag, so the users table is byte-identical and a two-modality user never
  receives a one-modality history: "no transfer" is not confounded with "less input".
* **Whole histories move**: every source row of a donor (all its domains, values and
  timestamps) goes to one recipient. The multiset of histories is unchanged, so the
  source vocabulary, source-item popularity and co-occurrence *within* histories (what
  the frozen item vectors of the pretrain stage are learned from; the run stage gives
  the twin the real scenario's vectors) are the real scenario's. Only the link between a
  person's source history and their books is cut.
* **Every user of a cohort takes part, training users included.** If training users
  kept their real histories, a model would still learn the real source -> book mapping
  on the twin and the gain would measure how badly it applies it to a stranger; with
  everyone permuted, source history says nothing about books for anybody.
* Users without any source row have nothing to move and are left alone.
* The Ciao time cut is per person (a user's source rows before *their* first book); on the
  twin a recipient's source rows are a stranger's, which nothing the recipient read can
  have caused, so the cut is neither needed nor kept.
* Seeded by the scenario name (:func:`twin_seed`), one generator per cohort: a rebuild
  is byte-identical, two scenarios do not share a permutation, and adding a cohort does
  not reshuffle another.

Pure functions over tables; writing the twin folder is the scenario stage's job
(:func:`benchmark.scenarios.build_scenario`).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from benchmark.scenarios.export import finalize_interactions

TWIN_DIR = "twin"  # data/scenarios/<name>/twin/: a complete scenario folder
# Builders of real people (a twin each); `linked` is semi-synthetic and its rho = 0 recipe is its control.
REAL_BUILDERS = ("real", "goodreads-audio", "multi")
PERMUTATION_FILE = "permutation.parquet"  # recipient user, donor user, cohort
RULE = ("each user's source history (every source domain, with values and timestamps) is replaced by the history "
        "of another user with the same set of source domains (seeded permutation within cohort, training users "
        "included); users, target rows, folds and items are the real scenario's")


def twin_seed(name: str) -> int:
    """The fixed seed of a scenario's twin (crc32 of its name: Python's hash() is salted)."""
    return zlib.crc32(f"null-twin|{name}".encode()) % (2**31)


def source_cohorts(interactions: pd.DataFrame, source_domains: list[str]) -> pd.Series:
    """Cohort key of every user with a source row: its source domains joined by ``+``, sorted."""
    src = interactions[interactions["domain"].isin(list(source_domains))]
    pairs = src[["user", "domain"]].drop_duplicates().sort_values(["user", "domain"], kind="mergesort")
    return pairs.groupby("user", sort=True)["domain"].agg("+".join).rename("cohort")


def permutation(interactions: pd.DataFrame, source_domains: list[str], seed: int) -> pd.DataFrame:
    """Who gets whose source history: one row per user with a source row.

    Columns ``user`` (the recipient), ``donor`` (whose real history the user gets on the
    twin; ``donor == user`` for the few fixed points of a random permutation) and
    ``cohort``; sorted by user. Users are sorted before permuting, so the result does not
    depend on row order.
    """
    cohorts = source_cohorts(interactions, source_domains)
    parts = []
    for cohort in sorted(cohorts.unique()):
        users = np.sort(cohorts.index[cohorts == cohort].to_numpy().astype(str))
        rng = np.random.default_rng([seed, zlib.crc32(cohort.encode())])
        parts.append(pd.DataFrame({"user": users, "donor": users[rng.permutation(len(users))], "cohort": cohort}))
    if not parts:
        return pd.DataFrame({"user": pd.Series(dtype=str), "donor": pd.Series(dtype=str), "cohort": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True).sort_values("user", kind="mergesort").reset_index(drop=True)


def permute_sources(interactions: pd.DataFrame, source_domains: list[str], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The twin's interactions and the permutation that made them.

    Target rows (and rows of any domain not in ``source_domains``) are untouched; every
    source row of donor ``d`` is given to the user whose ``donor`` is ``d``. The result
    is in the canonical row order of :func:`~benchmark.scenarios.export.finalize_interactions`,
    so the twin's target rows are the real scenario's, row for row.
    """
    perm = permutation(interactions, source_domains, seed)
    recipient_of = pd.Series(perm["user"].to_numpy(), index=perm["donor"].to_numpy())
    is_src = interactions["domain"].isin(list(source_domains)).to_numpy()
    users = interactions["user"].astype(str).to_numpy().copy()
    users[is_src] = recipient_of.reindex(users[is_src]).to_numpy()
    twin = interactions.assign(user=users)
    if len(twin) != len(interactions) or twin["user"].isna().any():
        raise AssertionError("twin permutation lost source rows: a donor without a recipient")
    return finalize_interactions(twin), perm


def summary(perm: pd.DataFrame, seed: int) -> dict:
    """What the card and the twin's meta say about the permutation."""
    moved = perm["user"] != perm["donor"]
    by_cohort = {str(c): {"users": int(len(g)), "moved": int(moved[g.index].sum())}
                 for c, g in perm.groupby("cohort", sort=True)}
    return {"seed": int(seed), "rule": RULE, "users_permuted": int(len(perm)), "users_moved": int(moved.sum()),
            "by_cohort": by_cohort}
