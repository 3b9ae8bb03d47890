"""Kaggle "Podcast Reviews", out of core: the rules of
:func:`.public_full.load_kaggle_podcast_reviews` in DuckDB SQL.

Items are keyed by iTunes id when ``podcasts.json`` gives one (the id space of the
mirrored Apple data), else by Kaggle's ``podcast_id``; two Kaggle ids sharing one iTunes
id become one item (flagged). Tags are the podcast's categories in file order. A
repeated (author, podcast) review keeps the latest one (ties: the last in the file).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.loaders.common import FileReport
from benchmark.data.loaders.full_sql import bad_json, count_reasons, first_line, json_lines, run, sql_text

NAMES = ("podcasts.json", "categories.json", "reviews.json")


def _text(key: str) -> str:
    """``str(rec.get(key) or "").strip()``"""
    return f"py_strip(coalesce(nullif(j->>'{key}', ''), ''))"


def _podcasts(con, path: Path, rep: FileReport) -> None:
    run(con, f"""CREATE TABLE pods_rows AS SELECT rn, pid, title, itunes, CASE WHEN base IS NOT NULL THEN base
            WHEN row_number() OVER (PARTITION BY pid, base ORDER BY rn) > 1 THEN 'duplicate' END AS reason
        FROM (SELECT rn, pid, title, itunes, CASE WHEN {bad_json()} THEN 'bad_json' WHEN pid = '' THEN 'missing_value' END AS base
              FROM (SELECT rn, j, py_strip(coalesce(j->>'podcast_id', '')) AS pid, coalesce(j->>'title', '') AS title,
                    py_strip(regexp_replace(coalesce(j->>'itunes_id', ''), '\\.0$', '')) AS itunes FROM {json_lines(path)}))""", path)
    rep.rows_read += int(con.execute("SELECT count(*) FROM pods_rows").fetchone()[0])
    count_reasons(con, "pods_rows", rep)
    con.execute("""CREATE TABLE pods AS SELECT rn, pid, title, CASE WHEN regexp_full_match(itunes, '[0-9]+') THEN itunes ELSE pid END AS item,
        NOT regexp_full_match(itunes, '[0-9]+') AS no_itunes FROM pods_rows WHERE reason IS NULL""")
    rep.rows_kept, no_itunes = (int(x) for x in con.execute("SELECT count(*), count(*) FILTER (WHERE no_itunes) FROM pods").fetchone())
    rep.flags["no_itunes_id_podcast_id_used"] += no_itunes


def _categories(con, path: Path, rep: FileReport) -> None:
    run(con, f"""CREATE TABLE cats AS SELECT rn, pid, cat, CASE WHEN {bad_json()} THEN 'bad_json'
            WHEN pid = '' OR cat = '' THEN 'missing_value' WHEN pid NOT IN (SELECT pid FROM pods) THEN 'unknown_id' END AS reason
        FROM (SELECT rn, j, {_text('podcast_id')} AS pid, {_text('category')} AS cat FROM {json_lines(path)})""", path)
    rep.rows_read += int(con.execute("SELECT count(*) FROM cats").fetchone()[0])
    count_reasons(con, "cats", rep)
    rep.rows_kept = int(con.execute("SELECT count(*) FROM cats WHERE reason IS NULL").fetchone()[0])


def _reviews(con, path: Path, rep: FileReport) -> None:
    value = "coalesce(j->>'rating', 'None')"  # str(None) == "None": not a number, not blank
    run(con, f"""CREATE TABLE rv AS SELECT rn, "user", pid, num_or_null(v) AS value,
            CAST(floor(epoch(TRY_CAST(created AS TIMESTAMPTZ))) AS BIGINT) AS ts,
            CASE WHEN {bad_json()} THEN 'bad_json' WHEN "user" = '' OR pid = '' THEN 'missing_value'
                 WHEN num_reason(v) IS NOT NULL THEN num_reason(v) WHEN NOT (num_or_null(v) BETWEEN 1 AND 5) THEN 'out_of_range'
                 WHEN pid NOT IN (SELECT pid FROM pods) THEN 'unknown_id' END AS reason
        FROM (SELECT rn, j, {_text('author_id')} AS "user", {_text('podcast_id')} AS pid, {value} AS v,
              coalesce(j->>'created_at', 'None') AS created FROM {json_lines(path)})""", path)
    rep.rows_read += int(con.execute("SELECT count(*) FROM rv").fetchone()[0])
    con.execute("""CREATE TABLE rv_kept AS SELECT r."user", p.item, r.value, r.ts, row_number() OVER (PARTITION BY r."user", p.item
        ORDER BY r.ts DESC NULLS LAST, r.rn DESC) AS k FROM rv r JOIN pods p ON r.pid = p.pid WHERE r.reason IS NULL""")
    count_reasons(con, "rv", rep)
    rep.drop("duplicate", int(con.execute("SELECT count(*) FROM rv_kept WHERE k > 1").fetchone()[0]))
    rep.rows_kept, no_ts = (int(x) for x in con.execute("SELECT count(*), count(*) FILTER (WHERE ts IS NULL) FROM rv_kept WHERE k = 1").fetchone())
    rep.flags["no_timestamp"] += no_ts


def prepare(con, folder: Path, out: Path) -> tuple[dict[str, FileReport], list[str], dict]:
    folder = Path(folder)
    reps = {n: FileReport() for n in NAMES}
    for n in NAMES:
        first_line(folder / n)
    _podcasts(con, folder / "podcasts.json", reps["podcasts.json"])
    _categories(con, folder / "categories.json", reps["categories.json"])
    _reviews(con, folder / "reviews.json", reps["reviews.json"])
    con.execute(f"""COPY (SELECT "user", item, 'podcast' AS domain, CAST(value AS FLOAT) AS value, ts AS "timestamp"
        FROM rv_kept WHERE k = 1 ORDER BY "user", item) TO {sql_text(str(out / 'interactions.parquet'))} (FORMAT parquet)""")
    # one item per iTunes id (the first podcast row); tags = join_tags of its categories in file order
    con.execute("""CREATE TABLE pod_items AS SELECT *, row_number() OVER (PARTITION BY item ORDER BY rn) AS k FROM pods""")
    reps["podcasts.json"].flags["podcast_ids_merged_on_itunes_id"] += int(con.execute("SELECT count(*) FROM pod_items WHERE k > 1").fetchone()[0])
    con.execute(f"""COPY (SELECT p.item, 'podcast' AS domain, clean_str(p.title) AS title, '' AS creator, '' AS description,
            clean_str(coalesce(t.tags, '')) AS tags, p.pid AS podcast_id
        FROM (SELECT * FROM pod_items WHERE k = 1) p LEFT JOIN (
            SELECT pid, string_agg(tag, '|' ORDER BY first) AS tags FROM (
                SELECT pid, py_strip(replace(cat, '|', '/')) AS tag, min(rn) AS first FROM cats WHERE reason IS NULL GROUP BY ALL)
            WHERE tag <> '' GROUP BY pid) t ON p.pid = t.pid ORDER BY p.item)
        TO {sql_text(str(out / 'items.parquet'))} (FORMAT parquet)""")
    return reps, ["user = author_id; value = rating 1-5; timestamp = created_at"], {}
