"""DuckDB building blocks of the out-of-core readers (:mod:`benchmark.data.full`).

Why DuckDB: the full public files (Goodreads: 228M shelf rows, 11 GB of gzip JSON;
Last.fm 1K: 19M play events) do not fit a laptop's memory as pandas frames. DuckDB
reads the CSV/JSON(.gz) itself, keeps intermediate tables in a database file on disk,
spills its sorts and aggregations to a temp folder under a hard ``memory_limit``, and
writes parquet directly; Python only sees counts.

Why these helpers: the pandas readers (:mod:`.public_full`, :mod:`.goodreads`) stay the
reference, so every rule they apply with Python string methods is spelled here once in
SQL with the same meaning: Python's ``str.strip()`` whitespace set (DuckDB's ``trim``
strips spaces only), ``\\s+`` collapsing (RE2's ``\\s`` is ASCII only), number parsing
that refuses what ``pd.to_numeric`` refuses (DuckDB would read ``1_000``), and row order
(``row_number() OVER ()`` over a single scan keeps file order: DuckDB documents it), on
which "keep the first duplicate" depends. Every raw line is kept or counted under a
named reason, as in :class:`~.common.FileReport`.

Known differences from the reference (tests pin each): a JSON line that is not UTF-8 is
counted as ``bad_json`` (DuckDB cannot tell it from malformed JSON; the reference says
``bad_encoding``); a delimited file mixing ``\n`` and ``\r\n`` line endings is refused as
a whole (DuckDB's strict parser), with the fix in the message. Not pinned: lower-casing
of rare Unicode letters (DuckDB's ``lower`` vs Python's) and JSON ids given as ``0`` or
``false`` (read as "0"/"false", where ``str(x or "")`` gives "").
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import duckdb

from benchmark.data.loaders.common import BAD_ENCODING, WRONG_COLUMNS, FileReport, LoaderError
from benchmark.data.loaders.files import sniff_text

# Python's str.isspace() set, which str.strip(), str.split() and re's \s use.
PY_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_SPACE_SQL = "||".join(f"chr({ord(c)})" for c in PY_SPACE)
_SPACE_CLASS = "".join(f"\\x{{{ord(c):x}}}" for c in PY_SPACE)  # RE2 class body
# What pd.to_numeric accepts as a finite number (plus nan/inf, which it reads as non-finite).
NUMBER_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
NONFINITE_RE = r"(?i)[+-]?(nan|inf|infinity)"

MACROS = [
    f"CREATE OR REPLACE MACRO py_strip(s) AS trim(s, {_SPACE_SQL})",
    f"CREATE OR REPLACE MACRO clean_str(s) AS py_strip(regexp_replace(coalesce(s, ''), '[{_SPACE_CLASS}]+', ' ', 'g'))",
    # to_number of common.py: blank -> missing_value; unparsable or non-finite -> not_a_number.
    f"CREATE OR REPLACE MACRO num_or_null(s) AS CASE WHEN regexp_full_match(py_strip(s), '{NUMBER_RE}') THEN TRY_CAST(py_strip(s) AS DOUBLE) END",
    "CREATE OR REPLACE MACRO num_reason(s) AS CASE WHEN py_strip(s) = '' THEN 'missing_value' WHEN num_or_null(s) IS NULL OR isinf(num_or_null(s)) THEN 'not_a_number' END",
    # isbn.py: clean, check digits, 978 ISBN-13 -> ISBN-10.
    "CREATE OR REPLACE MACRO isbn_clean(s) AS upper(regexp_replace(py_strip(coalesce(s, '')), '[^0-9A-Za-z]', '', 'g'))",
    "CREATE OR REPLACE MACRO isbn10_check(d9) AS CASE (11 - list_sum(list_transform(range(9), lambda i: (10 - i) * CAST(substr(d9, i + 1, 1) AS INTEGER))) % 11) % 11 WHEN 10 THEN 'X' ELSE CAST((11 - list_sum(list_transform(range(9), lambda i: (10 - i) * CAST(substr(d9, i + 1, 1) AS INTEGER))) % 11) % 11 AS VARCHAR) END",
    "CREATE OR REPLACE MACRO isbn13_check(d12) AS CAST((10 - list_sum(list_transform(range(12), lambda i: (CASE WHEN i % 2 = 0 THEN 1 ELSE 3 END) * CAST(substr(d12, i + 1, 1) AS INTEGER))) % 10) % 10 AS VARCHAR)",
    "CREATE OR REPLACE MACRO isbn_norm_clean(s) AS CASE WHEN length(s) = 13 AND regexp_full_match(s, '[0-9]{13}') AND isbn13_check(substr(s, 1, 12)) = substr(s, 13, 1) AND starts_with(s, '978') THEN substr(s, 4, 9) || isbn10_check(substr(s, 4, 9)) ELSE s END",
    "CREATE OR REPLACE MACRO isbn_normalise(s) AS isbn_norm_clean(isbn_clean(s))",
]


def sql_text(s: str) -> str:
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


def connect(work_dir: Path, memory_limit: str = "1.5GB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A DuckDB database file in ``work_dir`` (intermediate tables live on disk) with a
    hard memory limit and ``work_dir/spill`` for what does not fit; order-preserving."""
    work_dir = Path(work_dir)
    (work_dir / "spill").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(work_dir / "work.duckdb"))
    con.execute(f"SET memory_limit = {sql_text(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_text(str(work_dir / 'spill'))}")
    con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = true")
    for m in MACROS:
        con.execute(m)
    return con


