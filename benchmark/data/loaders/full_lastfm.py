"""Last.fm 1K and 360K, out of core: the rules of :mod:`.public_full` in DuckDB SQL.

1K: play events -> user x artist play counts, timestamp = first play; 360K: play counts
summed over rows of one artist key (spelling variants of one MBID; the extra rows count
as duplicates). Artists are keyed by :func:`.public_full.artist_key`'s rule: the
lower-cased MBID when it is one, else ``name:<lower-cased name>``; an artist's title is
the first spelling met in the file. The 1K file has 19M lines: only the aggregated pairs
and the artists ever leave DuckDB, as parquet.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.loaders.common import FileReport
from benchmark.data.loaders.files import check_first_row
from benchmark.data.loaders.full_sql import count_reasons, first_line, scan_delimited, sql_text

FILE_1K = "userid-timestamp-artid-artname-traid-traname.tsv"
FILE_360K = "usersha1-artmbid-artname-plays.tsv"
MBID_RE = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ARTIST_KEY = f"CASE WHEN regexp_full_match(lower(py_strip(c_mbid)), '{MBID_RE}') THEN lower(py_strip(c_mbid)) ELSE 'name:' || lower(py_strip(c_name)) END"
MISSING = "py_strip(c_user) = '' OR (py_strip(c_mbid) = '' AND py_strip(c_name) = '')"


def _file(path: Path, name: str) -> Path:
    path = Path(path)
    return path / name if path.is_dir() else path


def _check_first(path: Path, names: list[str], kinds: str | None) -> None:
    """The reference's first-row check, on the first line that decodes."""
    head = first_line(path)
    if head is None:
        return
    try:
        parts = head.decode("utf-8").split("\t")
    except UnicodeDecodeError:
        return
    check_first_row(parts, names, kinds, path.name, "\t")


def _artists(con, out: Path) -> None:
    con.execute(f"""COPY (SELECT item, 'music' AS domain, clean_str(name) AS title, clean_str(name) AS creator, '' AS description,
        '' AS tags FROM (SELECT item, arg_min(c_name, rn) AS name FROM lf WHERE reason IS NULL GROUP BY item) ORDER BY item)
        TO {sql_text(str(out / 'items.parquet'))} (FORMAT parquet)""")


def prepare_1k(con, path: Path, out: Path) -> tuple[dict[str, FileReport], list[str], dict]:
    """Last.fm 1K play events -> ``interactions.parquet`` (value = plays, timestamp = first play)."""
    path = _file(path, FILE_1K)
    names = ["user", "ts", "mbid", "name", "track_mbid", "track"]
    _check_first(path, names, None)
    rep = FileReport()
    select = f"""SELECT rn, py_strip(c_user) AS "user", c_name, {ARTIST_KEY} AS item,
        CAST(epoch(try_strptime(py_strip(c_ts), '%Y-%m-%dT%H:%M:%SZ')) AS BIGINT) AS t,
        CASE WHEN padded THEN 'wrong_column_count' WHEN {MISSING} THEN 'missing_value'
             WHEN try_strptime(py_strip(c_ts), '%Y-%m-%dT%H:%M:%SZ') IS NULL THEN 'bad_timestamp' END AS reason
        FROM (SELECT rn, c0 AS c_user, c1 AS c_ts, c2 AS c_mbid, c3 AS c_name, padded FROM {{src}})"""
    scan_delimited(con, "lf", path, 6, "\t", rep, select=select)
    count_reasons(con, "lf", rep)
    rep.rows_kept = int(con.execute("SELECT count(*) FROM lf WHERE reason IS NULL").fetchone()[0])
    con.execute("""CREATE TABLE lf_pairs AS SELECT "user", item, CAST(count(*) AS FLOAT) AS value, min(t) AS "timestamp"
        FROM lf WHERE reason IS NULL GROUP BY ALL""")
    pairs = int(con.execute("SELECT count(*) FROM lf_pairs").fetchone()[0])
    rep.notes.append(f"{rep.rows_kept} play events aggregated into {pairs} user-artist pairs")
    con.execute(f"""COPY (SELECT "user", item, 'music' AS domain, value, "timestamp" FROM lf_pairs ORDER BY "user", item)
        TO {sql_text(str(out / 'interactions.parquet'))} (FORMAT parquet)""")
    _artists(con, out)
    return {path.name: rep}, ["value = number of plays; timestamp = first play (Unix s)"], {}


def prepare_360k(con, path: Path, out: Path) -> tuple[dict[str, FileReport], list[str], dict]:
    """Last.fm 360K user x artist play counts -> ``interactions.parquet`` (no timestamps)."""
    path = _file(path, FILE_360K)
    _check_first(path, ["user", "mbid", "name", "value"], "sssn")
    rep = FileReport()
    select = f"""SELECT rn, py_strip(c_user) AS "user", c_name, {ARTIST_KEY} AS item, num_or_null(c_value) AS value,
        CASE WHEN padded THEN 'wrong_column_count' WHEN {MISSING} THEN 'missing_value'
             WHEN num_reason(c_value) IS NOT NULL THEN num_reason(c_value)
             WHEN num_or_null(c_value) <= 0 THEN 'out_of_range' END AS reason
        FROM (SELECT rn, c0 AS c_user, c1 AS c_mbid, c2 AS c_name, c3 AS c_value, padded FROM {{src}})"""
    scan_delimited(con, "lf", path, 4, "\t", rep, select=select)
    count_reasons(con, "lf", rep)
    con.execute("""CREATE TABLE lf_pairs AS SELECT "user", item, CAST(sum(value) AS FLOAT) AS value, count(*) AS n
        FROM lf WHERE reason IS NULL GROUP BY ALL""")
    pairs, dups = con.execute("SELECT count(*), coalesce(sum(n - 1), 0) FROM lf_pairs").fetchone()
    rep.drop("duplicate", int(dups))
    rep.rows_kept = int(pairs)
    con.execute(f"""COPY (SELECT "user", item, 'music' AS domain, value, CAST(NULL AS BIGINT) AS "timestamp" FROM lf_pairs
        ORDER BY "user", item) TO {sql_text(str(out / 'interactions.parquet'))} (FORMAT parquet)""")
    _artists(con, out)
    return {path.name: rep}, ["value = plays (summed over rows of one artist key)"], {}
