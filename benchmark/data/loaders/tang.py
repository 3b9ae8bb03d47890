"""Epinions and Ciao (Tang et al. 2012) MATLAB rating files: every category of real users.

Epinions: ``epinions.zip`` holds ``epinions/rating.mat`` whose variable is an int
matrix. Its README announces five columns (user, product, category, rating,
helpfulness) but the mirrored file has four: helpfulness is absent, which is checked
rather than assumed. The .mat is read from the zip bytes in memory (never extracted).
Ciao: ``rating_with_timestamp.mat`` has six columns (user, product, category, rating,
helpfulness, Unix time).

Category ids are parsed from the catalog files beside them (``<id> <name>`` lines,
CRLF). The categories named exactly "Music" and "Books" become the domains ``music``
and ``book`` (exact names, so "Musical Instruments" is not music); every other
category N of the catalog becomes the domain ``cat<N>`` (``cat3`` = Epinions Movies).
Why keep them all: the same people rate movies, magazines and books, which is what a
scenario with a second source modality needs (:mod:`benchmark.scenarios.multi`), and
choosing the category there rather than here keeps one prepared table per source.
Builders that need only music and book (:mod:`benchmark.scenarios.real`) filter the
domains, so their scenarios are unchanged. Rows whose category id is absent from the
catalog are dropped as ``unknown_id``.

Where category names travel: the prepared ``items`` table carries, per item,
``category_id`` (int16) and ``category_name`` (the catalog's name, e.g. "Movies"), so a
scenario builder reads the real name of a ``cat<N>`` domain from the prepared folder
alone (the items of a domain all share one category).

A product id appears under several categories for a few hundred products; the item
key is (domain, product), so such a product is a different item in each domain.
Repeated (user, product, domain) ratings keep the latest (Ciao, by timestamp) or the
first in file order (Epinions) and count the others as duplicates.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from benchmark.data.loaders.common import (DUPLICATE, NOT_A_NUMBER, OUT_OF_RANGE, UNKNOWN_ID,
    FileReport, LoaderError, LoadResult, canonical_interactions, canonical_items)
from benchmark.data.loaders.files import require

EPINIONS = "epinions-tang"
CIAO = "ciao-tang"
DOMAIN_OF_CATEGORY = {"music": "music", "books": "book"}
RATING_RANGE = (1, 5)
COLUMNS = {
    4: ["user", "product", "category", "rating"],
    5: ["user", "product", "category", "rating", "helpfulness"],
    6: ["user", "product", "category", "rating", "helpfulness", "timestamp"],
}


def parse_catalog(text: str) -> dict[int, str]:
    """``{category id: name}`` from lines like ``5 Music``."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*(\d+)\s+(.+?)\s*$", line)
        if m:
            out[int(m.group(1))] = m.group(2)
    if not out:
        raise LoaderError("category catalog has no '<id> <name>' lines")
    return out


def domain_categories(catalog: dict[int, str]) -> dict[int, str]:
    """Category id -> domain for the categories named exactly Music / Books."""
    found = {cid: DOMAIN_OF_CATEGORY[name.strip().lower()] for cid, name in catalog.items() if name.strip().lower() in DOMAIN_OF_CATEGORY}
    missing = set(DOMAIN_OF_CATEGORY.values()) - set(found.values())
    if missing:
        raise LoaderError(f"category catalog names no category for domains {sorted(missing)}: {catalog}")
    return found


def category_domains(catalog: dict[int, str]) -> dict[int, str]:
    """Category id -> domain for every catalog category: music / book, else ``cat<N>``."""
    named = domain_categories(catalog)
    return {cid: named.get(cid, f"cat{cid}") for cid in sorted(catalog)}


def _matrix(mat: dict, what: str) -> np.ndarray:
    arrays = {k: v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 2}
    if len(arrays) != 1:
        raise LoaderError(f"{what}: expected one 2-d matrix, found variables {sorted(k for k in mat if not k.startswith('__'))}")
    (arr,) = arrays.values()
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise LoaderError(f"{what}: the rating matrix holds {arr.dtype} values; expected numbers")
    if arr.shape[1] not in COLUMNS:
        raise LoaderError(f"{what}: matrix has {arr.shape[1]} columns; expected 4, 5 or 6")
    return arr


def ratings_frame(arr: np.ndarray, catalog: dict[int, str], rep: FileReport) -> pd.DataFrame:
    """Canonical-ish frame of the rows of a Tang rating matrix (every catalog category)."""
    cols = COLUMNS[arr.shape[1]]
    df = pd.DataFrame(arr.astype("float64"), columns=cols)
    rep.rows_read += len(df)
    id_cols = [c for c in ("user", "product", "category", "rating", "timestamp") if c in df]
    bad = ~np.isfinite(df[id_cols].to_numpy()).all(axis=1) | (df[["user", "product", "category"]] != np.round(df[["user", "product", "category"]])).any(axis=1).to_numpy()
    df = rep.drop_mask(df, bad, NOT_A_NUMBER)
    dom = category_domains(catalog)
    cat = df["category"].astype("int64")
    df = rep.drop_mask(df, ~cat.isin(list(catalog)).to_numpy(), UNKNOWN_ID)
    lo, hi = RATING_RANGE
    df = rep.drop_mask(df, ~df["rating"].between(lo, hi).to_numpy(), OUT_OF_RANGE)
    df = df.assign(domain=df["category"].astype("int64").map(dom))
    df["user"] = df["user"].astype("int64").astype(str)
    df["item"] = df["product"].astype("int64").astype(str)
    if "timestamp" in df:
        df = df.sort_values("timestamp", kind="stable")
        dup = df.duplicated(["user", "item", "domain"], keep="last").to_numpy()
        df = rep.drop_mask(df, dup, DUPLICATE).sort_index()
    else:
        df = rep.drop_mask(df, df.duplicated(["user", "item", "domain"]).to_numpy(), DUPLICATE)
    rep.rows_kept = len(df)
    return df


