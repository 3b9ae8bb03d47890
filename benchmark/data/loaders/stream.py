"""Line-by-line readers for the large downloaded files of :mod:`.public_full` and
:mod:`.goodreads` (plain or gzip), with the same whole-file checks as
:func:`.common.read_rows`.

Why streaming: these files do not fit in memory (Goodreads has 228M interactions), so
they are read in ``CHUNK``-row frames. Why the checks: a file is refused as a whole
(one-line :class:`~.common.LoaderError`) when it is not 8-bit text, is a broken gzip
stream, or its first row does not have the expected columns, instead of being counted
row by row into an empty table.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from benchmark.data.loaders.common import BAD_ENCODING, BAD_JSON, WRONG_COLUMNS, FileReport, LoaderError
from benchmark.data.loaders.files import check_first_row, sniff_text

CHUNK = 500_000


def raw_lines(path: Path) -> Iterator[bytes]:
    """Non-blank lines (bytes, line ending stripped) of a plain or gzip file."""
    path = Path(path)
    if path.is_dir():
        raise LoaderError(f"{path} is a directory where a downloaded file should be")
    if not path.is_file():
        raise LoaderError(f"{path} not found; download it from the dataset's page (see datasets/README)")
    first = True
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            for raw in fh:
                if first:
                    sniff_text(raw[:4096], path.name)
                    first = False
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    yield raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise LoaderError(f"{path.name}: truncated or corrupt gzip stream ({type(e).__name__}: {e}); download it again") from None


def batched(rows: Iterator[list[str]], names: list[str], rep: FileReport, empty_frame: bool) -> Iterator[pd.DataFrame]:
    """String DataFrames of ``CHUNK`` rows; ``empty_frame``: one empty frame for an empty file."""
    buf: list[list[str]] = []
    for parts in rows:
        buf.append(parts)
        if len(buf) >= CHUNK:
            yield pd.DataFrame(buf, columns=names, dtype=str)
            buf = []
    if buf or (empty_frame and rep.rows_read == 0):
        yield pd.DataFrame(buf, columns=names, dtype=str)


def split_rows(path: Path, names: Sequence[str], rep: FileReport, sep: str, kinds: str | None = None, decoding: str = "strict") -> Iterator[list[str]]:
    """Fields of every line (headerless; the first line is checked against ``names`` and
    ``kinds``); lines that do not decode or have another field count are counted."""
    first = True
    for raw in raw_lines(path):
        try:
            parts = raw.decode("utf-8", errors=decoding).split(sep)
        except UnicodeDecodeError:
            parts = None
        if first and parts is not None:
            check_first_row(parts, names, kinds, path.name, sep)
        first = False
        rep.rows_read += 1
        if parts is None:
            rep.drop(BAD_ENCODING)
        elif len(parts) != len(names):
            rep.drop(WRONG_COLUMNS)
        else:
            yield parts


def iter_tsv(path: Path, names: list[str], rep: FileReport, kinds: str | None = None) -> Iterator[pd.DataFrame]:
    """String DataFrames of ``CHUNK`` well-formed lines of a headerless TSV."""
    return batched(split_rows(path, names, rep, "\t", kinds), names, rep, empty_frame=True)


def iter_json_lines(path: Path, rep: FileReport) -> Iterator[dict]:
    """Yield the JSON objects of a JSON-lines file; bad lines are counted."""
    for raw in raw_lines(path):
        rep.rows_read += 1
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            rep.drop(BAD_ENCODING)
            continue
        except (json.JSONDecodeError, RecursionError):
            rep.drop(BAD_JSON)
            continue
        if not isinstance(rec, dict):
            rep.drop(BAD_JSON)
            continue
        yield rec


def unix_seconds(series: pd.Series, fmt: str | None = None) -> pd.Series:
    t = pd.to_datetime(series, errors="coerce", utc=True, format=fmt)
    out = pd.Series(pd.NA, index=series.index, dtype="Int64")
    ok = t.notna()
    out[ok] = (t[ok].astype("int64") // 10**9).astype("int64")
    return out
