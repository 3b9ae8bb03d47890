"""The ``pretrain`` stage: frozen source-domain item embeddings ("frozen towers").

MAP-2T and other models read a user's music / podcast history through item
vectors learned once, outside any fold (DESIGN section 6). DESIGN section 4 allows
them to use *all* source-domain data of the scenario, valid/test users included,
because that data is the models' input anyway; what they must never see is
target-domain data. So every matrix here is built from rows of one source domain
only, and :func:`_domain_rows` asserts it.

Methods (written verbatim into ``info.json`` for the scenario card):

* music (and any source domain without side data): PureSVD-style truncated SVD of
  the idf-weighted log(1 + value) users x items matrix of all users
  (:func:`benchmark.features.factorize.item_embeddings`).
* podcast: the same SVD on a stacked matrix whose rows are (a) the nodes of the
  Apple "listeners also subscribe to" graph, each row = the node plus its
  neighbours (symmetric adjacency with self-loops), and (b) the scenario's
  podcast reviewers (review presence). Podcasts without co-subscription data still
  get a vector where reviews exist; podcasts with neither get a zero row.
  Unless the scenario's meta says ``notes.podcast_pretrain: "svd"``: the podcast role
  then holds another second source modality (Epinions Movies,
  :mod:`benchmark.scenarios.multi`), which the Apple graph knows nothing about, so it
  gets the plain per-domain SVD, exactly like music.

``info.json`` names each domain's method: ``pretrain`` is ``"svd"`` or
``"cosubs-graph+reviews"`` and ``method`` says it in words.

Output in ``out_dir``: ``<domain>.parquet`` per source domain (format of
:func:`benchmark.features.vectors.write_vectors`: sorted item ids + float32 vectors) and
``info.json``.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from benchmark.config import paths
from benchmark.features.factorize import item_embeddings
from benchmark.features.vectors import write_vectors
from benchmark.config.atomic import atomic_dir
from benchmark.scenarios.schema import TARGET, read_meta

COSUBS_RELPATH = Path("apple-podcast-subs") / "cosubs.parquet"
PODCAST_PRETRAIN = ("cosubs", "svd")  # meta notes.podcast_pretrain; absent = "cosubs" (Apple podcasts)


def podcast_pretrain(meta: dict) -> str:
    """How the scenario asks for its podcast role to be embedded (``cosubs`` unless its notes say ``svd``)."""
    notes = meta.get("notes")
    choice = notes.get("podcast_pretrain", "cosubs") if isinstance(notes, dict) else "cosubs"  # free-text notes: the default
    if choice not in PODCAST_PRETRAIN:
        raise ValueError(f"scenario meta notes.podcast_pretrain is {choice!r}; expected one of {PODCAST_PRETRAIN}")
    return choice


def _domain_rows(inter: pd.DataFrame, domain: str, target: str) -> pd.DataFrame:
    """The interactions of one source domain, with the leakage guard.

    Filtering alone would do; the asserts are there so that a mislabelled row (a
    book item tagged as music, or a target domain listed as a source) fails loudly
    instead of feeding target data into a frozen tower.
    """
    if domain == target:
        raise ValueError(f"refusing to pretrain on the target domain {target!r}")
    rows = inter[inter["domain"] == domain]
    assert (rows["domain"] == domain).all(), "pretrain input holds rows of another domain"
    bad = ~rows["item"].astype(str).str.startswith(f"{domain}:")
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} rows of domain {domain!r} have items not prefixed '{domain}:' "
            f"(e.g. {rows.loc[bad, 'item'].iloc[0]!r}); the scenario is malformed"
        )
    assert not rows["item"].astype(str).str.startswith(f"{target}:").any(), "target items in a source matrix"
    return rows


def _domain_items(rows: pd.DataFrame, items: pd.DataFrame, domain: str) -> pd.Index:
    """All items of the domain: those interacted with plus catalog-only ones."""
    ids = set(rows["item"].astype(str)) | set(items.loc[items["domain"] == domain, "item"].astype(str))
    return pd.Index(sorted(ids), dtype=object)


def _user_item_matrix(rows: pd.DataFrame, item_index: pd.Index, binary: bool) -> tuple[sp.csr_matrix, int]:
    users = pd.Index(np.sort(rows["user"].astype(str).unique()))
    r = users.get_indexer(rows["user"].astype(str))
    c = item_index.get_indexer(rows["item"].astype(str))
    vals = np.ones(len(rows)) if binary else rows["value"].to_numpy(dtype=np.float64)
    m = sp.csr_matrix((vals, (r, c)), shape=(len(users), len(item_index)))
    m.sum_duplicates()
    if binary:
        m.data[:] = 1.0
    return m, len(users)


def _norm_title(s: object) -> str:
    s = unicodedata.normalize("NFKC", str(s)).casefold()
    return re.sub(r"[^0-9a-z]+", " ", s).strip()


def _load_cosubs(prepared_root: Path) -> pd.DataFrame:
    path = Path(prepared_root) / COSUBS_RELPATH
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the podcast tower needs the prepared co-subscription pairs (stage prepare)")
    df = pd.read_parquet(path)
    missing = [c for c in ("podcast_a", "podcast_b") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; has {list(df.columns)}")
    return df[["podcast_a", "podcast_b"]].astype(str)


def _map_cosub_ids(values: np.ndarray, item_index: pd.Index, items: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Map co-subscription ids to scenario podcast items, or to graph-only nodes.

    The prepared pairs carry Apple itunes ids where a title matched the reviews
    metadata and titles otherwise; scenario items are ``podcast:<id>``. Try the id
    first, then a normalised title (only if the title is unique in the scenario);
    anything else stays in the graph as ``cosubs:<normalised title>`` so it still links
    the podcasts around it, but gets no output row.
    """
    known = set(item_index)
    pod = items[items["domain"] == "podcast"]
    titles = pod.assign(t=pod["title"].map(_norm_title))
    titles = titles[titles["t"] != ""]
    counts = titles["t"].value_counts()
    by_title = dict(zip(titles["t"], titles["item"].astype(str)))
    out, n_id, n_title = [], 0, 0
    for v in values:
        pid = f"podcast:{v}"
        if pid in known:
            out.append(pid)
            n_id += 1
            continue
        t = _norm_title(v)
        if t and counts.get(t, 0) == 1 and by_title[t] in known:
            out.append(by_title[t])
            n_title += 1
        else:
            out.append(f"cosubs:{t or v}")  # spelling variants of one outside title are one node
    return np.array(out, dtype=object), {"matched_by_id": n_id, "matched_by_title": n_title}


