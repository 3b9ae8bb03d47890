"""UCSD Goodreads, out of core: the rules of :mod:`.goodreads` in DuckDB SQL.

Same semantics as the pandas reference (:func:`.goodreads.load_goodreads_interactions`,
:func:`.goodreads.load_goodreads_books`), which a test runs on the same fixtures:
``value`` = rating 0-5, ``is_read``/``is_reviewed`` and the positive rule
(:func:`.goodreads.positive_rule`) in ``shelves.parquet``, the CSV's compact ids
translated by its id maps, the first (user, book) row kept, audiobook editions by their
``format`` (:data:`.goodreads.AUDIO_FORMAT`).

What makes 228M rows fit in 2 GB: duplicates are found by a DuckDB aggregation (which
spills) over two integer keys, not strings: each id becomes its rank among the distinct
*translated* ids, so equal ranks mean equal ids (a map that sends two CSV ids to one
book stays exact), and sorting by ranks sorts by the ids themselves. The final sort that
makes the output byte-stable is on those two integers too.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.data.loaders.common import LoaderError, FileReport
from benchmark.data.loaders.files import check_first_row, check_header, fits_kind
from benchmark.data.loaders.full_sql import bad_json, count_reasons, first_line, json_lines, run, scan_delimited, sql_text
from benchmark.data.loaders.goodreads import AUDIO_FORMAT, CSV_HEADER

CSV = "goodreads_interactions.csv"
JSON = ("goodreads_interactions_dedup.json.gz", "goodreads_interactions_dedup.json")
BOOKS = ("goodreads_books.json.gz", "goodreads_books.json")
AUTHORS = ("goodreads_book_authors.json.gz", "goodreads_book_authors.json")
MAPS = {"item": "book_id_map.csv", "user": "user_id_map.csv"}
_FLAG = "CASE lower(py_strip({x})) WHEN '1' THEN true WHEN 'true' THEN true WHEN '0' THEN false WHEN 'false' THEN false END"
_ASCII = "regexp_replace({x}, '[^\\x00-\\x7f]', '\ufffd', 'g')"  # bytes.decode("ascii", errors="replace")


def files_in(folder: Path) -> dict[str, Path | None]:
    """The Goodreads files of a download folder (the CSV is preferred to the JSON variant)."""
    folder = Path(folder)
    if folder.is_file():
        folder, first = folder.parent, folder
    else:
        first = None

    def pick(names) -> Path | None:
        return next((folder / n for n in names if (folder / n).is_file()), None)

    inter = first or pick((CSV, *JSON))
    if inter is None:
        raise LoaderError(f"{folder}: no {CSV} or {JSON[0]}; download the Goodreads files there (see README, full public datasets)")
    return {"interactions": inter, "books": pick(BOOKS), "authors": pick(AUTHORS),
            **{k: (folder / v if (folder / v).is_file() else None) for k, v in MAPS.items()}}


def _reasons(u: str, i: str, v: str, r: str, w: str) -> str:
    """The drop reason of a shelf row, in the pandas reader's order (NULL = kept so far)."""
    return f"""CASE WHEN {u} IN ('', 'None') OR {i} IN ('', 'None') THEN 'missing_value'
        WHEN num_reason({v}) IS NOT NULL THEN num_reason({v})
        WHEN NOT (num_or_null({v}) BETWEEN 0 AND 5) THEN 'out_of_range'
        WHEN {_FLAG.format(x=r)} IS NULL OR {_FLAG.format(x=w)} IS NULL THEN 'out_of_range' END"""


def _id_ranks(con, name: str, map_path: Path | None, col: str) -> None:
    """``<name>(key, val, k)``: raw id -> translated id -> rank of the translated id.
    With a map (``<csv id>,<id>`` after a header row; a repeated key keeps its last
    line, like a dict), else the ids of the kept rows themselves."""
    if map_path is not None:
        src = (f"read_csv({sql_text(str(map_path))}, columns={{'a': 'VARCHAR', 'b': 'VARCHAR'}}, header=true, "
               f"auto_detect=false, quote='\"', nullstr='\x02')")
        run(con, f"""CREATE OR REPLACE TABLE {name}_raw AS SELECT py_strip(a) AS key, arg_max(py_strip(b), rn) AS val
                 FROM (SELECT row_number() OVER () AS rn, a, b FROM {src}) GROUP BY 1""", map_path)
    else:
        con.execute(f"CREATE OR REPLACE TABLE {name}_raw AS SELECT DISTINCT {col} AS key, {col} AS val FROM gr_rows WHERE reason IS NULL")
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT key, val, dense_rank() OVER (ORDER BY val) AS k FROM {name}_raw")
    con.execute(f"DROP TABLE {name}_raw")


