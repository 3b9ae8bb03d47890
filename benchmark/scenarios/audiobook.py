"""Real audiobook scenario (``goodreads-audio``): Goodreads print/ebook shelves -> audiobooks.

UCSD Goodreads shelves are per *edition*, and an edition's ``format`` says whether it
is an audiobook ("Audible Audio", "Audio CD", "MP3 CD"...; :data:`is_audiobook` of the
prepared items, :func:`benchmark.data.loaders.goodreads.is_audiobook_format`). So the same
real people have a source history (print and ebook editions) and a target history
(audiobook editions): a real cold-start question, "what will a reader who never
listened to an audiobook like as one?", with no linkage.

Schema slots: the print/ebook editions take the source slot ``music`` (the schema has
one source slot per modality, and real.py puts any single source there), the audiobook
editions the target slot ``book``; the card's notes say what each slot holds.

* evaluable = >= 1 print/ebook shelf and >= 1 audiobook positive. Like every scenario,
  evaluable users are dealt into folds by the common code, so a valid/test user's
  audiobook rows are held out: at evaluation they are users with zero audiobook history.
* target positive: :func:`benchmark.data.loaders.goodreads.positive_rule` on the audiobook
  shelf (read, and rated >= ``positive_threshold`` or, with ``read_unrated_positive``,
  unrated); a shelved-unread audiobook is a target row but never a positive.
* source rows: every print/ebook shelf; ``positive`` = read (consumed), whatever the
  rating.
* ``value`` = the rating 1-5, and :data:`UNRATED_VALUE` (0.5) for a shelf without a
  rating (prepared as 0). Why not 0: the protocol keeps values in sparse matrices
  (source histories, training positives), where a 0 vanishes, and unrated shelves are
  about half of Goodreads; 0.5 keeps them, below every real rating, and leaves the rated
  values (and the card's "value >= threshold") as they are.
* kept users: those with any audiobook shelf (``keep_print_only_users`` adds the
  others, most of the file's 228M rows); ``max_users`` keeps a seeded sample of them
  (ordered by md5 of seed and user id, so the sample does not depend on file order).

The selection runs in DuckDB on the prepared parquet (shelves of the whole file never
become a pandas frame); only the kept users' rows are fetched. No time cut: the
Goodreads CSV has no dates (the JSON variant's ``date_added`` is a shelving date, not a
reading date).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmark.config.full_params import GoodreadsAudioScenario
from benchmark.config.params import parse_params_section
from benchmark.data.loaders.full_sql import connect, sql_text
from benchmark.scenarios.export import Built, finalize_interactions, items_table, users_table
from benchmark.scenarios.schema import TARGET, prefixed

SOURCE = "music"  # the schema's source slot, holding print/ebook editions here
TABLES = ("shelves", "items", "interactions")
UNRATED_VALUE = 0.5


def _resolve(name: str, spec: dict) -> dict:
    return parse_params_section(GoodreadsAudioScenario, {"builder": "goodreads-audio", **spec}, f"scenarios.{name}").model_dump()


def _paths(prepared_root: Path, source: str) -> dict[str, str]:
    out = {}
    for t in TABLES:
        p = Path(prepared_root) / source / f"{t}.parquet"
        if not p.exists():
            raise FileNotFoundError(f"prepared table {p} is missing: prepare the full source '{source}' first "
                                    f"(`cdrbench prepare-full {source}`, a goodreads full source)")
        out[t] = sql_text(str(p))
    return out


def _select(con, p: dict[str, str], spec: dict) -> dict:
    """Tables ``audio(item)``, ``kept(user, evaluable)`` and ``rows``; returns counts."""
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({p['items']})").fetchall()}
    if "is_audiobook" not in cols:
        raise ValueError(f"source {spec['source']}: items.parquet has no is_audiobook column; prepare it with goodreads_books.json.gz")
    thr = float(spec["positive_threshold"])
    pos = f"is_read AND (rating >= {thr!r}" + (" OR rating = 0)" if spec["read_unrated_positive"] else ")")
    con.execute(f"CREATE TABLE audio AS SELECT item FROM read_parquet({p['items']}) WHERE is_audiobook AND domain = 'book'")
    con.execute(f"""CREATE TABLE per_user AS SELECT s."user", bool_or(a.item IS NOT NULL) AS has_audio, bool_or(a.item IS NULL) AS has_print,
        bool_or(a.item IS NOT NULL AND {pos}) AS audio_positive FROM read_parquet({p['shelves']}) s LEFT JOIN audio a USING (item) GROUP BY 1""")
    keep = "true" if spec["keep_print_only_users"] else "has_audio"
    limit = f"ORDER BY md5({sql_text(str(spec['seed']) + ':')} || \"user\") LIMIT {int(spec['max_users'])}" if spec["max_users"] else ""
    con.execute(f"""CREATE TABLE kept AS SELECT "user", has_print AND audio_positive AS evaluable FROM
        (SELECT * FROM per_user WHERE {keep} {limit})""")
    con.execute(f"""CREATE TABLE rows AS SELECT s."user", s.item, a.item IS NOT NULL AS audio,
        CASE WHEN s.rating = 0 THEN {UNRATED_VALUE!r} ELSE s.rating END AS value, t."timestamp",
        CASE WHEN a.item IS NOT NULL THEN {pos} ELSE s.is_read END AS positive
        FROM (SELECT * FROM read_parquet({p['shelves']}) SEMI JOIN kept USING ("user")) s
        LEFT JOIN audio a USING (item)
        LEFT JOIN (SELECT "user", item, "timestamp" FROM read_parquet({p['interactions']}) SEMI JOIN kept USING ("user")) t USING ("user", item)""")
    q = lambda sql: int(con.execute(sql).fetchone()[0])  # noqa: E731
    return {
        "users_in_source": q("SELECT count(*) FROM per_user"),
        "users_with_audiobook_shelf": q("SELECT count(*) FROM per_user WHERE has_audio"),
        "users_with_print_and_audiobook_positive": q("SELECT count(*) FROM per_user WHERE has_print AND audio_positive"),
        "users_kept": q("SELECT count(*) FROM kept"),
        "audiobook_editions_in_catalog": q("SELECT count(*) FROM audio"),
        # an evaluable user's print shelves of a work they also have as an audiobook: their own print reading
        # (source data, not a leak), counted so that a reader of results knows how much "same work" signal there is
        "evaluable_print_rows_of_a_work_also_shelved_as_audiobook": q(f"""SELECT coalesce(sum(n_print), 0) FROM (
            SELECT r."user", i.work_id, bool_or(r.audio) AS has_audio, count(*) FILTER (WHERE NOT r.audio) AS n_print
            FROM rows r JOIN kept k USING ("user") JOIN read_parquet({p['items']}) i USING (item)
            WHERE k.evaluable AND i.work_id <> '' GROUP BY ALL) WHERE has_audio""") if "work_id" in cols else None,
    }


def build_goodreads_audio(name: str, spec: dict, prepared_root: Path) -> Built:
    """Build the audiobook scenario ``name`` from the prepared Goodreads source ``spec['source']``."""
    spec = _resolve(name, spec)
    p = _paths(prepared_root, spec["source"])
    with tempfile.TemporaryDirectory(prefix="cdrbench-audio-") as work:
        con = connect(Path(work))
        try:
            counts = _select(con, p, spec)
            inter = con.execute("SELECT * FROM rows").df()
            evaluable = {u for (u,) in con.execute('SELECT "user" FROM kept WHERE evaluable').fetchall()}
            meta = con.execute(f"""SELECT item, title, creator, description FROM read_parquet({p['items']})
                WHERE domain = 'book' AND item IN (SELECT DISTINCT item FROM rows)""").df()
        finally:
            con.close()
    if not evaluable:
        raise ValueError(f"scenario {name}: no user has a print shelf and an audiobook positive in {spec['source']}")
    inter["domain"] = [TARGET if a else SOURCE for a in inter["audio"]]
    inter["item"] = [prefixed(d, i) for d, i in zip(inter["domain"], inter["item"].astype(str))]
    inter = finalize_interactions(inter)
    audio_ids = set(inter.loc[inter["domain"] == TARGET, "item"].str.slice(len(TARGET) + 1))
    items = items_table(inter, {TARGET: meta[meta["item"].isin(audio_ids)], SOURCE: meta[~meta["item"].isin(audio_ids)]})
    rule = f"read and (rating >= {spec['positive_threshold']:g}" + (" or unrated)" if spec["read_unrated_positive"] else ")")
    notes = {
        "time_cut": {"applied": False, "why": "the Goodreads CSV has no dates; the JSON variant's date_added is a shelving date"},
        "domains": {SOURCE: "print and ebook editions of Goodreads (every shelf; positive = read)",
                    TARGET: "audiobook editions of Goodreads (edition format matches audio|mp3|audible|cassette)"},
        "filters": {
            "evaluable_rule": ">= 1 print/ebook shelf and >= 1 audiobook positive; their audiobook rows are held out by the folds",
            "target_positive_rule": rule,
            "value": f"rating 1-5; {UNRATED_VALUE} = shelved without a rating (read or not)",
            "kept_users_rule": "every user" if spec["keep_print_only_users"] else "users with >= 1 audiobook shelf",
            "max_users": spec["max_users"],
            **counts,
        },
    }
    return Built(interactions=inter, items=items, users=users_table(inter, evaluable), source_domains=[SOURCE],
                 semi_synthetic=False, sources=[spec["source"]], notes=notes)