def first_line(path: Path) -> bytes | None:
    """The first non-blank line (like :func:`.stream.raw_lines`), after the whole-file
    byte checks (:func:`.files.sniff_text`); None for an empty file."""
    path = Path(path)
    if path.is_dir():
        raise LoaderError(f"{path} is a directory where a downloaded file should be")
    if not path.is_file():
        raise LoaderError(f"{path} not found; download it from the dataset's page (see datasets/README)")
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            sniff_text(fh.read(4096), path.name)
            fh.seek(0)
            for raw in fh:
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    return raw
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise LoaderError(f"{path.name}: truncated or corrupt gzip stream ({type(e).__name__}: {e}); download it again") from None
    return None


def _duck_error(path: Path, e: Exception) -> LoaderError:
    msg = " ".join(str(e).split("\n")[0].split())[:200]
    hint = "; a file with mixed line endings needs dos2unix first" if "state machine" in str(e) else ""
    return LoaderError(f"{Path(path).name}: DuckDB could not read it ({msg}){hint}")


def scan_delimited(con, table: str, path: Path, n_cols: int, sep: str, rep: FileReport, *, encoding: str = "utf-8",
                   select: str = "SELECT * FROM {src}") -> None:
    """Create ``table`` from every non-blank line of a delimited file, in file order.

    ``{src}`` in ``select`` is the scan ``(rn, c0..c{n-1}, padded)``: fields split on ``sep``
    with no quoting (like ``str.split``); a line with fewer fields comes back NULL-padded
    (``padded``: the caller drops it as ``wrong_column_count``); lines with more fields or
    undecodable bytes are DuckDB rejects, counted here as ``wrong_column_count`` /
    ``bad_encoding``. ``select`` must keep one row per scanned line (LEFT joins on unique
    keys only): ``rep.rows_read`` is the table's size plus the rejects.
    """
    cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n_cols))
    opts = (f"columns={{{cols}}}, header=false, delim={sql_text(sep)}, quote='', escape='', auto_detect=false, "
            f"null_padding=true, nullstr='\x02', ignore_errors=true, store_rejects=true, rejects_table='rej_{table}', "
            f"rejects_scan='rejscan_{table}', encoding={sql_text(encoding)}")
    fields = [f"c{i}" for i in range(n_cols)]
    whole = f"concat_ws({sql_text(sep)}, {', '.join(fields)})"
    src = (f"(SELECT row_number() OVER () AS rn, {', '.join(fields)}, c{n_cols - 1} IS NULL AS padded "
           f"FROM read_csv({sql_text(str(path))}, {opts}) WHERE NOT regexp_full_match({whole}, '[ \\t\\n\\r\\x0b\\x0c]*'))")
    run(con, f"CREATE OR REPLACE TABLE {table} AS " + select.replace("{src}", src), path)
    rejected = con.execute(f"""SELECT kind, count(*) FROM (SELECT line_byte_position, min(CASE WHEN error_type = 'INVALID ENCODING'
        THEN 'enc' ELSE 'cols' END) AS kind FROM rej_{table} GROUP BY ALL) GROUP BY ALL""").fetchall()
    con.execute(f"DROP TABLE rej_{table}; DROP TABLE rejscan_{table}")
    rep.rows_read += int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    for kind, k in rejected:
        rep.rows_read += int(k)
        rep.drop(BAD_ENCODING if kind == "enc" else WRONG_COLUMNS, int(k))


def json_lines(path: Path) -> str:
    """FROM-clause source ``(rn, j)``: every non-blank line of a JSON-lines file in file
    order; ``j`` is NULL for a line that is not JSON (DuckDB cannot tell an undecodable
    line from malformed JSON, so both count as ``bad_json``)."""
    return (f"(SELECT row_number() OVER () AS rn, json AS j FROM read_json_objects({sql_text(str(path))}, "
            f"format='newline_delimited', ignore_errors=true))")


def bad_json(j: str = "j") -> str:
    return f"({j} IS NULL OR json_type({j}) <> 'OBJECT')"


def count_reasons(con, table: str, rep: FileReport, col: str = "reason") -> None:
    """Add the per-reason drop counts of ``table.reason`` (NULL = kept) to ``rep``."""
    for reason, n in con.execute(f"SELECT {col}, count(*) FROM {table} WHERE {col} IS NOT NULL GROUP BY ALL ORDER BY 1").fetchall():
        rep.drop(reason, int(n))


def run(con, sql: str, path: Path) -> None:
    """Execute ``sql`` reading ``path``; a DuckDB read error becomes a one-line LoaderError."""
    try:
        con.execute(sql)
    except duckdb.Error as e:
        raise _duck_error(path, e) from None