def _scan_csv(con, path: Path, rep: FileReport) -> None:
    """``gr_rows(rn, u, i, value, is_read, is_reviewed, ts, reason)`` from the CSV."""
    head = first_line(path)
    header = False
    if head is not None:
        parts = head.decode("ascii", errors="replace").strip().split(",")
        header = not all(fits_kind(p.strip(), "i") for p in parts)
        if header:
            check_header(parts, CSV_HEADER, path.name, ",")
        else:
            check_first_row(parts, CSV_HEADER, "iiiii", path.name, ",")
    u, i = (f"py_strip({_ASCII.format(x=c)})" for c in ("c0", "c1"))
    select = f"""SELECT rn, {u} AS u, {i} AS i, num_or_null(c3) AS value, {_FLAG.format(x='c2')} AS is_read,
        {_FLAG.format(x='c4')} AS is_reviewed, CAST(NULL AS BIGINT) AS ts,
        CASE WHEN padded THEN 'wrong_column_count' ELSE {_reasons(u, i, 'c3', 'c2', 'c4')} END AS reason
        FROM {{src}} WHERE rn > {1 if header else 0}"""
    scan_delimited(con, "gr_rows", path, 5, ",", rep, encoding="latin-1", select=select)


def _scan_json(con, path: Path, rep: FileReport) -> None:
    """The same table from ``goodreads_interactions_dedup.json.gz`` (ids are already the
    books file's; ``is_reviewed`` = a non-empty ``review_text_incomplete`` when absent).
    Each line is parsed once (one multi-path extraction); a JSON null reads as "None",
    as ``str(None)`` does in the reference."""
    first_line(path)
    keys = ["user_id", "book_id", "rating", "is_read", "is_reviewed", "review_text_incomplete", "date_added"]
    x = {k: f"x[{n + 1}]" for n, k in enumerate(keys)}
    u, i = (f"py_strip(coalesce({x[k]}, 'None'))" for k in ("user_id", "book_id"))
    v, r, d = (f"coalesce({x[k]}, 'None')" for k in ("rating", "is_read", "date_added"))
    w = f"CASE WHEN has_w THEN coalesce({x['is_reviewed']}, 'None') ELSE CAST(py_strip(coalesce({x['review_text_incomplete']}, '')) <> '' AS VARCHAR) END"
    paths = "[" + ", ".join(sql_text(f"$.{k}") for k in keys) + "]"
    run(con, f"""CREATE OR REPLACE TABLE gr_rows AS SELECT rn, {u} AS u, {i} AS i, num_or_null({v}) AS value,
        {_FLAG.format(x=r)} AS is_read, {_FLAG.format(x=w)} AS is_reviewed,
        CAST(epoch(try_strptime({d}, '%a %b %d %H:%M:%S %z %Y')) AS BIGINT) AS ts,
        CASE WHEN bad THEN 'bad_json' ELSE {_reasons(u, i, v, r, w)} END AS reason
        FROM (SELECT rn, {bad_json()} AS bad, json_extract_string(j, {paths}) AS x, json_exists(j, '$.is_reviewed') AS has_w
              FROM {json_lines(path)})""", path)
    rep.rows_read += int(con.execute("SELECT count(*) FROM gr_rows").fetchone()[0])