def _podcast_vectors(rows: pd.DataFrame, items: pd.DataFrame, item_index: pd.Index, cosubs: pd.DataFrame, dim: int, seed: int) -> tuple[np.ndarray, dict]:
    uniq = np.unique(np.concatenate([cosubs["podcast_a"].to_numpy(), cosubs["podcast_b"].to_numpy()]))
    mapped, stats = _map_cosub_ids(uniq, item_index, items)
    node_of = dict(zip(uniq, mapped))
    a = cosubs["podcast_a"].map(node_of).to_numpy()
    b = cosubs["podcast_b"].map(node_of).to_numpy()
    keep = a != b
    a, b = a[keep], b[keep]
    extra = sorted(set(mapped) - set(item_index))
    cols = pd.Index(list(item_index) + extra, dtype=object)
    graph_nodes = pd.Index(sorted(set(mapped)), dtype=object)
    ai, bi = cols.get_indexer(a), cols.get_indexer(b)
    gi = cols.get_indexer(graph_nodes)
    ra, rb = graph_nodes.get_indexer(a), graph_nodes.get_indexer(b)
    # Row = node, columns = node itself + neighbours in either direction.
    r = np.concatenate([ra, rb, np.arange(len(graph_nodes))])
    c = np.concatenate([bi, ai, gi])
    adj = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(graph_nodes), len(cols)))
    adj.sum_duplicates()
    adj.data[:] = 1.0
    rev, n_reviewers = _user_item_matrix(rows, cols, binary=True)
    stacked = sp.vstack([adj, rev]).tocsr()
    vecs = item_embeddings(stacked, dim, seed)[: len(item_index)]
    touched = np.unique(np.concatenate([ai, bi]))
    in_graph = np.zeros(len(item_index), dtype=bool)
    in_graph[touched[(touched >= 0) & (touched < len(item_index))]] = True
    reviewed = np.asarray(rev[:, : len(item_index)].getnnz(axis=0)).ravel() > 0
    stats.update(
        n_cosub_pairs=int(len(a)),
        n_graph_nodes=int(len(graph_nodes)),
        n_graph_only_nodes=int(len(extra)),
        n_reviewers=int(n_reviewers),
        n_items_with_cosubs=int(in_graph.sum()),
        n_items_with_reviews=int(reviewed.sum()),
        n_items_with_neither=int((~in_graph & ~reviewed).sum()),
    )
    return vecs, stats


