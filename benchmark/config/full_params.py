"""params.yaml schema of the full public datasets (issue 19 part 3), imported by params.py.

Two additions, typed like every other section (unknown keys and wrong types are
one-line errors):

* ``full_sources: {<id>: {kind, path}}``: a downloaded full dataset, prepared out of core
  into ``data/prepared/<id>/`` by :func:`benchmark.data.full.prepare_full`;
* a scenario recipe ``{builder: goodreads-audio, source: <full source id>, ...}``
  (:func:`benchmark.scenarios.audiobook.build_goodreads_audio`).

Why ``path`` must be local: the fetch stage pins a sha256 per file and these files are
not pinned (Kaggle needs a login; the others are multi-GB archives), so the user
downloads them (README, "Full public datasets") and a URL is refused here, at load
time, with the page to download from. This module imports nothing from params.py so
that params.py can import it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

KINDS = ("goodreads", "lastfm-1k", "lastfm-360k", "kaggle-podcasts")
FullKind = Literal["goodreads", "lastfm-1k", "lastfm-360k", "kaggle-podcasts"]
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class _Strict(BaseModel):  # the same config as params._Strict (not imported: params.py imports this module)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class FullSource(_Strict):
    """One downloaded full dataset.

    ``path``: the folder holding the published files (Goodreads: ``goodreads_interactions.csv``
    with ``book_id_map.csv`` and ``user_id_map.csv``, or ``goodreads_interactions_dedup.json.gz``;
    plus ``goodreads_books.json.gz`` and optionally ``goodreads_book_authors.json.gz``), or the
    single file of a Last.fm kind. ``memory_limit`` caps DuckDB (it spills to ``work_dir``,
    default the system temp folder, which needs free space of about the raw files' size).
    """

    kind: FullKind
    path: str = Field(min_length=1)
    memory_limit: str = Field(default="1.5GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    threads: int = Field(default=2, ge=1)
    work_dir: str | None = None

    @field_validator("path")
    @classmethod
    def _local(cls, v: str) -> str:
        if _URL.match(v):
            raise ValueError("a URL: full sources are read from a local folder; download the files (README, 'Full public datasets') and give their path")
        return v


class GoodreadsAudioScenario(_Strict):
    """Print/ebook shelves -> audiobook editions of UCSD Goodreads (editions by ``format``).

    ``positive_threshold`` / ``read_unrated_positive``: the positive rule of
    :func:`benchmark.data.loaders.goodreads.positive_rule` for audiobook shelves (read and
    rated >= threshold, or read and unrated). ``keep_print_only_users``: users without any
    audiobook shelf carry no target signal; on the full file they are most of its 228M
    rows, so they are left out unless asked for. ``max_users``: a seeded sample of the
    users kept (evaluable or not), for machines that cannot hold them all.
    """

    builder: Literal["goodreads-audio"]
    source: str
    positive_threshold: float | int = 4
    read_unrated_positive: bool = True
    min_support: int = Field(default=1, ge=1)  # train-only catalog rule, as every scenario
    keep_print_only_users: bool = False
    max_users: int | None = Field(default=None, ge=1)
    seed: int = 0


def check_full_scenarios(full_sources: dict[str, FullSource], scenarios: dict) -> None:
    """Every goodreads-audio scenario names a declared full source of kind goodreads
    (raises ValueError, which params.py turns into its one-line error)."""
    for name, spec in scenarios.items():
        if getattr(spec, "builder", None) != "goodreads-audio":
            continue
        src = full_sources.get(spec.source)
        if src is None:
            raise ValueError(f"scenarios.{name}.source: {spec.source!r} is not in full_sources {sorted(full_sources)}")
        if src.kind != "goodreads":
            raise ValueError(f"scenarios.{name}.source: {spec.source!r} is a {src.kind} source; goodreads-audio needs kind goodreads")
