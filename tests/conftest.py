"""Shared test fixtures: one planted-structure scenario builder and hand-written tiny tables.

Why one builder: model tests need a real :class:`~benchmark.scenarios.protocol.TrainView`
built by the real ``build_fold`` (so the leakage guard and the train-only catalog rule
are exercised), small enough to fit in seconds, and with a structure whose right answer
is known. Every such fixture comes from :func:`planted_scenario`, parameterised per test.

Planted structure: every user belongs to one of ``n_groups`` taste groups (sizes equal,
or given by ``sizes`` so that popularity is dominated by the biggest groups). A user
listens mostly to the artists of their group (``music:a{g}_{j}``; plus one noise artist
of any group), and about ``podcast_share`` of them to podcasts of their group
(``podcast:p{g}_{j}``). They read books of the *same* group: always the group's "head"
book ``book:b{g}_0`` plus ``extra_books`` more books of the group, sometimes one of
``n_popular`` globally popular books (``book:pop{i}``), and sometimes a disliked book
(``positive=False``, below the threshold: never a target positive). So the right first
item for a cold user of group ``g`` is ``book:b{g}_0``, and popularity can express it
only for the biggest groups. With ``planted=False`` the book group is drawn
independently of the source group (the null control).

Also present, to exercise the protocol: users with books only (never evaluable, always
training users; ``b0000``...) and users with music only (no target; ``m0000``...).

The builder returns records (:class:`Planted`), not tables, so a test can add a user or
swap what held-out users read and rebuild; :func:`tables_from_records` is the one place
where records become the canonical tables of :mod:`benchmark.scenarios.schema`, also for
hand-written tiny cases whose expected values are computed by hand.

Fixtures: ``planted_small`` (the records: four equal groups of 30), ``planted_fold`` (a
fresh ``(view, truth)`` of its fold 0 per test) and ``contract_fold`` (the model-contract
oracle, :func:`contract_planted`). Helpers: :func:`view_of`, :func:`write_scenario` (a
scenario folder on disk), :func:`make_params` (small typed ``Params`` through the real
schema) and :func:`load_built` (tables of a built scenario, for the ``built`` tests).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pytest

from benchmark.config.params import Params, parse_params
from benchmark.scenarios.protocol import TrainView, Truth, build_fold, deal_folds
from benchmark.scenarios.schema import INTERACTION_COLUMNS, cohort_of

# ---------------------------------------------------------------- hand-written tables


def tables_from_records(
    source: dict[str, list[tuple]],
    target: list[tuple],
    evaluable: list[str] | None = None,
    k: int = 3,
    seed: int = 0,
    valid_share: float = 0.2,
    name: str = "tiny",
    roles: dict[str, str] | None = None,
) -> dict:
    """Canonical tables (interactions, users, folds, items, meta) from plain records.

    Records are ``(user, raw_item, value)`` or ``(user, raw_item, value, positive)``;
    item ids get their domain prefix here (``music:a0_1``). The first record of a
    (user, item) pair wins. ``evaluable`` defaults to every user with a source history
    and a target positive; they are dealt into ``k`` folds with :func:`deal_folds`, unless
    ``roles`` gives the roles of fold (seed, 0) explicitly (users not listed are then
    training users, as non-evaluable users are).
    """
    rows = []
    for dom, recs in list(source.items()) + [("book", target)]:
        for rec in recs:
            u, i, v = rec[:3]
            pos = bool(rec[3]) if len(rec) > 3 else True
            rows.append((str(u), f"{dom}:{i}", dom, float(v), pd.NA, pos))
    inter = pd.DataFrame(rows, columns=INTERACTION_COLUMNS)
    inter["value"] = inter["value"].astype("float32")
    inter["timestamp"] = inter["timestamp"].astype("Int64")
    inter = inter.drop_duplicates(["user", "item"], keep="first").reset_index(drop=True)

    source_domains = list(source)
    has = {d: set(inter.loc[inter["domain"] == d, "user"]) for d in [*source_domains, "book"]}
    positives = set(inter.loc[(inter["domain"] == "book") & inter["positive"], "user"])
    users = pd.DataFrame({"user": np.sort(inter["user"].unique())})
    users["has_music"] = users["user"].isin(has.get("music", set()))
    users["has_podcast"] = users["user"].isin(has.get("podcast", set()))
    users["has_book"] = users["user"].isin(has["book"])
    users["cohort"] = [cohort_of(m, p) for m, p in zip(users["has_music"], users["has_podcast"])]
    if roles is not None:
        evaluable = sorted(roles) if evaluable is None else evaluable
        folds = pd.DataFrame({"seed": seed, "fold": 0, "user": list(roles), "role": list(roles.values())})
        folds["seed"], folds["fold"] = folds["seed"].astype("int32"), folds["fold"].astype("int32")
    else:
        if evaluable is None:
            src = set().union(*(has[d] for d in source_domains)) if source_domains else set()
            evaluable = sorted(src & positives)
        folds = deal_folds(np.array(sorted(evaluable)), k=k, seeds=[seed], valid_share=valid_share)
    users["evaluable"] = users["user"].isin(set(evaluable))
    items = pd.DataFrame({"item": np.sort(inter["item"].unique())})
    items["domain"] = items["item"].str.split(":").str[0]
    items["title"] = "title of " + items["item"]
    items["creator"] = ""
    items["text"] = items["title"]
    meta = {"name": name, "source_domains": source_domains, "target_domain": "book", "semi_synthetic": True,
            "params": {"seed": seed, "k": k}, "notes": "test fixture (tests/conftest.py)"}
    return {"interactions": inter, "users": users, "folds": folds, "items": items, "meta": meta}


def view_of(tables: dict, seed: int | None = None, fold: int = 0, min_support: int = 1) -> tuple[TrainView, Truth]:
    """``build_fold`` on tables from :func:`tables_from_records` (possibly edited by a test)."""
    t = tables
    seed = int(t["folds"]["seed"].iloc[0]) if seed is None else seed
    return build_fold(t["interactions"], t["users"], t["folds"], t["items"], t["meta"], seed, fold, min_support)


def write_scenario(tables: dict, root: Path) -> Path:
    """Write tables as a scenario folder ``root/<name>/`` (the files ``load_scenario`` reads)."""
    folder = Path(root) / tables["meta"]["name"]
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("interactions", "items", "users", "folds"):
        tables[name].to_parquet(folder / f"{name}.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps(tables["meta"], sort_keys=True))
    return folder


def make_params(scenarios: dict[str, dict] | None = None, ks: Sequence[int] = (3, 5, 10, 20), k: int = 5,
                seeds: Sequence[int] = (0,), bootstrap: int = 1000, alpha: float = 0.05, **sections) -> Params:
    """A small valid :class:`~benchmark.config.params.Params` (through the real schema).

    ``scenarios`` maps names to recipes; ``{"builder": "real"}`` alone gets a placeholder
    source and threshold, ``{"builder": "linked"}`` placeholder linking values.
    """
    placeholder = {"real": {"source": "fixture", "positive_threshold": 1},
                   "linked": {"rho": 0.0, "podcast_share": 0.5, "positive_threshold": 1, "seed": 0},
                   "multi": {"source": "fixture", "second_domain": "cat3", "positive_threshold": 1}}
    scen = {n: {"builder": r.get("builder", "real"), **placeholder[r.get("builder", "real")], **r}
            for n, r in (scenarios or {"fixture": {}}).items()}
    raw = {"sources": ["fixture"], "protocol": {"k": k, "seeds": list(seeds), "valid_share": 0.1},
           "evaluation": {"ks": list(ks)}, "report": {"bootstrap": bootstrap, "alpha": alpha},
           "scenarios": scen, "tuning": {"n_trials": 0, "time_budget_s": 1, "metric": f"NDCG@{max(ks)}"}, **sections}
    return parse_params(raw)


@functools.lru_cache(maxsize=None)
def load_built(name: str) -> dict:
    """Tables of the built scenario ``data/scenarios/<name>`` (tests marked ``built``), read once.

    A missing file is an assertion failure naming the stage to run, never a skip: the CI
    runs ``pytest -m built`` after ``dvc repro``, and absent outputs there are a failure.
    Shared between tests: do not mutate the tables.
    """
    from benchmark.config import paths
    from benchmark.scenarios.protocol import load_scenario
    from benchmark.scenarios.schema import SCENARIO_FILES

    folder = paths.SCENARIOS / name
    missing = [f for f in SCENARIO_FILES if not (folder / f).exists()]
    assert not missing, f"scenario {name}: {missing} absent under {folder}; run `dvc repro` (stage scenario)"
    return load_scenario(folder)


# ---------------------------------------------------------------- the planted builder


@dataclasses.dataclass
class Planted:
    """Records of a planted scenario plus the planted group of every user."""

    source: dict[str, list[tuple]]
    target: list[tuple]
    group: dict[str, int]  # user -> planted source group (book-only / music-only users: absent)
    k: int
    seed: int
    valid_share: float
    name: str
    evaluable: list[str] | None = None

    def tables(self) -> dict:
        return tables_from_records(self.source, self.target, evaluable=self.evaluable, k=self.k, seed=self.seed,
                                   valid_share=self.valid_share, name=self.name)

    def fold(self, fold: int = 0, min_support: int = 1) -> tuple[TrainView, Truth]:
        return view_of(self.tables(), seed=self.seed, fold=fold, min_support=min_support)

    def group_of(self, view: TrainView) -> np.ndarray:
        """Planted group per user row of ``view`` (-1: a user outside the planted population)."""
        return np.array([self.group.get(u, -1) for u in view.users], dtype=int)

    def head_cols(self, view: TrainView, rows: np.ndarray) -> np.ndarray:
        """Catalog column of the planted head book of each user row's group."""
        return np.array([view.catalog.get_loc(head(g)) for g in self.group_of(view)[rows]])