def pretrain_scenario(
    scenario_dir: Path,
    out_dir: Path,
    dim: int = 64,
    seed: int = 0,
    prepared_root: Path = paths.PREPARED,
) -> dict:
    """Write frozen item embeddings of every source domain of a scenario; return the info."""
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    scenario_dir, out_dir = Path(scenario_dir), Path(out_dir)
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    meta = read_meta(scenario_dir)
    target = meta.get("target_domain", TARGET)
    podcast_how = podcast_pretrain(meta)
    inter = pd.read_parquet(scenario_dir / "interactions.parquet", columns=["user", "item", "domain", "value"])
    items = pd.read_parquet(scenario_dir / "items.parquet", columns=["item", "domain", "title"])
    with atomic_dir(out_dir) as tmp:  # replaced only when complete: a failed run keeps the old vectors
        info = {"scenario": meta.get("name", scenario_dir.name), "dim": dim, "seed": seed, "domains": {}}
        for domain in meta["source_domains"]:
            t0 = time.perf_counter()
            rows = _domain_rows(inter, domain, target)
            idx = _domain_items(rows, items, domain)
            svd = f"TruncatedSVD (scikit-learn, randomized, random_state={seed}), dim {dim}, L2-normalised rows"
            if domain == "podcast" and podcast_how == "cosubs":
                vecs, stats = _podcast_vectors(rows, items, idx, _load_cosubs(prepared_root), dim, seed)
                kind = "cosubs-graph+reviews"
                method = (
                    f"{svd}, of the idf-weighted stack of the Apple 'listeners also subscribe to' graph "
                    "(symmetric adjacency with self-loops, one row per podcast) and the scenario's podcast "
                    "review presence (one row per reviewer, all users)"
                )
            else:
                m, n_users = _user_item_matrix(rows, idx, binary=False)
                vecs = item_embeddings(m, dim, seed)
                stats = {"n_users": int(n_users), "n_interactions": int(len(rows))}
                kind = "svd"
                method = f"{svd}, of the idf-weighted log(1 + value) users x items {domain} matrix of all users (value = play count or rating)"
                if domain == "podcast":
                    holds = (meta.get("notes") or {}).get("second_modality", "another modality")
                    method += f"; the podcast role holds {holds} (meta notes.podcast_pretrain = 'svd'), so no Apple co-subscription graph"
            write_vectors(tmp / f"{domain}.parquet", idx.to_numpy(), vecs)
            info["domains"][domain] = {
                "pretrain": kind,
                "method": method,
                "n_items": int(len(idx)),
                "n_with_vector": int(np.any(vecs != 0, axis=1).sum()),
                **stats,
            }
            timings[domain] = round(time.perf_counter() - t0, 2)
        info["format"] = "<domain>.parquet: item (sorted), vector fixed_size_list<float32>[dim]"
        # Wall times are returned (the CLI prints them), not written: a clock-dependent output
        # would change the stage's hash on every rebuild and re-run every model downstream.
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "seconds": round(time.perf_counter() - t_all, 2), "seconds_per_domain": timings}
