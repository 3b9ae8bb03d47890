"""Whole-file checks and readers of raw text files (delimited text, JSON).

Why whole-file checks: a file the loader misreads as a whole (another delimiter, an
extra or swapped column, UTF-16, a header-only file) fails on *every* row, and
row-level accounting alone would turn it into an empty table with exit code 0. So each
file is checked before its rows are counted: it must be 8-bit text
(:func:`sniff_text`), its header row must name the expected columns
(:func:`check_header`), a headerless file's first row must have the expected width
and types (:func:`check_first_row`), and it must not be empty. Every refusal is a
one-line :class:`~.common.LoaderError` naming ``<source>/<file>``, what was expected
and what was found. Rows that pass are then handled as before: each kept or counted
under a reason (:mod:`.common`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.data.loaders.common import BAD_ENCODING, WRONG_COLUMNS, FileReport, LoaderError


def where(path: Path) -> str:
    """``<source>/<file>``: how messages name a raw file."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def require(path: Path, source: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise LoaderError(f"{source}: {path} is a directory where a raw file should be; remove it and run the fetch stage")
    if not path.is_file():
        raise LoaderError(f"{source}: raw file {path} not found; run the fetch stage (benchmark.data.fetch.fetch_source({source!r}))")
    return path


_BOMS = {b"\xff\xfe\x00\x00": "UTF-32-LE", b"\x00\x00\xfe\xff": "UTF-32-BE", b"\xff\xfe": "UTF-16-LE", b"\xfe\xff": "UTF-16-BE"}


def sniff_text(head: bytes, name: str) -> None:
    """Refuse bytes that are not 8-bit text. A UTF-16/32 file (byte-order mark, or NUL
    bytes without one) or a binary file would otherwise be read row by row and every
    row counted as ``not_a_number`` or ``wrong_column_count``."""
    for bom, enc in _BOMS.items():
        if head.startswith(bom):
            raise LoaderError(f"{name}: the file is {enc} (byte-order mark); expected UTF-8 text: convert it (iconv -f {enc} -t UTF-8) or re-fetch it")
    if b"\x00" in head:
        raise LoaderError(f"{name}: the file contains NUL bytes (UTF-16 without a byte-order mark, or binary data); expected UTF-8 text: re-fetch it")


_SURROGATE = re.compile("[\udc80-\udcff]")
_SEP_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def _short(fields: list[str]) -> str:
    text = repr(fields)
    return text if len(text) <= 160 else text[:157] + "..."


def check_header(found: list[str], expected: Sequence[str], name: str, sep: str) -> None:
    """The header row must name ``expected`` (case, blanks and a BOM aside): a file with a
    column added, missing or swapped, or another delimiter, is refused by name."""

    def norm(cols) -> list[str]:
        return [str(c).lstrip("\ufeff").strip().lower() for c in cols]

    if norm(found) == norm(expected):
        return
    line = sep.join(found)
    hint = next(
        (f" (it looks {_SEP_NAMES[alt]}-separated; expected {_SEP_NAMES.get(sep, repr(sep))})" for alt in _SEP_NAMES if alt != sep and line.count(alt) >= max(1, len(expected) - 1)),
        "",
    )
    raise LoaderError(f"{name}: header {_short(found)} does not match the expected columns {list(expected)}{hint}")


def fits_kind(value: str, kind: str) -> bool:
    """Whether a cell fits a column kind: "s" anything, "n" a finite number, "i" an integer."""
    if kind == "s":
        return True
    try:
        x = float(value)
    except ValueError:
        return False
    return np.isfinite(x) and (kind == "n" or x == round(x))


def check_first_row(rec: list[str], columns: Sequence[str], kinds: str | None, name: str, sep: str) -> None:
    """Headerless files: the first data row must have ``len(columns)`` fields whose
    values fit ``kinds`` (one letter per column: "i" integer, "n" number, "s" any)."""
    if len(rec) != len(columns):
        raise LoaderError(
            f"{name}: expected {len(columns)} {_SEP_NAMES.get(sep, repr(sep))}-separated columns {list(columns)}; "
            f"the first data row has {len(rec)}: {_short(rec)}"
        )
    bad = [c for c, k, v in zip(columns, kinds or "", rec) if not fits_kind(v.strip(), k)]
    if bad:
        raise LoaderError(f"{name}: the first data row {_short(rec)} does not fit the columns {list(columns)} ({', '.join(bad)} not numeric); a header line, or another file?")


def read_rows(
    path: Path,
    report: FileReport,
    *,
    columns: Sequence[str],
    sep: str = ",",
    header: bool = True,
    kinds: str | None = None,
    quoting: bool = True,
    fallback_encoding: str | None = None,
) -> tuple[list[str] | None, list[list[str]]]:
    """Parse a delimited text file into rows of exactly ``len(columns)`` string fields.

    The file as a whole is checked first, since a misread file fails on every row:
    bytes that are not 8-bit text (:func:`sniff_text`), a header row that is not
    ``columns`` (:func:`check_header`), or, for headerless files, a first data row of
    another width or types (:func:`check_first_row`, ``kinds``) raise a
    :class:`LoaderError`, as does an empty file. Then row by row: bytes are decoded as
    UTF-8 with ``surrogateescape`` so one bad byte spoils only its own row: such a row
    is re-decoded with ``fallback_encoding`` when one is given and can decode it
    (flagged ``decoded_<enc>``), else dropped as ``bad_encoding``. Rows with another
    field count are dropped as ``wrong_column_count``; blank lines are ignored.
    """
    name = where(path)
    data = Path(path).read_bytes()
    sniff_text(data, name)
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=sep,
        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        strict=False,
    )
    any_bad = _SURROGATE.search(text) is not None
    head: list[str] | None = None
    first = True
    rows: list[list[str]] = []
    try:
        for rec in reader:
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if header and head is None:
                head = [h.strip() for h in rec]
                check_header(head, columns, name, sep)
                continue
            if first and not header:
                check_first_row(rec, columns, kinds, name, sep)
            first = False
            report.rows_read += 1
            if any_bad and any(_SURROGATE.search(f) for f in rec):
                try:
                    if fallback_encoding is None:
                        raise UnicodeError
                    rec = [f.encode("utf-8", errors="surrogateescape").decode(fallback_encoding) for f in rec]
                except UnicodeError:
                    report.drop(BAD_ENCODING)
                    continue
                report.flags[f"decoded_{fallback_encoding}"] += 1
            if len(rec) != len(columns):
                report.drop(WRONG_COLUMNS)
                continue
            rows.append(rec)
    except csv.Error as e:
        raise LoaderError(f"{name}: unreadable as {_SEP_NAMES.get(sep, repr(sep))}-separated text near line {reader.line_num} ({e})") from None
    if (head is None) if header else first:
        raise LoaderError(f"{name}: the file is empty; expected {'a header row ' if header else 'rows of '}{list(columns)}")
    return head, rows


def read_json(path: Path, source: str):
    """A whole JSON file (UTF-8), or a one-line LoaderError saying why it is unusable."""
    name = where(path)
    data = require(path, source).read_bytes()
    sniff_text(data[:4], name)  # a BOM; NUL bytes are JSON's to refuse
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise LoaderError(f"{name} is not valid UTF-8 JSON ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); re-fetch it") from None
