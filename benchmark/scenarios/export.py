"""Shared pieces of every scenario builder: reading prepared tables, the common
tables, and writing a scenario (parquet + RecBole atomic files; the dataset card's
text is :mod:`benchmark.scenarios.card`).

Why one module: the on-disk contract (:mod:`benchmark.scenarios.schema`) is enforced in exactly
one place, so a builder can only hand over a :class:`Built` and cannot write a
scenario that readers would misinterpret. Everything written is a pure function of
the tables (sorted rows, ``sort_keys`` JSON, no clocks), so a rebuild with the same
params is byte-identical and DVC sees no change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.jsonio import jsonable
from benchmark.scenarios.schema import (
    DOMAINS,
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    ROLES,
    TARGET,
    USER_COLUMNS,
    SchemaError,
    check_columns,
    cohort_of,
)

SEMI_SYNTHETIC_BANNER = (
    "SEMI-SYNTHETIC: composite users are a seeded linkage of real per-domain histories of "
    "different people; no real person has all of these histories. Results on this scenario "
    "are a controlled testbed, not evidence about real users."
)


@dataclass
class Built:
    """What a builder hands to :func:`benchmark.scenarios.build_scenario`.

    ``users`` must already carry ``evaluable``; folds, meta, files and the card are
    derived from these tables by the common code.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source_domains: list[str]
    semi_synthetic: bool
    sources: list[str]  # prepared source ids used (licence lines on the card)
    notes: dict = field(default_factory=dict)  # builder-specific facts for meta/card
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # file name -> table


# ---------------------------------------------------------------- reading prepared data


def read_prepared(prepared_root: Path, source: str, table: str, required: bool = True) -> pd.DataFrame | None:
    """Read ``prepared_root/<source>/<table>.parquet`` with a message that says what to run."""
    p = Path(prepared_root) / source / f"{table}.parquet"
    if not p.exists():
        if not required:
            return None
        raise FileNotFoundError(
            f"prepared table {p} is missing: run the prepare stage for source '{source}' "
            f"(`dvc repro prepare`) before building scenarios"
        )
    return pd.read_parquet(p)


# ---------------------------------------------------------------- common table helpers


def _clean(s: object) -> str:
    if s is None or (isinstance(s, float) and np.isnan(s)) or s is pd.NA:
        return ""
    return re.sub(r"\s+", " ", str(s)).strip()


def item_text(title: object, creator: object, description: object = "") -> str:
    """The string the text encoder sees: ``"Title by Creator. description"``.

    Tags/genres are deliberately never part of it: in the semi-synthetic scenario they
    are the linking space, and the models' feature space must stay disjoint from it.
    """
    t, c, d = _clean(title), _clean(creator), _clean(description)
    if c.lower() == t.lower():  # Last.fm artists: title and creator are both the name
        c = ""
    head = f"{t} by {c}" if t and c else (t or c)
    if head and d:
        return f"{head}. {d}" if not head.endswith((".", "!", "?")) else f"{head} {d}"
    return head or d