def _result(df: pd.DataFrame, files: dict, notes: list[str], catalog: dict[int, str]) -> LoadResult:
    ts = df["timestamp"].astype("int64") if "timestamp" in df else pd.NA
    inter = canonical_interactions(df.assign(value=df["rating"], timestamp=ts))
    it = df[["domain", "item", "category"]].drop_duplicates(["domain", "item"])
    it = it.sort_values(["domain", "item"], key=lambda s: s.astype("int64") if s.name == "item" else s)
    cid = it["category"].astype("int64")
    it = it.assign(category_id=cid.astype("int16"), category_name=cid.map(catalog).astype(str))
    items = canonical_items(it, extra=["category_id", "category_name"])
    both = (inter.groupby("item")["domain"].nunique() > 1).sum()
    dom = category_domains(catalog)
    named = ", ".join(f"{catalog[c]} ({c}) -> {dom[c]}" for c in sorted(domain_categories(catalog)))
    notes = notes + [
        f"categories: {named}; every other catalog category N -> domain catN (names in items.category_name)",
        f"{int(both)} product ids occur in more than one domain (distinct items: the key is (domain, item))",
        "no item text: items carry ids and category only",
    ]
    return LoadResult(inter, items, files, notes=notes)


def _folder_and_catalog(raw_root: Path, source: str, ratings: str, catalog: str) -> tuple[Path, dict]:
    """The source's raw folder (both files must be there) and its parsed category catalog."""
    d = Path(raw_root) / source
    for name in (ratings, catalog):
        require(d / name, source)
    try:
        return d, parse_catalog((d / catalog).read_text(encoding="latin-1"))
    except LoaderError as e:
        raise LoaderError(f"{source}/{catalog}: {e}") from None


def _loadmat(data, what: str) -> dict:
    """scipy's reader on a truncated or foreign file fails deep inside with any of a
    dozen exception types and a long traceback; all of them mean one thing here."""
    try:
        return scipy.io.loadmat(data)
    except Exception as e:  # noqa: BLE001 - ValueError, OSError, TypeError, zlib/struct errors...
        detail = " ".join(str(e).split())[:120]
        raise LoaderError(f"{what}: not a readable MATLAB .mat file ({type(e).__name__}: {detail}); re-fetch it") from None


def load_epinions(raw_root: Path) -> LoadResult:
    d, catalog = _folder_and_catalog(raw_root, EPINIONS, "epinions.zip", "catalog_epinion.txt")
    try:
        with zipfile.ZipFile(d / "epinions.zip") as z:
            members = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == "rating.mat"]
            if not members:
                raise LoaderError(f"{EPINIONS}: epinions.zip has no rating.mat (members: {z.namelist()})")
            data = io.BytesIO(z.read(members[0]))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError) as e:
        raise LoaderError(f"{EPINIONS}/epinions.zip: not a readable zip archive ({type(e).__name__}: {e}); re-fetch it") from None
    mat = _loadmat(data, f"{EPINIONS}/epinions.zip:{members[0]}")
    arr = _matrix(mat, f"epinions.zip:{members[0]}")
    rep = FileReport()
    if arr.shape[1] < 5:
        rep.notes.append(f"README announces 5 columns (with helpfulness); the file has {arr.shape[1]}: no helpfulness")
    df = ratings_frame(arr, catalog, rep)
    return _result(df, {"epinions.zip:rating.mat": rep}, ["value = rating 1-5; no timestamps"], catalog)


def load_ciao(raw_root: Path) -> LoadResult:
    d, catalog = _folder_and_catalog(raw_root, CIAO, "rating_with_timestamp.mat", "catalog_ciao.txt")
    arr = _matrix(_loadmat(d / "rating_with_timestamp.mat", f"{CIAO}/rating_with_timestamp.mat"), "rating_with_timestamp.mat")
    if arr.shape[1] != 6:
        raise LoaderError(f"{CIAO}: rating_with_timestamp.mat has {arr.shape[1]} columns; expected 6 (..., helpfulness, timestamp)")
    rep = FileReport()
    df = ratings_frame(arr, catalog, rep)
    notes = ["value = rating 1-5; timestamp = Unix seconds (column 6); repeated ratings keep the latest"]
    return _result(df, {"rating_with_timestamp.mat": rep}, notes, catalog)
