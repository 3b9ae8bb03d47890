"""Readers of the full public datasets, on tiny fixtures in their published formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.data.loaders import LoaderError
from benchmark.data.loaders import public_full as pf

DIRTY = 0.25  # the fixtures hold one row per drop reason beside a few good rows
MB1 = "f59c5520-5f46-4d2c-b2c4-822eabf53419"
MB2 = "a74b1b7f-71a5-4011-9441-d0b5e4122711"


def jsonl(path: Path, recs: list, extra_lines: list[bytes] = ()) -> Path:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in recs) + b"".join(extra_lines)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_lastfm_1k_aggregates_plays_with_first_timestamp(tmp_path):
    lines = [
        f"user_000001\t2009-05-04T23:08:57Z\t{MB1}\tLinkin Park\ttr1\tNumb",
        f"user_000001\t2009-05-04T13:54:10Z\t{MB1}\tLinkin Park\ttr2\tCrawling",
        "user_000001\t2009-05-05T10:00:00Z\t\tSome Band\t\tSong",
        "user_000002\t2009-05-06T10:00:00Z\t\tsome band\t\tSong",
        "user_000002\tyesterday\t\tX\t\tY",
        "user_000002\t2009-05-06T10:00:00Z\t\t\t\tno artist",
        "too\tfew",
    ]
    raw = ("\n".join(lines) + "\n").encode() + b"user_000003\t2009-05-06T10:00:00Z\t\tBj\xf6rk\t\tx\n"
    (tmp_path / "plays.tsv").write_bytes(raw)
    res = pf.load_lastfm_1k(tmp_path / "plays.tsv")
    rep = res.files["plays.tsv"]
    rep.check("1k")
    assert rep.dropped == {"bad_encoding": 1, "wrong_column_count": 1, "bad_timestamp": 1, "missing_value": 1}
    inter = res.interactions.set_index(["user", "item"])
    lp = inter.loc[("user_000001", MB1)]
    assert lp["value"] == 2 and lp["timestamp"] == int(pd.Timestamp("2009-05-04T13:54:10Z").timestamp())
    assert inter.loc[("user_000002", "name:some band"), "value"] == 1  # no MBID: keyed by name
    assert set(res.items["item"]) == {MB1, "name:some band"}
    assert res.items.set_index("item").loc[MB1, "title"] == "Linkin Park"


def test_lastfm_360k_sums_spelling_variants(tmp_path):
    lines = [
        f"00000c289a1829a808ac09c00daf10bc3c4e223b\t{MB2}\tbetty blowtorch\t2137",
        f"00000c289a1829a808ac09c00daf10bc3c4e223b\t{MB2}\tBetty Blowtorch!\t3",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tdie Ärzte\t1099",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tzero\t0",
        "00000c289a1829a808ac09c00daf10bc3c4e223b\t\tword\tmany",
        "\t\tnobody\t5",
    ]
    (tmp_path / "360k.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = pf.load_lastfm_360k(tmp_path / "360k.tsv", min_kept_share=DIRTY)
    rep = res.files["360k.tsv"]
    rep.check("360k")
    assert rep.dropped == {"duplicate": 1, "out_of_range": 1, "not_a_number": 1, "missing_value": 1}
    vals = res.interactions.set_index("item")["value"]
    assert vals[MB2] == 2140 and vals["name:die ärzte"] == 1099
    assert res.interactions["timestamp"].isna().all()


def test_kaggle_podcast_reviews(tmp_path):
    jsonl(
        tmp_path / "podcasts.json",
        [
            {"podcast_id": "a1", "itunes_id": 111, "slug": "s", "itunes_url": "u", "title": "Alpha"},
            {"podcast_id": "b2", "itunes_id": None, "title": "Beta"},
        ],
    )
    jsonl(tmp_path / "categories.json", [{"podcast_id": "a1", "category": "arts"}, {"podcast_id": "a1", "category": "arts-books"}, {"podcast_id": "zz", "category": "x"}])
    jsonl(
        tmp_path / "reviews.json",
        [
            {"podcast_id": "a1", "author_id": "u1", "rating": 5, "created_at": "2018-04-24T12:05:16-07:00"},
            {"podcast_id": "a1", "author_id": "u1", "rating": 2, "created_at": "2019-01-01T00:00:00-07:00"},
            {"podcast_id": "b2", "author_id": "u2", "rating": 4, "created_at": "2018-01-01T00:00:00+00:00"},
            {"podcast_id": "a1", "author_id": "u3", "rating": 6, "created_at": "2018-01-01T00:00:00+00:00"},
            {"podcast_id": "nope", "author_id": "u3", "rating": 3, "created_at": "2018-01-01T00:00:00+00:00"},
        ],
        extra_lines=[b"{not json\n"],
    )
    res = pf.load_kaggle_podcast_reviews(tmp_path, min_kept_share=DIRTY)
    for name, rep in res.files.items():
        rep.check(name)
    assert res.files["reviews.json"].dropped == {"bad_json": 1, "out_of_range": 1, "unknown_id": 1, "duplicate": 1}
    assert res.files["categories.json"].dropped == {"unknown_id": 1}
    inter = res.interactions.set_index(["user", "item"])
    assert inter.loc[("u1", "111"), "value"] == 2  # latest review kept
    assert inter.loc[("u1", "111"), "timestamp"] == int(pd.Timestamp("2019-01-01T07:00:00Z").timestamp())
    assert inter.loc[("u2", "b2"), "value"] == 4  # no iTunes id: Kaggle id
    it = res.items.set_index("item")
    assert it.loc["111", "tags"] == "arts|arts-books" and it.loc["b2", "title"] == "Beta"


GR_HEADER = "user_id,book_id,is_read,rating,is_reviewed\n"
GR_ROWS = (
    "0,948,1,5,1\n"  # read, rated 5, reviewed: positive
    "0,947,1,0,0\n"  # read, not rated: positive by default
    "0,946,0,0,0\n"  # shelved, not read: never positive
    "1,948,1,2,0\n"  # read, rated 2: not positive
    "1,946,0,4,0\n"  # rating 4 but not read: never positive
    "0,948,1,4,0\n"  # repeated (user, book): duplicate
    "1,947,1,7,0\n"  # rating 7: out of range
    "2,999,1,3,0\n"  # book id absent from the map: unknown_id
    "2,946,1\n"  # three columns: wrong_column_count
    "2,947,2,3,0\n"  # is_read 2: out of range
)


def _goodreads(tmp_path, text: str, **kw):
    (tmp_path / "goodreads_interactions.csv").write_text(text)
    (tmp_path / "book_id_map.csv").write_text("book_id_csv,book_id\n948,5000\n947,5001\n946,5002\n")
    return pf.load_goodreads_interactions(tmp_path / "goodreads_interactions.csv", book_id_map=tmp_path / "book_id_map.csv", min_kept_share=DIRTY, **kw)


def test_goodreads_keeps_is_read_rating_and_is_reviewed(tmp_path):
    res = _goodreads(tmp_path, GR_HEADER + GR_ROWS)
    rep = res.files["goodreads_interactions.csv"]
    rep.check("gr")
    assert rep.rows_read == 10
    assert rep.dropped == {"wrong_column_count": 1, "out_of_range": 2, "unknown_id": 1, "duplicate": 1}
    sh = res.extra["shelves"].set_index(["user", "item"])
    assert sh[["is_read", "rating", "is_reviewed", "positive"]].to_dict("index") == {
        ("0", "5000"): {"is_read": True, "rating": 5.0, "is_reviewed": True, "positive": True},
        ("0", "5001"): {"is_read": True, "rating": 0.0, "is_reviewed": False, "positive": True},
        ("0", "5002"): {"is_read": False, "rating": 0.0, "is_reviewed": False, "positive": False},
        ("1", "5000"): {"is_read": True, "rating": 2.0, "is_reviewed": False, "positive": False},
        ("1", "5002"): {"is_read": False, "rating": 4.0, "is_reviewed": False, "positive": False},
    }
    # shelved-not-read and read-not-rated share value 0 in the canonical table, not in shelves
    assert res.interactions.set_index(["user", "item"])["value"].to_dict() == {k: v["rating"] for k, v in sh.to_dict("index").items()}
    assert list(res.extra["shelves"][["user", "item"]].itertuples(index=False, name=None)) == list(res.interactions[["user", "item"]].itertuples(index=False, name=None))
    assert (rep.flags["shelved_not_read"], rep.flags["read_not_rated"], rep.flags["positive"]) == (2, 1, 2)
    assert any("positive = is_read and (rating >= 4 or rating == 0)" in n for n in res.notes)


def test_goodreads_positive_rule_is_an_argument(tmp_path):
    res = _goodreads(tmp_path, GR_HEADER + GR_ROWS, positive_min_rating=5, read_unrated_positive=False)
    pos = res.extra["shelves"].set_index(["user", "item"])["positive"]
    assert sorted(pos[pos].index) == [("0", "5000")]


def test_goodreads_headerless_file_keeps_its_first_row(tmp_path):
    with_header = _goodreads(tmp_path, GR_HEADER + GR_ROWS)
    headerless = _goodreads(tmp_path, GR_ROWS)
    assert headerless.files["goodreads_interactions.csv"].to_dict() == with_header.files["goodreads_interactions.csv"].to_dict()
    assert headerless.extra["shelves"].equals(with_header.extra["shelves"])


def test_goodreads_swapped_header_is_refused(tmp_path):
    with pytest.raises(LoaderError) as e:
        _goodreads(tmp_path, "book_id,user_id,is_read,rating,is_reviewed\n" + GR_ROWS)
    msg = str(e.value)
    assert "\n" not in msg and "goodreads_interactions.csv: header ['book_id', 'user_id'" in msg and "['user_id', 'book_id'," in msg


def test_goodreads_interactions_json_gz_dates(tmp_path):
    recs = [
        {"user_id": "8842281e1d1347389f2ab93d60773d4d", "book_id": "24375664", "rating": 5, "is_read": True, "date_added": "Mon Aug 28 13:58:43 -0700 2017"},
        {"user_id": "8842281e1d1347389f2ab93d60773d4d", "book_id": "1", "rating": 3, "is_read": True, "date_added": "garbled"},
    ]
    res = pf.load_goodreads_interactions(jsonl(tmp_path / "goodreads_interactions_dedup.json.gz", recs))
    ts = res.interactions.set_index("item")["timestamp"]
    assert ts["24375664"] == int(pd.Timestamp("2017-08-28T20:58:43Z").timestamp())
    assert pd.isna(ts["1"])


def test_goodreads_books_audiobook_format(tmp_path):
    books = [
        {"book_id": "1", "title": "Dune", "format": "Audible Audio", "isbn": "0441172717", "isbn13": "9780441172719", "authors": [{"author_id": "7", "role": ""}], "popular_shelves": [{"count": "3", "name": "sci-fi"}, {"count": "9", "name": "to-read"}], "publication_year": "2006", "description": "Desert."},
        {"book_id": "2", "title": "Dune", "format": "Paperback", "isbn": "", "authors": []},
        {"book_id": "3", "title": "Emma", "format": "MP3 CD"},
        {"book_id": "4", "title": "Tape", "format": "Audio Cassette"},
        {"book_id": "5", "title": "", "format": "Hardcover"},
        {"book_id": "1", "title": "Dune again"},
    ]
    jsonl(tmp_path / "authors.json.gz", [{"author_id": "7", "name": "Frank Herbert"}])
    res = pf.load_goodreads_books(jsonl(tmp_path / "goodreads_books.json.gz", books), authors_path=tmp_path / "authors.json.gz")
    rep = res.files["goodreads_books.json.gz"]
    rep.check("books")
    assert rep.dropped == {"missing_value": 1, "duplicate": 1}
    it = res.items.set_index("item")
    assert it["is_audiobook"].to_dict() == {"1": True, "2": False, "3": True, "4": True}
    assert it.loc["1", "creator"] == "Frank Herbert" and it.loc["1", "tags"] == "to-read|sci-fi"
    assert it.loc["1", "isbn"] == "0441172717" and it.loc["1", "year"] == 2006
    assert not pf.is_audiobook_format("Kindle Edition") and pf.is_audiobook_format("Audio CD")


def test_missing_download_is_clear_error(tmp_path):
    with pytest.raises(LoaderError, match="not found; download it"):
        pf.load_lastfm_360k(tmp_path / "absent.tsv")