def items_table(interactions: pd.DataFrame, meta: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per item used in ``interactions`` (prefixed id), metadata where known.

    ``meta`` maps domain -> prepared items frame (raw ``item`` ids; columns title,
    creator, description optional). Items without metadata get empty strings.
    """
    parts = []
    used = interactions[["item", "domain"]].drop_duplicates()
    for dom, grp in used.groupby("domain", sort=True):
        raw = grp["item"].str.slice(len(dom) + 1)
        m = meta.get(dom)
        frame = pd.DataFrame({"item": grp["item"].to_numpy(), "domain": dom, "raw": raw.to_numpy()})
        if m is not None and len(m):
            m = m.drop_duplicates("item")
            m.index = m["item"].astype(str)
            for col in ("title", "creator", "description"):
                vals = m[col] if col in m.columns else pd.Series("", index=m.index)
                frame[col] = vals.reindex(frame["raw"]).map(_clean).to_numpy()
        else:
            for col in ("title", "creator", "description"):
                frame[col] = ""
        frame["text"] = [item_text(t, c, d) for t, c, d in zip(frame["title"], frame["creator"], frame["description"])]
        parts.append(frame[ITEM_COLUMNS])
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ITEM_COLUMNS)
    for col in ITEM_COLUMNS:
        out[col] = out[col].astype(str)
    return out.sort_values("item", kind="mergesort").reset_index(drop=True)


def users_table(interactions: pd.DataFrame, evaluable: set[str]) -> pd.DataFrame:
    """has_<domain> flags, cohort (schema.cohort_of) and the evaluable flag per user."""
    users = np.sort(interactions["user"].astype(str).unique())
    df = pd.DataFrame({"user": users})
    for dom in DOMAINS:
        have = set(interactions.loc[interactions["domain"] == dom, "user"])
        df[f"has_{dom}"] = df["user"].isin(have)
    df["cohort"] = [cohort_of(m, p) for m, p in zip(df["has_music"], df["has_podcast"])]
    df["evaluable"] = df["user"].isin(evaluable)
    return df[USER_COLUMNS]


def finalize_interactions(df: pd.DataFrame) -> pd.DataFrame:
    """Schema dtypes and a total row order, so equal content gives equal bytes."""
    out = pd.DataFrame(
        {
            "user": df["user"].astype(str).to_numpy(),
            "item": df["item"].astype(str).to_numpy(),
            "domain": df["domain"].astype(str).to_numpy(),
            "value": df["value"].astype("float32").to_numpy(),
            "timestamp": pd.array(df["timestamp"], dtype="Int64"),
            "positive": df["positive"].astype(bool).to_numpy(),
        }
    )
    return out.sort_values(["user", "domain", "item", "timestamp", "value"], kind="mergesort", na_position="first").reset_index(drop=True)


def validate(built: Built) -> None:
    """Fail loudly if a builder produced something the readers would misread."""
    inter, items, users = built.interactions, built.items, built.users
    check_columns(inter, INTERACTION_COLUMNS, "interactions")
    check_columns(items, ITEM_COLUMNS, "items")
    check_columns(users, USER_COLUMNS, "users")
    bad_dom = set(inter["domain"]) - set(DOMAINS)
    if bad_dom:
        raise SchemaError(f"interactions: unknown domains {sorted(bad_dom)}; allowed {DOMAINS}")
    unprefixed = pd.Series([not i.startswith(d + ":") for i, d in zip(inter["item"], inter["domain"])], index=inter.index, dtype=bool)
    if unprefixed.any():
        raise SchemaError(f"interactions: {int(unprefixed.sum())} item ids are not prefixed 'domain:', e.g. {inter.loc[unprefixed, 'item'].iloc[0]!r}")
    missing = set(inter["item"]) - set(items["item"])
    if missing:
        raise SchemaError(f"items: {len(missing)} interaction items have no items row")
    if set(inter["user"]) != set(users["user"]):
        raise SchemaError("users table and interactions disagree on the set of users")
    if not users["evaluable"].any():
        raise SchemaError("no evaluable user: check positive_threshold and the source domains")
    for col in ("user", "item"):
        if inter[col].str.contains(r"[\t\n\r\"]", regex=True).any():
            raise SchemaError(f"interactions.{col} contains tab/newline/quote characters, which break RecBole atomic files")


# ---------------------------------------------------------------- stats + writing


def domain_stats(inter: pd.DataFrame) -> dict:
    out = {}
    for dom, g in inter.groupby("domain", sort=True):
        out[dom] = {
            "users": int(g["user"].nunique()),
            "items": int(g["item"].nunique()),
            "interactions": int(len(g)),
            "positives": int(g["positive"].sum()),
        }
    return out


def fold_stats(folds: pd.DataFrame, n_users: int) -> list[dict]:
    """Per (seed, fold): evaluable users per role, plus all training users (non-evaluable
    users train in every fold)."""
    rows = []
    for (seed, fold), g in folds.groupby(["seed", "fold"], sort=True):
        counts = {r: int((g["role"] == r).sum()) for r in ROLES}
        rows.append(
            {
                "seed": int(seed),
                "fold": int(fold),
                **{f"{r}_evaluable": counts[r] for r in ROLES},
                "train_users_total": int(n_users - counts["valid"] - counts["test"]),
            }
        )
    return rows


def _json(obj: dict) -> str:
    return json.dumps(jsonable(obj, nan_to_none=False), indent=2, sort_keys=True) + "\n"


def write_json(path: Path, obj: dict) -> None:
    Path(path).write_text(_json(obj))


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    df.reset_index(drop=True).to_parquet(path, index=False, engine="pyarrow")


def _token_text(s: str) -> str:
    """RecBole reads atomic files with pandas' csv parser: tabs, newlines and double
    quotes inside a field would split or swallow rows, so they are removed."""
    return re.sub(r"\s+", " ", str(s).replace('"', " ")).strip()


def write_recbole(out_dir: Path, name: str, inter: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> dict:
    """RecBole 1.2.1 atomic files ``<name>.inter/.item/.user`` (ids already prefixed).

    The timestamp column is written only if every interaction has one: RecBole fills
    missing floats with the column mean, which would invent times.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    has_ts = bool(inter["timestamp"].notna().all())
    cols = ["user_id:token", "item_id:token", "rating:float"] + (["timestamp:float"] if has_ts else [])
    lines = ["\t".join(cols)]
    vals = [f"{v:.6g}" for v in inter["value"].astype(float)]
    if has_ts:
        ts = inter["timestamp"].astype("int64").astype(str)
        lines += [f"{u}\t{i}\t{v}\t{t}" for u, i, v, t in zip(inter["user"], inter["item"], vals, ts)]
    else:
        lines += [f"{u}\t{i}\t{v}" for u, i, v in zip(inter["user"], inter["item"], vals)]
    (out_dir / f"{name}.inter").write_text("\n".join(lines) + "\n")
    lines = ["item_id:token\tdomain:token\ttitle:token_seq"]
    lines += [f"{i}\t{d}\t{_token_text(t)}" for i, d, t in zip(items["item"], items["domain"], items["title"])]
    (out_dir / f"{name}.item").write_text("\n".join(lines) + "\n")
    lines = ["user_id:token\tcohort:token"] + [f"{u}\t{c}" for u, c in zip(users["user"], users["cohort"])]
    (out_dir / f"{name}.user").write_text("\n".join(lines) + "\n")
    return {"timestamp_written": has_ts, "layout": "recbole/<name>/<name>.{inter,item,user}; RecBole config data_path = <scenario>/recbole"}