def head(g: int) -> str:
    """The head book of group ``g``: read by every user of the group."""
    return f"book:b{g}_0"


def planted_scenario(
    n_users: int = 200,
    n_groups: int = 4,
    sizes: Sequence[int] | None = None,
    podcast_share: float = 0.5,
    planted: bool = True,
    artists_per_group: int = 6,
    podcasts_per_group: int = 4,
    books_per_group: int = 5,
    extra_books: int = 2,
    n_popular: int = 3,
    popular_rate: float = 0.5,
    dislike_rate: float = 0.3,
    n_book_only: int | None = None,
    n_music_only: int | None = None,
    k: int = 5,
    seed: int = 0,
    valid_share: float = 0.1,
    name: str | None = None,
) -> Planted:
    """The planted scenario (see the module docstring); deterministic for fixed arguments.

    ``sizes`` (users per group) overrides ``n_users``/``n_groups``; by default the
    ``n_users`` planted users are split evenly. Book-only and music-only users default
    to ``n_users // 20`` and ``n_users // 40``.
    """
    if sizes is not None:
        sizes = [int(s) for s in sizes]
        n_groups, n_users = len(sizes), int(sum(sizes))
        groups = np.repeat(np.arange(n_groups), sizes)
    else:
        groups = np.arange(n_users) % n_groups
    if n_users < 2 * k:
        raise ValueError(f"n_users={n_users} too small for k={k} folds")
    rng = np.random.default_rng([seed, 77])
    groups = rng.permutation(groups)
    music, podcast, book, group = [], [], [], {}

    def books_for(user: str, g: int) -> None:
        book.append((user, f"b{g}_0", int(rng.integers(8, 11))))
        for j in rng.choice(np.arange(1, books_per_group), size=extra_books, replace=False):
            book.append((user, f"b{g}_{j}", int(rng.integers(7, 11))))
        if n_popular and rng.random() < popular_rate:
            book.append((user, f"pop{rng.integers(n_popular)}", int(rng.integers(7, 11))))
        if rng.random() < dislike_rate:  # a disliked book: not a positive
            book.append((user, f"b{rng.integers(n_groups)}_{rng.integers(books_per_group)}", 3, False))

    for u in range(n_users):
        user, g = f"u{u:04d}", int(groups[u])
        group[user] = g
        for j in rng.choice(artists_per_group, size=3, replace=False):
            music.append((user, f"a{g}_{j}", int(rng.integers(20, 60))))
        music.append((user, f"a{rng.integers(n_groups)}_{rng.integers(artists_per_group)}", int(rng.integers(1, 10))))
        if rng.random() < podcast_share:
            for j in rng.choice(podcasts_per_group, size=2, replace=False):
                podcast.append((user, f"p{g}_{j}", int(rng.integers(5, 30))))
        books_for(user, g if planted else int(rng.integers(n_groups)))
    for u in range(n_users // 20 if n_book_only is None else n_book_only):
        books_for(f"b{u:04d}", int(rng.integers(n_groups)))
    for u in range(n_users // 40 if n_music_only is None else n_music_only):
        music.append((f"m{u:04d}", f"a{rng.integers(n_groups)}_{rng.integers(artists_per_group)}", int(rng.integers(1, 50))))
    name = name or ("tiny-planted" if planted else "tiny-null")
    return Planted({"music": music, "podcast": podcast}, book, group, k=k, seed=seed, valid_share=valid_share, name=name)


# The oracle fixture of the model contract (tests/test_model_contract.py): ten taste groups
# of unequal size and one rarely read global book. Group 0 is big enough that all five of
# its books outrank every other group's head book, so Popularity's top 5 serves group 0
# only and misses most other users; a model that reads the source history does not.
# Why ~1,000 users: the RecBole specs run at their default config, whose batch sizes (BPR
# 4096 interactions, MultiVAE 512 users) give one optimiser step per epoch on a few hundred
# users; measured at 262 users, BPR and MultiVAE were then within noise of Popularity.
CONTRACT_SIZES = (320, 120, 104, 88, 76, 68, 60, 52, 48, 40)


def contract_planted() -> Planted:
    return planted_scenario(sizes=CONTRACT_SIZES, n_popular=1, popular_rate=0.1, k=4, name="contract-planted")


def shuffled_twin(p: Planted, seed: int = 1) -> Planted:
    """The null twin of a planted scenario: source histories permuted among users of the same cohort.

    Target records, evaluable users, folds and cohort sizes are those of ``p``; only
    who owns which source history changes (seeded), so a user's books no longer follow
    their own source taste. Whatever a model scores here it scores without transfer,
    which is why no model may beat Popularity on it (tests/test_cross_domain_contract.py).
    """
    owners: dict[str, set[str]] = {}
    for dom, recs in p.source.items():
        for rec in recs:
            owners.setdefault(rec[0], set()).add(dom)
    by_cohort: dict[tuple, list[str]] = {}
    for u in sorted(owners):
        by_cohort.setdefault(tuple(sorted(owners[u])), []).append(u)
    rng = np.random.default_rng([seed, 91])
    new_owner = {}
    for cohort in sorted(by_cohort):
        us = by_cohort[cohort]
        for u, v in zip(us, np.array(us)[rng.permutation(len(us))]):
            new_owner[u] = str(v)
    source = {dom: [(new_owner[r[0]], *r[1:]) for r in recs] for dom, recs in p.source.items()}
    group = {new_owner.get(u, u): g for u, g in p.group.items()}
    return dataclasses.replace(p, source=source, group=group, name=p.name + "-twin")


# ---------------------------------------------------------------- pytest fixtures


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One torch intra-op thread for the whole run, as each Ray worker of the pipeline has.

    Why: on the shared 2-core machine two OpenMP threads per process spin-wait under load;
    measured on the model-contract file: 6.5 min with torch's default two threads, 19 s
    with one.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def planted_small() -> Planted:
    """Four equal groups of 30 users (the default planted scenario, small)."""
    return planted_scenario(n_users=120)


@pytest.fixture
def planted_fold(planted_small) -> tuple[TrainView, Truth]:
    """Fold 0 of :func:`planted_small`: a fresh (view, truth) per test, so a test may mutate it."""
    return planted_small.fold()


@pytest.fixture(scope="module")
def contract_fold() -> tuple[TrainView, Truth, Planted]:
    p = contract_planted()
    view, truth = p.fold()
    return view, truth, p


@pytest.fixture(scope="module")
def contract_twin_fold() -> tuple[TrainView, Truth, Planted]:
    """Fold 0 of the contract fixture's shuffled twin (:func:`shuffled_twin`)."""
    p = shuffled_twin(contract_planted())
    view, truth = p.fold()
    return view, truth, p
