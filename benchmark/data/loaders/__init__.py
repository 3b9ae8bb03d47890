"""Per-source readers that turn raw files into the canonical tables of :mod:`.common`.

One module per source family; :data:`LOADERS` maps every source id of
``datasets/sources.tsv`` to its loader, a function ``load(raw_root) -> LoadResult``
that reads ``raw_root/<source>/``. :func:`load_source` runs it and then refuses any
file the loader kept too little of (``prepare.min_kept_share``), so no caller can get
an empty or partial table from a misread file. :mod:`.public_full` holds readers for
the full public datasets users download themselves (not mirrored; not yet wired to a
stage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmark.data.loaders import apple_podcasts, audible, bookcrossing, douban, goodbooks, lastfm, librivox, tang
from benchmark.data.loaders.common import (DEFAULT_MIN_KEPT_SHARE, DOMAINS, PREPARED_INTERACTION_COLUMNS,
    PREPARED_ITEM_COLUMNS, TAG_SEP, FileReport, LoaderError, LoadResult, canonical_interactions, canonical_items,
    check_result)

LOADERS: dict[str, Callable[[Path], LoadResult]] = {
    "lastfm-hetrec2k": lastfm.load,
    "douban-gadtcdr": douban.load,
    "bookcrossing-subset": bookcrossing.load,
    "goodbooks-10k": goodbooks.load,
    "librivox-catalog": librivox.load,
    "audible-catalog": audible.load,
    "apple-podcast-reviews": apple_podcasts.load_reviews,
    "apple-podcast-subs": apple_podcasts.load_subs,
    "epinions-tang": tang.load_epinions,
    "ciao-tang": tang.load_ciao,
}

# Sources whose loader also reads another source's raw folder (DVC deps must list it).
RAW_DEPENDENCIES: dict[str, list[str]] = {"apple-podcast-subs": ["apple-podcast-reviews"]}


def check_source(source: str) -> None:
    if source not in LOADERS:
        raise LoaderError(f"unknown source {source!r}; known: {', '.join(sorted(LOADERS))}")


def load_source(source: str, raw_root: Path, min_kept_share: float | None = DEFAULT_MIN_KEPT_SHARE) -> LoadResult:
    """Run the source's loader, then check every file's accounting and kept share
    (``None`` skips the share check: row-level tests of deliberately dirty fixtures)."""
    check_source(source)
    return check_result(LOADERS[source](Path(raw_root)), source, min_kept_share)


__all__ = [
    "DEFAULT_MIN_KEPT_SHARE",
    "DOMAINS",
    "PREPARED_INTERACTION_COLUMNS",
    "PREPARED_ITEM_COLUMNS",
    "LOADERS",
    "RAW_DEPENDENCIES",
    "TAG_SEP",
    "FileReport",
    "LoadResult",
    "LoaderError",
    "canonical_interactions",
    "canonical_items",
    "check_source",
    "load_source",
]
