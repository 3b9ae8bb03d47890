"""Out-of-core preparation of the full public datasets (benchmark/data/full.py) against the
pandas reference loaders (benchmark/data/loaders/public_full.py, goodreads.py): the same
fixture files, the same tables and the same per-reason counts."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmark.config import paths
from benchmark.data.full import prepare_full
from benchmark.data.loaders import LoaderError
from benchmark.data.loaders import public_full as pf

DIRTY = 0.25  # fixtures hold one row per drop reason beside a few good rows
MB1 = "f59c5520-5f46-4d2c-b2c4-822eabf53419"
MB2 = "a74b1b7f-71a5-4011-9441-d0b5e4122711"


def jsonl(path: Path, recs: list, extra_lines: list[bytes] = ()) -> Path:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in recs) + b"".join(extra_lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def table(path: Path) -> pd.DataFrame:
    """A prepared parquet with the canonical dtypes (nullable integers stay Int64)."""
    return pq.read_table(path).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def same(mine: pd.DataFrame, ref: pd.DataFrame, keys: list[str]) -> None:
    ref = ref.sort_values(keys, kind="stable").reset_index(drop=True)
    assert list(mine.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(mine.reset_index(drop=True), ref, check_dtype=True)


def prepare(tmp_path: Path, kind: str, path: Path, **kw) -> tuple[dict, Path]:
    rep = prepare_full("src", kind, path, tmp_path / "prepared", min_kept_share=DIRTY, work_dir=tmp_path, memory_limit="256MB", threads=1, **kw)
    return rep, tmp_path / "prepared" / "src"


# ------------------------------------------------------------------ Goodreads

GR_ROWS = (
    "0,948,1,5,1\n"  # read, rated 5, reviewed: positive
    "0,947,1,0,0\n"  # read, not rated: positive by default
    "0,946,0,0,0\n"  # shelved, not read: never positive
    "1,948,1,2,0\n"  # read, rated 2: not positive
    "1,946,0,4,0\n"  # rating 4 but not read: never positive
    "\n"  # blank line: not a row
    "0,948,1,4,0\n"  # repeated (user, book): duplicate (the first is kept)
    "1,947,1,7,0\n"  # rating 7: out of range
    "2,999,1,3,0\n"  # book id absent from the map: unknown_id
    "2,946,1\n"  # three columns: wrong_column_count
    "2,946,1,3,0,9\n"  # six columns: wrong_column_count
    "2,947,2,3,0\n"  # is_read 2: out of range
    "3,946,1,nan,0\n"  # rating nan: not_a_number
    "3,947,1,,0\n"  # no rating: missing_value
    "4,946,true, 4 ,FALSE\n"  # flags as words, padded number
    "5,947,1,3,0\n"  # user absent from the user map: unknown_id
    "7\xe9,946,1,3,0\n"  # a non-ASCII byte: decoded as U+FFFD, then unknown
)
BOOKS = [
    {"book_id": "5000", "title": "Dune", "format": "Audible Audio", "isbn": "0441172717", "isbn13": "9780441172719",
     "authors": [{"author_id": "7", "role": ""}, {"author_id": "8"}, "x"], "publication_year": "2006", "work_id": "1",
     "popular_shelves": [{"count": "3", "name": "sci-fi"}, {"count": "9", "name": "to-read"}, {"count": "3", "name": "a|b"}, {"count": "", "name": "to-read"}],
     "description": "Desert.\n  Sand\u00a0"},
    {"book_id": "5001", "title": " Dune ", "format": "Paperback", "isbn": "978-0-441-17271-9", "authors": [], "publication_year": ""},
    {"book_id": "5002", "title": "Emma", "format": "MP3 CD", "isbn": "039592720x"},
    {"book_id": "5003", "title": "Tape", "format": "audio cassette", "isbn13": "979-1-234-56789-7"},
    {"book_id": "5004", "title": "", "format": "Hardcover"},
    {"book_id": "5000", "title": "Dune again"},
]


def _goodreads_folder(tmp_path: Path, rows: str = GR_ROWS, header: bool = True) -> Path:
    d = tmp_path / "goodreads"
    d.mkdir()
    text = ("user_id,book_id,is_read,rating,is_reviewed\n" if header else "") + rows
    (d / "goodreads_interactions.csv").write_bytes(text.encode("latin-1"))
    (d / "book_id_map.csv").write_text("book_id_csv,book_id\n948,5000\n947,5001\n946,5002\n945,5003\n")
    (d / "user_id_map.csv").write_text("user_id_csv,user_id\n0,u0\n1,u1\n2,u2\n3,u3\n4,u4\n7,u7\n")
    jsonl(d / "goodreads_books.json.gz", BOOKS, extra_lines=[b"{broken\n"])
    jsonl(d / "goodreads_book_authors.json.gz", [{"author_id": "7", "name": "F. Herbert"}, {"author_id": "7", "name": "Frank Herbert"}])
    return d


def _reference_goodreads(d: Path):
    inter = pf.load_goodreads_interactions(d / "goodreads_interactions.csv", book_id_map=d / "book_id_map.csv", user_id_map=d / "user_id_map.csv", min_kept_share=DIRTY)
    books = pf.load_goodreads_books(d / "goodreads_books.json.gz", authors_path=d / "goodreads_book_authors.json.gz", min_kept_share=DIRTY)
    return inter, books


def test_goodreads_csv_matches_the_pandas_reader(tmp_path):
    d = _goodreads_folder(tmp_path)
    rep, out = prepare(tmp_path, "goodreads", d)
    ref, books = _reference_goodreads(d)
    same(table(out / "interactions.parquet"), ref.interactions, ["user", "item"])
    same(table(out / "shelves.parquet"), ref.extra["shelves"], ["user", "item"])
    assert rep["files"]["goodreads_interactions.csv"] == ref.files["goodreads_interactions.csv"].to_dict()
    assert rep["files"]["goodreads_interactions.csv"]["dropped"] == {
        "duplicate": 1, "missing_value": 1, "not_a_number": 1, "out_of_range": 2, "unknown_id": 3, "wrong_column_count": 2}
    assert rep["files"]["goodreads_books.json.gz"] == books.files["goodreads_books.json.gz"].to_dict()
    items = table(out / "items.parquet").set_index("item")
    catalog = books.items.assign(year=books.items["year"].astype("Int64"))  # the reference's extras leave Int64 as float
    same(items.loc[sorted(catalog["item"])].reset_index(), catalog, ["item"])
    assert items.loc["5000", "creator"] == "Frank Herbert, 8" and items.loc["5000", "tags"] == "to-read|sci-fi|a/b"
    assert items["is_audiobook"].to_dict() == {"5000": True, "5001": False, "5002": True, "5003": True}
    json.loads((out / "report.json").read_text())  # written, valid


def test_goodreads_uncatalogued_books_get_an_empty_items_row(tmp_path):
    d = _goodreads_folder(tmp_path)
    (d / "book_id_map.csv").write_text("book_id_csv,book_id\n948,5000\n947,5001\n946,6000\n")
    rep, out = prepare(tmp_path, "goodreads", d)
    items = table(out / "items.parquet").set_index("item")
    assert rep["items_without_metadata"] == 1
    assert items.loc["6000", ["title", "format"]].tolist() == ["", ""] and not items.loc["6000", "is_audiobook"]
    inter = table(out / "interactions.parquet")
    assert set(inter["item"]) <= set(items.index)
    again = prepare_full("src", "goodreads", d, tmp_path / "again", min_kept_share=DIRTY, work_dir=tmp_path, threads=2)
    assert again["files"] == rep["files"]
    for f in ("interactions.parquet", "shelves.parquet", "items.parquet", "report.json"):  # a re-run changes no byte (DVC)
        assert (tmp_path / "again" / "src" / f).read_bytes() == (out / f).read_bytes(), f


def test_goodreads_headerless_csv_and_positive_rule(tmp_path):
    d = _goodreads_folder(tmp_path, header=False)
    _, out = prepare(tmp_path, "goodreads", d)
    ref, _ = _reference_goodreads(d)
    same(table(out / "shelves.parquet"), ref.extra["shelves"], ["user", "item"])
    sh = table(out / "shelves.parquet").set_index(["user", "item"])["positive"]
    assert sorted(sh[sh].index) == [("u0", "5000"), ("u0", "5001"), ("u4", "5002")]


def test_goodreads_swapped_header_is_refused_like_the_reference(tmp_path):
    d = _goodreads_folder(tmp_path)
    (d / "goodreads_interactions.csv").write_text("book_id,user_id,is_read,rating,is_reviewed\n" + "0,948,1,5,1\n")
    with pytest.raises(LoaderError) as mine:
        prepare(tmp_path, "goodreads", d)
    with pytest.raises(LoaderError) as ref:
        _reference_goodreads(d)
    assert str(ref.value) in str(mine.value) and "\n" not in str(mine.value)
    assert not (tmp_path / "prepared" / "src").exists()  # nothing half-written


def test_goodreads_json_variant_matches(tmp_path):
    d = tmp_path / "gj"
    d.mkdir()
    recs = [
        {"user_id": "a1", "book_id": "10", "rating": 5, "is_read": True, "date_added": "Mon Aug 28 13:58:43 -0700 2017", "review_text_incomplete": "Great"},
        {"user_id": "a1", "book_id": "11", "rating": 0, "is_read": True, "date_added": "garbled", "review_text_incomplete": " "},
        {"user_id": "a1", "book_id": "10", "rating": 3, "is_read": True, "date_added": "Mon Aug 28 13:58:43 -0700 2017"},
        {"user_id": "b2", "book_id": "10", "rating": 4, "is_read": False, "is_reviewed": True, "date_added": "Tue Aug 29 13:58:43 +0000 2017"},
        {"user_id": None, "book_id": "12", "rating": 4, "is_read": True},
        {"user_id": "b2", "book_id": "12", "rating": None, "is_read": True},
        {"user_id": "b2", "book_id": "13", "rating": 4, "is_read": "maybe"},
        {"user_id": "c3", "book_id": "13", "rating": 2, "is_read": True},
    ]
    name = "goodreads_interactions_dedup.json.gz"
    jsonl(d / name, recs, extra_lines=[b"[1, 2]\n", b"{nope\n"])
    rep, out = prepare(tmp_path, "goodreads", d)
    ref = pf.load_goodreads_interactions(d / name, min_kept_share=DIRTY)
    same(table(out / "interactions.parquet"), ref.interactions, ["user", "item"])
    same(table(out / "shelves.parquet"), ref.extra["shelves"], ["user", "item"])
    assert rep["files"][name] == ref.files[name].to_dict()
    assert rep["files"][name]["dropped"]["bad_json"] == 2
    # the one documented difference: DuckDB cannot tell an undecodable JSON line from a malformed one
    jsonl(d / name, recs, extra_lines=[b"[1, 2]\n", b"{nope\n", b'{"user_id": "d\xff", "book_id": "1", "rating": 5, "is_read": true}\n'])
    rep, out = prepare(tmp_path, "goodreads", d)
    ref = pf.load_goodreads_interactions(d / name, min_kept_share=DIRTY)
    same(table(out / "shelves.parquet"), ref.extra["shelves"], ["user", "item"])
    mine, theirs = rep["files"][name]["dropped"], ref.files[name].to_dict()["dropped"]
    assert (mine["bad_json"], theirs["bad_json"], theirs["bad_encoding"]) == (3, 2, 1) and "bad_encoding" not in mine


# ------------------------------------------------------------------ Last.fm and Kaggle


def test_lastfm_1k_matches(tmp_path):
    lines = [
        f"user_000001\t2009-05-04T23:08:57Z\t{MB1}\tLinkin Park\ttr1\tNumb",
        f"user_000001\t2009-05-04T13:54:10Z\t{MB1.upper()}\tlinkin park\ttr2\tCrawling",
        "user_000001\t2009-05-05T10:00:00Z\t\tSome  Band\t\tSong",
        "user_000002\t2009-05-06T10:00:00Z\t\t some band\t\t\"quoted\" song",
        "user_000002\tyesterday\t\tX\t\tY",
        "user_000002\t2009-05-06T10:00:00Z\t\t\t\tno artist",
        "too\tfew",
        "too\tmany\ta\tb\tc\td\te",
    ]
    raw = ("\n".join(lines) + "\n").encode() + b"user_000003\t2009-05-06T10:00:00Z\t\tBj\xf6rk\t\tx\n"
    (tmp_path / "plays.tsv").write_bytes(raw)
    rep, out = prepare(tmp_path, "lastfm-1k", tmp_path / "plays.tsv")
    ref = pf.load_lastfm_1k(tmp_path / "plays.tsv", min_kept_share=DIRTY)
    same(table(out / "interactions.parquet"), ref.interactions, ["user", "item"])
    same(table(out / "items.parquet"), ref.items, ["item"])
    assert rep["files"]["plays.tsv"] == ref.files["plays.tsv"].to_dict()
    assert rep["files"]["plays.tsv"]["dropped"] == {"bad_encoding": 1, "wrong_column_count": 2, "bad_timestamp": 1, "missing_value": 1}


def test_lastfm_360k_matches(tmp_path):
    lines = [
        f"00000c289a1829a808ac09c00daf10bc3c4e223b\t{MB2}\tbetty blowtorch\t2137",
        f"00000c289a1829a808ac09c00daf10bc3c4e223b\t{MB2}\tBetty Blowtorch!\t3",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tdie Ärzte\t1099",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tzero\t0",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tword\tmany",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tunderscore\t1_000",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tbig\t1e400",
        "ffff\t\tblank\t",
        "\t\tnobody\t5",
    ]
    (tmp_path / "usersha1-artmbid-artname-plays.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep, out = prepare(tmp_path, "lastfm-360k", tmp_path)  # a folder: the file is found by its published name
    ref = pf.load_lastfm_360k(tmp_path / "usersha1-artmbid-artname-plays.tsv", min_kept_share=DIRTY)
    same(table(out / "interactions.parquet"), ref.interactions, ["user", "item"])
    same(table(out / "items.parquet"), ref.items, ["item"])
    name = "usersha1-artmbid-artname-plays.tsv"
    assert rep["files"][name] == ref.files[name].to_dict()
    assert rep["files"][name]["dropped"] == {"duplicate": 1, "out_of_range": 1, "not_a_number": 3, "missing_value": 2}


def test_kaggle_podcasts_matches(tmp_path):
    jsonl(tmp_path / "podcasts.json", [
        {"podcast_id": "a1", "itunes_id": 111, "title": "Alpha  Show"},
        {"podcast_id": "b2", "itunes_id": None, "title": "Beta"},
        {"podcast_id": "c3", "itunes_id": 111, "title": "Alpha again"},
        {"podcast_id": "a1", "itunes_id": 5, "title": "dup"},
        {"podcast_id": "", "title": "no id"},
    ])
    jsonl(tmp_path / "categories.json", [{"podcast_id": "a1", "category": "arts"}, {"podcast_id": "a1", "category": "arts|books"},
                                         {"podcast_id": "a1", "category": "arts"}, {"podcast_id": "zz", "category": "x"}, {"podcast_id": "b2"}])
    jsonl(tmp_path / "reviews.json", [
        {"podcast_id": "a1", "author_id": "u1", "rating": 5, "created_at": "2018-04-24T12:05:16-07:00"},
        {"podcast_id": "a1", "author_id": "u1", "rating": 2, "created_at": "2019-01-01T00:00:00-07:00"},
        {"podcast_id": "c3", "author_id": "u1", "rating": 1, "created_at": "2017-01-01T00:00:00-07:00"},
        {"podcast_id": "b2", "author_id": "u2", "rating": 4, "created_at": "2018-01-01T00:00:00+00:00"},
        {"podcast_id": "a1", "author_id": "u3", "rating": 6, "created_at": "2018-01-01T00:00:00+00:00"},
        {"podcast_id": "a1", "author_id": "u3", "rating": None, "created_at": "2018-01-01T00:00:00+00:00"},
        {"podcast_id": "nope", "author_id": "u3", "rating": 3, "created_at": "2018-01-01T00:00:00+00:00"},
        {"podcast_id": "b2", "author_id": "u4", "rating": "3"},
    ], extra_lines=[b"{not json\n"])
    rep, out = prepare(tmp_path, "kaggle-podcasts", tmp_path)
    ref = pf.load_kaggle_podcast_reviews(tmp_path, min_kept_share=DIRTY)
    same(table(out / "interactions.parquet"), ref.interactions, ["user", "item"])
    same(table(out / "items.parquet"), ref.items, ["item"])
    for name, r in ref.files.items():
        assert rep["files"][name] == r.to_dict(), name
    assert rep["files"]["reviews.json"]["dropped"] == {"bad_json": 1, "out_of_range": 1, "not_a_number": 1, "unknown_id": 1, "duplicate": 2}


# ------------------------------------------------------------------ refusals and the scale script


def test_url_and_missing_paths_are_one_line_errors(tmp_path):
    with pytest.raises(LoaderError, match="read from a local path; download the files from https://mengtingwan"):
        prepare_full("gr", "goodreads", "https://example.org/goodreads/", tmp_path)
    with pytest.raises(LoaderError, match="not found; download"):
        prepare_full("lf", "lastfm-360k", tmp_path / "absent.tsv", tmp_path)
    with pytest.raises(LoaderError, match="unknown kind"):
        prepare_full("x", "spotify", tmp_path, tmp_path)


def test_mixed_line_endings_are_refused_whole(tmp_path):
    (tmp_path / "p.tsv").write_bytes(b"u1\t\ta\t1\nu2\t\tb\t2\r\nu3\t\tc\t3\n")
    with pytest.raises(LoaderError, match="p.tsv: DuckDB could not read it .*dos2unix"):
        prepare_full("lf", "lastfm-360k", tmp_path / "p.tsv", tmp_path / "out", work_dir=tmp_path)


def test_a_file_kept_below_min_kept_share_is_refused(tmp_path):
    (tmp_path / "p.tsv").write_text("u\t\tname\t1\n" + "u\t\tname\tmany\n" * 3)
    with pytest.raises(LoaderError, match="only 1 of 4 rows kept"):
        prepare_full("lf", "lastfm-360k", tmp_path / "p.tsv", tmp_path / "out", work_dir=tmp_path)
    assert not (tmp_path / "out" / "lf").exists()


def test_bench_prepare_full_script_runs_small(tmp_path):
    """The scale check end to end on 20,000 rows (no timing asserted): it generates the CSV
    and id maps, prepares them in a child process and reports what it measured."""
    out = tmp_path / "prepare_full.json"
    proc = subprocess.run([sys.executable, str(paths.ROOT / "scripts" / "bench_prepare_full.py"), "--rows", "20000",
                           "--work", str(tmp_path / "work"), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["rows"] == 20000 and res["interactions_written"] + res["dropped_total"] == 20000
    assert res["peak_rss_mb"] > 0 and res["seconds"] > 0 and res["memory_limit"] == "1.5GB"