def prepare_interactions(con, files: dict, out: Path, rep: FileReport, *, positive_min_rating: float = 4,
                         read_unrated_positive: bool = True) -> None:
    """``out/interactions.parquet`` and ``out/shelves.parquet`` (both sorted by user, item),
    and table ``gr_items(item)`` of the books kept."""
    path = Path(files["interactions"])
    (_scan_json if path.name.endswith((".json", ".json.gz")) else _scan_csv)(con, path, rep)
    count_reasons(con, "gr_rows", rep)
    _id_ranks(con, "umap", files.get("user") if path.suffix == ".csv" else None, "u")
    _id_ranks(con, "bmap", files.get("item") if path.suffix == ".csv" else None, "i")
    # unknown ids (book map first, as in the reference), then the first row of each (user, book)
    con.execute("""CREATE OR REPLACE TABLE gr_keyed AS SELECT g.rn, b.k AS ik, u.k AS uk, g.value, g.is_read, g.is_reviewed, g.ts
        FROM (SELECT * FROM gr_rows WHERE reason IS NULL) g LEFT JOIN bmap b ON g.i = b.key LEFT JOIN umap u ON g.u = u.key""")
    con.execute("DROP TABLE gr_rows")
    rep.drop("unknown_id", con.execute("SELECT count(*) FROM gr_keyed WHERE ik IS NULL OR uk IS NULL").fetchone()[0])
    con.execute("""CREATE OR REPLACE TABLE gr_first AS SELECT uk, ik, count(*) AS n,
        arg_min({'value': value, 'is_read': is_read, 'is_reviewed': is_reviewed, 'ts': ts}, rn) AS s
        FROM gr_keyed WHERE ik IS NOT NULL AND uk IS NOT NULL GROUP BY uk, ik""")
    con.execute("DROP TABLE gr_keyed")
    kept, dups = con.execute("SELECT count(*), coalesce(sum(n - 1), 0) FROM gr_first").fetchone()
    rep.drop("duplicate", int(dups))
    rep.rows_kept = int(kept)
    rated = f"s.value >= {float(positive_min_rating)!r}" + (" OR s.value = 0" if read_unrated_positive else "")
    con.execute(f"""CREATE OR REPLACE TABLE gr_final AS SELECT u.val AS "user", b.val AS item, CAST(s.value AS FLOAT) AS value,
        s.ts AS "timestamp", s.is_read, s.is_reviewed, s.is_read AND ({rated}) AS positive
        FROM gr_first f JOIN (SELECT DISTINCT k, val FROM umap) u ON f.uk = u.k JOIN (SELECT DISTINCT k, val FROM bmap) b ON f.ik = b.k
        ORDER BY f.uk, f.ik""")
    con.execute("DROP TABLE gr_first")
    for flag, cond in (("shelved_not_read", "NOT is_read"), ("read_not_rated", "is_read AND value = 0"), ("positive", "positive")):
        rep.flags[flag] += int(con.execute(f"SELECT count(*) FROM gr_final WHERE {cond}").fetchone()[0])
    con.execute(f"""COPY (SELECT "user", item, 'book' AS domain, value, "timestamp" FROM gr_final)
        TO {sql_text(str(out / 'interactions.parquet'))} (FORMAT parquet)""")
    con.execute(f"""COPY (SELECT "user", item, is_read, value AS rating, is_reviewed, positive FROM gr_final)
        TO {sql_text(str(out / 'shelves.parquet'))} (FORMAT parquet)""")
    con.execute("CREATE OR REPLACE TABLE gr_items AS SELECT DISTINCT item FROM gr_final")
    con.execute("DROP TABLE gr_final")


def _authors(con, path: Path | None) -> None:
    """``authors(author_id, name)``: the last record of each id wins, like a dict."""
    if path is None:
        con.execute("CREATE OR REPLACE TABLE authors (author_id VARCHAR, name VARCHAR)")
        return
    run(con, f"""CREATE OR REPLACE TABLE authors AS SELECT coalesce(j->>'author_id', 'None') AS author_id,
        arg_max(coalesce(nullif(j->>'name', ''), ''), rn) AS name FROM {json_lines(path)} WHERE NOT {bad_json()} GROUP BY 1""", path)


_SHELVES = """list_filter(list_transform(list_slice(list_sort(list_transform(
    list_filter(coalesce(json_extract(j, '$.popular_shelves[*]'), []), lambda s: json_type(s) = 'OBJECT'),
    lambda s, i: {'c': -coalesce(TRY_CAST(nullif(s->>'count', '') AS BIGINT), 0), 'i': i,
                  'n': CASE WHEN json_exists(s, '$.name') THEN coalesce(s->>'name', 'None') ELSE '' END})), 1, {top}),
    lambda s: py_strip(replace(s.n, '|', '/'))), lambda t: t <> '')"""  # join_tags of the top shelves, before dedupe


