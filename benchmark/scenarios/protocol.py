"""The k-fold user-level cold-start protocol of DESIGN section 4.

Two pure pieces and one loader:

* :func:`deal_folds` deals evaluable users into k folds per seed and carves the
  validation users out of the other folds. Pure: same input, same output.
* :func:`build_fold` turns a scenario's tables plus one (seed, fold) into a
  :class:`TrainView` (everything a model may see) and a :class:`Truth` (what only
  the evaluator sees). The split between the two objects is the leakage guard:
  a model never receives the target rows of valid/test users, so it cannot learn
  from them, and everything "learned from data" (catalog, popularity) is computed
  here from training users only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmark.scenarios.schema import TARGET, read_meta


def deal_folds(users: np.ndarray, k: int, seeds: list[int], valid_share: float) -> pd.DataFrame:
    """Assign every evaluable user a role in each (seed, fold).

    Each seed permutes the users and deals them round-robin into ``k`` folds; fold
    ``f`` is the test fold once; ``valid_share`` of the remaining users (seeded by
    seed and fold) are that fold's validation users. Users are sorted first, so the
    result does not depend on input order.
    """
    if k < 2:
        raise ValueError(f"k must be >= 2 (got {k}): with one fold nobody is left to train on")
    if not 0 < valid_share < 1:
        raise ValueError(f"valid_share must be in (0, 1), got {valid_share}")
    users = np.sort(np.asarray(users).astype(str))
    if len(users) < k:
        raise ValueError(f"only {len(users)} evaluable users for k={k} folds")
    rows = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 0])
        perm = users[rng.permutation(len(users))]
        fold_of = np.arange(len(users)) % k
        for f in range(k):
            test = perm[fold_of == f]
            rest = perm[fold_of != f]
            vrng = np.random.default_rng([seed, 1, f])
            n_valid = max(1, int(round(valid_share * len(rest))))
            valid_mask = np.zeros(len(rest), dtype=bool)
            valid_mask[vrng.choice(len(rest), size=n_valid, replace=False)] = True
            for role, us in (("test", test), ("valid", rest[valid_mask]), ("train", rest[~valid_mask])):
                rows.append(pd.DataFrame({"seed": seed, "fold": f, "user": us, "role": role}))
    out = pd.concat(rows, ignore_index=True)
    out["seed"] = out["seed"].astype("int32")
    out["fold"] = out["fold"].astype("int32")
    return out.sort_values(["seed", "fold", "user"], kind="stable").reset_index(drop=True)


@dataclass
class TrainView:
    """Everything a model may learn from in one fold.

    Rows of every user matrix follow ``users``. Valid/test users are present in the
    source matrices (their source history is the input) but their rows of
    ``target_train`` are empty by construction.
    """

    scenario: str
    seed: int
    fold: int
    users: pd.Index  # all user ids, row order of every user matrix
    train_users: np.ndarray  # row indices
    valid_users: np.ndarray
    test_users: np.ndarray
    source_domains: list[str]
    source: dict[str, sp.csr_matrix]  # domain -> users x source items (values)
    source_items: dict[str, pd.Index]
    target_train: sp.csr_matrix  # users x catalog, positives of training users only
    catalog: pd.Index  # target item ids of this fold (train support >= min_support)
    cohort: np.ndarray  # cohort label per user row
    items: pd.DataFrame  # item metadata (title, creator, text), index = item id
    # Features of the features stage (benchmark.features.vectors.attach_features), aligned
    # to this fold's row orders; None when the stage's output is absent. Typed fields, not a
    # dict, so a misspelt name is an AttributeError rather than a silent fall-back.
    source_emb: dict[str, np.ndarray] | None = None  # domain -> n_source_items x dim, rows of source_items[domain]
    source_emb_mask: dict[str, np.ndarray] | None = None  # domain -> bool, row has a stored vector
    item_text_emb: np.ndarray | None = None  # n_catalog x dim text vectors, rows of catalog
    item_text_mask: np.ndarray | None = None  # bool, catalog item has text

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_catalog(self) -> int:
        return len(self.catalog)

    def source_lengths(self, rows: np.ndarray) -> np.ndarray:
        """Source-history length (items over every source domain) of each user row."""
        total = np.zeros(len(rows), dtype=np.int64)
        for m in self.source.values():
            total += np.asarray(m[rows].getnnz(axis=1))
        return total

    def popularity(self) -> np.ndarray:
        """Number of training users with a positive on each catalog item."""
        return np.asarray((self.target_train > 0).sum(axis=0)).ravel().astype(np.float64)


@dataclass
class Truth:
    """Held-out target positives, seen only by the evaluator."""

    valid: sp.csr_matrix  # rows follow TrainView.valid_users
    test: sp.csr_matrix  # rows follow TrainView.test_users
    dropped: dict[str, int]  # eval users removed because no positive is in the catalog


def restrict_training(view: TrainView, cohort: str | None) -> TrainView:
    """A view whose training users are only those of ``cohort`` (MAP-2T(music_podcast)).

    Other training users keep their source rows (inputs) but lose their target rows,
    so the model learns from the dual-signal users only.
    """
    if not cohort:
        return view
    keep = view.train_users[view.cohort[view.train_users] == cohort]
    mask = np.zeros(view.n_users, dtype=np.float32)
    mask[keep] = 1.0
    target = sp.diags(mask).dot(view.target_train).tocsr()
    target.eliminate_zeros()
    return replace(view, train_users=keep, target_train=target)


def without_test_users(view: TrainView, truth: Truth, users) -> tuple[TrainView, Truth]:
    """The fold with the given user ids removed from its test users (and their truth rows).

    Why: a fold that reuses another fold's tuned configurations must not score the users
    those configurations were chosen on (that fold's validation users, who are test users
    here). Their target rows stay out of training, as for any test user; they are only not
    scored. ``truth.dropped["tuning"]`` counts them.
    """
    ids = view.users[view.test_users]
    keep = ~np.isin(np.asarray(ids, dtype=str), np.asarray(list(users), dtype=str))
    rows = view.test_users[keep]
    dropped = dict(truth.dropped, tuning=int((~keep).sum()))
    return replace(view, test_users=rows), replace(truth, test=truth.test[np.flatnonzero(keep)], dropped=dropped)


def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    return m


def build_fold(
    interactions: pd.DataFrame,
    users: pd.DataFrame,
    folds: pd.DataFrame,
    items: pd.DataFrame,
    meta: dict,
    seed: int,
    fold: int,
    min_support: int = 1,
) -> tuple[TrainView, Truth]:
    """Build the train view and the held-out truth of one (seed, fold).

    The catalog, and hence popularity and every count a model derives from
    ``target_train``, comes from training users only: a target item rated only by
    valid/test users does not exist in this fold. Valid/test users without any
    positive in that catalog are dropped from evaluation (and counted).
    """
    target = meta.get("target_domain", TARGET)
    roles = folds[(folds["seed"] == seed) & (folds["fold"] == fold)]
    if roles.empty:
        raise ValueError(f"no fold (seed={seed}, fold={fold}) in this scenario's folds table")
    role_of = dict(zip(roles["user"], roles["role"]))
    uidx = pd.Index(np.sort(users["user"].astype(str).to_numpy()))
    role_arr = np.array([role_of.get(u, "train") for u in uidx])

    inter = interactions
    tgt = inter[(inter["domain"] == target) & inter["positive"]]
    t_rows = uidx.get_indexer(tgt["user"])
    is_train = role_arr[t_rows] == "train"
    support = tgt[is_train].groupby("item")["user"].nunique()
    catalog = pd.Index(np.sort(support[support >= min_support].index.to_numpy()))
    if len(catalog) == 0:
        raise ValueError(f"empty target catalog (min_support={min_support}) in seed={seed} fold={fold}")
    t_cols = catalog.get_indexer(tgt["item"])
    inside = t_cols >= 0
    vals = tgt["value"].to_numpy()
    full = _csr(t_rows[inside], t_cols[inside], vals[inside], (len(uidx), len(catalog)))
    train_mask = (role_arr == "train").astype(np.float32)
    target_train = sp.diags(train_mask).dot(full).tocsr()
    target_train.eliminate_zeros()

    has_pos = np.asarray(full.getnnz(axis=1)) > 0
    dropped, eval_rows, truths = {}, {}, {}
    for role in ("valid", "test"):
        rows_all = np.flatnonzero(role_arr == role)
        keep = rows_all[has_pos[rows_all]]
        dropped[role] = int(len(rows_all) - len(keep))
        eval_rows[role] = keep
        truths[role] = full[keep]

    source_domains = [d for d in meta["source_domains"]]
    source, source_items = {}, {}
    for d in source_domains:
        sdf = inter[inter["domain"] == d]
        iidx = pd.Index(np.sort(sdf["item"].unique()))
        source_items[d] = iidx
        source[d] = _csr(uidx.get_indexer(sdf["user"]), iidx.get_indexer(sdf["item"]), sdf["value"].to_numpy(), (len(uidx), len(iidx)))

    cohort = users.set_index(users["user"].astype(str)).reindex(uidx)["cohort"].to_numpy()
    view = TrainView(
        scenario=meta["name"],
        seed=seed,
        fold=fold,
        users=uidx,
        train_users=np.flatnonzero(role_arr == "train"),
        valid_users=eval_rows["valid"],
        test_users=eval_rows["test"],
        source_domains=source_domains,
        source=source,
        source_items=source_items,
        target_train=target_train,
        catalog=catalog,
        cohort=cohort,
        items=items.set_index("item"),
    )
    return view, Truth(valid=truths["valid"], test=truths["test"], dropped=dropped)


def load_scenario(folder: Path) -> dict:
    """Read a built scenario folder into its tables (see :mod:`benchmark.scenarios.schema`)."""
    folder = Path(folder)
    return {
        "interactions": pd.read_parquet(folder / "interactions.parquet"),
        "users": pd.read_parquet(folder / "users.parquet"),
        "folds": pd.read_parquet(folder / "folds.parquet"),
        "items": pd.read_parquet(folder / "items.parquet"),
        "meta": read_meta(folder),
    }


def load_fold(folder: Path, seed: int, fold: int, min_support: int = 1, tables: dict | None = None) -> tuple[TrainView, Truth]:
    t = tables or load_scenario(folder)
    return build_fold(t["interactions"], t["users"], t["folds"], t["items"], t["meta"], seed, fold, min_support)
