"""Attach the outputs of the ``pretrain`` and ``embed`` stages to one fold's TrainView.

Both stages write the same on-disk format (one parquet file of item vectors, see
:func:`write_vectors`), computed once per scenario; every fold then needs them
*aligned to its own row orders* (``view.source_items[domain]`` and ``view.catalog``,
which differ per fold). Doing the alignment here, in one place, means no model
indexes a vector file by position and silently gets the wrong item's vector.

Vector file format (``<domain>.parquet`` of pretrain, ``items.parquet`` of embed):
columns ``item`` (string, domain-prefixed id, sorted, unique) and ``vector``
(``fixed_size_list<float32>[dim]``). Parquet rather than ``.npz`` because pyarrow
writes identical bytes for identical data (``np.savez`` stamps zip entries with the
current time), which DVC and the determinism tests rely on.

Loading is cached per process on (path, mtime, size), so the k folds x seeds x
models of one run read each file once, and a rebuilt file is re-read.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.scenarios.protocol import TrainView

VECTOR_SCHEMA_VERSION = 1


def write_vectors(path: Path, items: list[str] | np.ndarray | pd.Index, vectors: np.ndarray) -> None:
    """Write item ids and their float32 vectors, sorted by id, to one parquet file.

    Sorting here (not by the caller) makes the output order independent of how the
    caller happened to collect the items.
    """
    ids = np.asarray(items, dtype=object).astype(str)
    vecs = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if vecs.ndim != 2 or vecs.shape[0] != len(ids):
        raise ValueError(f"write_vectors: {len(ids)} ids but vectors of shape {vecs.shape}")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError(f"write_vectors: duplicate item ids in {path}")
    order = np.argsort(ids, kind="stable")
    ids, vecs = ids[order], vecs[order]
    dim = vecs.shape[1]
    flat = pa.array(vecs.reshape(-1), type=pa.float32())
    vec_col = pa.FixedSizeListArray.from_arrays(flat, dim) if dim > 0 else pa.array([[]] * len(ids), type=pa.list_(pa.float32(), 0))
    table = pa.table({"item": pa.array(ids.tolist(), type=pa.string()), "vector": vec_col})
    table = table.replace_schema_metadata({"cdrbench_vectors": str(VECTOR_SCHEMA_VERSION), "dim": str(dim)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_vectors(path: Path) -> tuple[pd.Index, np.ndarray]:
    """(ids, float32 matrix) of a vector file; cached per process, read-only arrays."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"vector file {path} does not exist; run `dvc repro` (stages pretrain / embed)")
    st = path.stat()
    return _read_vectors_cached(str(path), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _read_vectors_cached(path: str, mtime_ns: int, size: int) -> tuple[pd.Index, np.ndarray]:
    table = pq.read_table(path)
    if "item" not in table.column_names or "vector" not in table.column_names:
        raise ValueError(f"{path}: not a vector file (columns {table.column_names}, expected item, vector)")
    meta = table.schema.metadata or {}
    dim = int(meta.get(b"dim", b"0"))
    ids = pd.Index(table.column("item").to_pylist(), dtype=object)
    col = table.column("vector").combine_chunks()
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if len(ids) and dim == 0:
        dim = len(flat) // len(ids)
    mat = flat.reshape(len(ids), dim) if len(ids) else np.zeros((0, dim), dtype=np.float32)
    if not ids.is_unique:
        raise ValueError(f"{path}: duplicate item ids")
    mat = np.array(mat, dtype=np.float32)  # own the memory, then freeze: cached arrays are shared
    mat.setflags(write=False)
    return ids, mat


def align(ids: pd.Index, mat: np.ndarray, target: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``mat`` reordered to ``target``; zero rows (mask False) where absent."""
    pos = ids.get_indexer(pd.Index(target).astype(str))
    mask = pos >= 0
    out = np.zeros((len(target), mat.shape[1]), dtype=np.float32)
    out[mask] = mat[pos[mask]]
    # An all-zero stored vector (e.g. a podcast with neither co-subscriptions nor
    # reviews) carries no information either: mask it too.
    mask &= np.any(out != 0, axis=1)
    return out, mask


def _check_scenario(info_path: Path, view: TrainView) -> None:
    """Refuse vectors built for another scenario: a wiring slip, not a model choice."""
    if not info_path.exists():
        return
    info = json.loads(info_path.read_text())
    name = info.get("scenario")
    if name and name != view.scenario:
        raise ValueError(f"{info_path.parent} holds vectors of scenario {name!r}, but the fold is of {view.scenario!r}")


def attach_features(view: TrainView, pretrain_dir: Path | None, embed_dir: Path | None) -> TrainView:
    """Set the view's typed feature fields from the pretrain/embed outputs of the view's scenario.

    Sets ``source_emb`` ({domain: float32 n_items x dim aligned to
    ``view.source_items[domain]``}) and ``source_emb_mask`` (bool, row has a
    vector) when ``pretrain_dir`` is given, and ``item_text_emb`` (float32
    n_catalog x dim aligned to ``view.catalog``) with ``item_text_mask`` when
    ``embed_dir`` holds at least one vector. Mutates and returns ``view``.
    """
    if pretrain_dir is not None:
        pretrain_dir = Path(pretrain_dir)
        _check_scenario(pretrain_dir / "info.json", view)
        emb, masks = {}, {}
        for d in view.source_domains:
            f = pretrain_dir / f"{d}.parquet"
            if not f.exists():
                raise FileNotFoundError(
                    f"no pretrained embeddings for source domain {d!r} in {pretrain_dir}; rerun the pretrain stage"
                )
            ids, mat = read_vectors(f)
            emb[d], masks[d] = align(ids, mat, view.source_items[d])
        view.source_emb, view.source_emb_mask = emb, masks
    if embed_dir is not None:
        embed_dir = Path(embed_dir)
        _check_scenario(embed_dir / "info.json", view)
        ids, mat = read_vectors(embed_dir / "items.parquet")
        if len(ids) and mat.shape[1] > 0:
            view.item_text_emb, view.item_text_mask = align(ids, mat, view.catalog)
    return view