def prepare_books(con, path: Path, authors: Path | None, rep: FileReport, top_shelves: int = 10) -> None:
    """Table ``books`` (canonical item columns + format, is_audiobook, isbn, isbn13, year,
    work_id) from ``goodreads_books.json.gz``; ``rep`` counts its lines. One pass parses
    every record into the few fields kept (the raw JSON, ~9 GB, is never stored)."""
    first_line(path)
    _authors(con, authors)
    keys = ["book_id", "title", "format", "description", "isbn", "isbn13", "publication_year", "work_id"]
    x = {k: f"x[{n + 1}]" for n, k in enumerate(keys)}
    paths = "[" + ", ".join(sql_text(f"$.{k}") for k in keys) + "]"
    tags = _SHELVES.replace("{top}", str(int(top_shelves)))
    run(con, f"""CREATE OR REPLACE TABLE books_rows AS SELECT *, CASE WHEN base IS NOT NULL THEN base
            WHEN row_number() OVER (PARTITION BY item, base ORDER BY rn) > 1 THEN 'duplicate' END AS reason
        FROM (SELECT rn, item, title, CASE WHEN bad THEN 'bad_json' WHEN item = '' OR title = '' THEN 'missing_value' END AS base,
                     fmt, description, isbn, isbn13, year, work_id, tl, aids
              FROM (SELECT rn, bad, py_strip(coalesce({x['book_id']}, '')) AS item, py_strip(coalesce({x['title']}, '')) AS title,
                           py_strip(coalesce({x['format']}, '')) AS fmt, coalesce({x['description']}, '') AS description,
                           isbn_normalise({x['isbn']}) AS isbn, isbn_clean({x['isbn13']}) AS isbn13,
                           CAST(round_even(num_or_null(nullif({x['publication_year']}, '')), 0) AS BIGINT) AS year,
                           coalesce({x['work_id']}, '') AS work_id, tl, aids
                    FROM (SELECT rn, {bad_json()} AS bad, json_extract_string(j, {paths}) AS x, {tags} AS tl,
                                 list_transform(list_filter(coalesce(json_extract(j, '$.authors[*]'), []), lambda a: json_type(a) = 'OBJECT'),
                                                lambda a: a->>'author_id') AS aids
                          FROM {json_lines(path)})))""", path)
    rep.rows_read += int(con.execute("SELECT count(*) FROM books_rows").fetchone()[0])
    count_reasons(con, "books_rows", rep)
    con.execute("""CREATE OR REPLACE TABLE book_creators AS SELECT rn, string_agg(coalesce(a.name, x.aid), ', ' ORDER BY x.pos) AS creator
        FROM (SELECT rn, s.aid, s.pos FROM (SELECT rn, unnest(list_transform(aids, lambda a, p: {'aid': a, 'pos': p})) AS s
              FROM books_rows WHERE reason IS NULL) WHERE s.aid IS NOT NULL) x LEFT JOIN authors a ON a.author_id = x.aid GROUP BY rn""")
    con.execute(f"""CREATE OR REPLACE TABLE books AS SELECT b.item, 'book' AS domain, clean_str(b.title) AS title,
        clean_str(coalesce(c.creator, '')) AS creator, clean_str(b.description) AS description,
        clean_str(array_to_string(list_filter(tl, lambda t, p: list_position(tl, t) = p), '|')) AS tags, fmt AS format,
        regexp_matches(fmt, {sql_text('(?i)' + AUDIO_FORMAT.pattern)}) AS is_audiobook, isbn, isbn13, year, work_id
        FROM (SELECT * FROM books_rows WHERE reason IS NULL) b LEFT JOIN book_creators c ON b.rn = c.rn ORDER BY b.item""")
    rep.rows_kept = int(con.execute("SELECT count(*) FROM books").fetchone()[0])
    rep.flags["audiobook_editions"] += int(con.execute("SELECT count(*) FROM books WHERE is_audiobook").fetchone()[0])
    con.execute("DROP TABLE books_rows; DROP TABLE book_creators")
