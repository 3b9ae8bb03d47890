"""Mirrored-source loaders and prepare_source on small fixtures with the real quirks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from benchmark.data.loaders import LOADERS, LoaderError, isbn, load_source
from benchmark.data.loaders.audible import genres
from benchmark.data.prepare import prepare_source


# The fixtures are deliberately dirty (one row per drop reason beside a few good rows),
# so the tests of row-level accounting lower the kept-share threshold of the loaders.
DIRTY = 0.25


def write(root: Path, source: str, name: str, data: str | bytes) -> Path:
    p = root / source / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return p


def accounted(res) -> None:
    for name, rep in res.files.items():
        rep.check(name)


# ---------------------------------------------------------------- Last.fm
def lastfm_fixture(root: Path) -> None:
    s = "lastfm-hetrec2k"
    write(root, s, "artists.dat", "id\tname\turl\tpictureURL\n1\tMALICE MIZER\tu1\tp1\n2\tBj\u00f6rk\tu2\tp2\n3\tOnly Two\tu3\n")
    tags = "tagID\ttagValue\n1\tmetal\n2\ttropic\u00e1lia\n3\tjazz\n".encode("latin-1")
    write(root, s, "tags.dat", tags)
    write(root, s, "user_artists.dat", "userID\tartistID\tweight\n2\t1\t100\n2\t2\t5\n3\t1\t0\n3\t99\t4\n3\t2\tlots\n2\t1\t7\n")
    write(
        root,
        s,
        "user_taggedartists.dat",
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t1\t1\t1\t4\t2009\n3\t1\t1\t1\t4\t2009\n2\t1\t2\t1\t4\t2009\n2\t2\t2\t1\t4\t2009\n2\t77\t1\t1\t4\t2009\n2\t1\t9\t1\t4\t2009\n",
    )


def test_lastfm_latin1_tags_and_accounting(tmp_path):
    lastfm_fixture(tmp_path)
    res = load_source("lastfm-hetrec2k", tmp_path, DIRTY)
    accounted(res)
    f = res.files
    assert f["tags.dat"].flags["decoded_latin-1"] == 1
    assert f["artists.dat"].dropped["wrong_column_count"] == 1
    ua = f["user_artists.dat"].dropped
    assert ua == {"out_of_range": 1, "unknown_id": 1, "not_a_number": 1, "duplicate": 1}
    assert f["user_taggedartists.dat"].dropped["unknown_id"] == 2  # artist 77, tag 9
    tags = res.extra["artist_tags"]
    assert set(tags["tag"]) == {"metal", "tropic\u00e1lia"}
    assert tags.set_index(["item", "tag"])["count"].to_dict() == {("1", "metal"): 2, ("1", "tropic\u00e1lia"): 1, ("2", "tropic\u00e1lia"): 1}
    items = res.items.set_index("item")
    assert items.loc["1", "tags"] == "metal|tropic\u00e1lia"  # by count
    assert items.loc["2", "title"] == "Bj\u00f6rk"
    inter = res.interactions
    assert inter[["user", "item", "value"]].values.tolist() == [["2", "1", 100.0], ["2", "2", 5.0]]
    assert str(inter["value"].dtype) == "float32" and str(inter["timestamp"].dtype) == "Int64"


def test_prepare_writes_tables_and_report(tmp_path):
    lastfm_fixture(tmp_path / "raw")
    report = prepare_source("lastfm-hetrec2k", tmp_path / "raw", tmp_path / "out", sources_tsv=None, min_kept_share=DIRTY)
    out = tmp_path / "out" / "lastfm-hetrec2k"
    assert sorted(p.name for p in out.iterdir()) == ["artist_tags.parquet", "interactions.parquet", "items.parquet", "report.json"]
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["files"]["user_artists.dat"]["dropped"]["duplicate"] == 1
    assert report["domains"]["music"] == on_disk["domains"]["music"]
    assert on_disk["domains"]["music"]["users"] == 1
    inter = pd.read_parquet(out / "interactions.parquet")
    assert list(inter.columns) == ["user", "item", "domain", "value", "timestamp"]
    first = (out / "interactions.parquet").read_bytes()
    prepare_source("lastfm-hetrec2k", tmp_path / "raw", tmp_path / "out", sources_tsv=None, min_kept_share=DIRTY)
    assert (out / "interactions.parquet").read_bytes() == first  # deterministic rewrite
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["lastfm-hetrec2k"]  # no temp leftovers


def test_missing_raw_file_is_clear_error(tmp_path):
    with pytest.raises(LoaderError, match="run the fetch stage"):
        load_source("douban-gadtcdr", tmp_path)
    with pytest.raises(LoaderError, match="unknown source 'x'; known: apple-podcast-reviews, "):
        load_source("x", tmp_path)


# ---------------------------------------------------------------- Douban
def test_douban_ids_restart_per_domain(tmp_path):
    s = "douban-gadtcdr"
    write(tmp_path, s, "music_ratings.dat", "1\t1\t5\n1\t2\t4\n2\t1\t3\n3\t1\t7\n")
    write(tmp_path, s, "book_ratings.dat", "1\t1\t4\n3\t2\t2\n4\t1\t5\t9\n4\t1\t5\n4\t1\t1\n")
    res = load_source(s, tmp_path)
    accounted(res)
    inter = res.interactions
    assert res.files["music_ratings.dat"].dropped == {"out_of_range": 1}
    assert res.files["book_ratings.dat"].dropped == {"wrong_column_count": 1, "duplicate": 1}
    # item "1" exists in both domains as two different items
    assert set(res.items.loc[res.items["item"] == "1", "domain"]) == {"music", "book"}
    users = {d: set(inter.loc[inter["domain"] == d, "user"]) for d in ("music", "book")}
    assert users["music"] & users["book"] == {"1"}  # user 3's only music rating was out of range
    report = prepare_source(s, tmp_path, tmp_path / "out", sources_tsv=None)
    assert report["users_music_and_book"] == 1


# ---------------------------------------------------------------- Book-Crossing
def test_isbn_normalisation():
    assert isbn.normalise(" 039592720x ") == isbn.normalise("0-395-92720-X") == "039592720X"
    assert isbn.normalise("9780395927205") == "039592720X"  # ISBN-13 -> ISBN-10
    assert isbn.normalise("9790000000001") == "9790000000001"  # 979: no ISBN-10
    assert isbn.normalise("439023483", pad_numeric=True) == "0439023483"
    assert isbn.normalise("439023483") == "439023483"
    assert isbn.to_isbn13("0439023483") == "9780439023481"
    assert isbn.from_scientific13("9.78043902348e+12") == "9780439023481"
    assert isbn.from_scientific13("not a number") == ""


def test_bookcrossing_variants_ranges_and_users(tmp_path):
    s = "bookcrossing-subset"
    write(
        tmp_path,
        s,
        "BX-Books.csv",
        "ISBN,Book-Title,Book-Author,Year-Of-Publication,Book-Publisher\n"
        '039592720X,"Tales, Vol 1",Ann Author,1999,Pub\n'
        "039592720x,Tales dup,Ann Author,1999,Pub\n"
        "0439023483,The Hunger Games,Suzanne Collins,0,Scholastic\n"
        "0000000000,Broken,Row\n",
    )
    write(
        tmp_path,
        s,
        "BX-Ratings.csv",
        "User-ID,ISBN,Book-Rating\n1,039592720x,8\n1,0-395-92720-X,9\n2,0439023483,0\n2,039592720X,11\n3,1234567890,5\n",
    )
    write(
        tmp_path,
        s,
        "BX-Users.csv",
        'User-ID,User-City,User-State,User-Country,User-Age\n1,timmins, ontario," canada""",\n2,weston, ,,"14"""\n3,x, y," usa""",230\n',
    )
    res = load_source(s, tmp_path)
    accounted(res)
    assert res.files["BX-Books.csv"].dropped == {"duplicate": 1, "wrong_column_count": 1}
    assert res.items.set_index("item").loc["039592720X", "title"] == "Tales, Vol 1"
    assert pd.isna(res.items.set_index("item").loc["0439023483", "year"])
    r = res.files["BX-Ratings.csv"]
    assert r.dropped == {"duplicate": 1, "out_of_range": 1, "unknown_id": 1}
    inter = res.interactions.set_index(["user", "item"])["value"]
    assert inter.to_dict() == {("1", "039592720X"): 8.0, ("2", "0439023483"): 0.0}  # 0 = implicit, kept
    users = res.extra["users"].set_index("user")
    assert users.loc["1", "country"] == "canada"
    assert users.loc["2", "age"] == 14 and pd.isna(users.loc["3", "age"])
    assert res.files["BX-Users.csv"].flags["age_out_of_range_set_missing"] == 1


# ---------------------------------------------------------------- goodbooks
def test_goodbooks_isbns_and_tag_vocab(tmp_path):
    s = "goodbooks-10k"
    head = "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,original_publication_year,original_title,title,language_code,average_rating,ratings_count,work_ratings_count,work_text_reviews_count,ratings_1,ratings_2,ratings_3,ratings_4,ratings_5,image_url,small_image_url\n"
    rows = [
        '1,2767052,2767052,1,1,439023483,9.78043902348e+12,Suzanne Collins,2008.0,The Hunger Games,"The Hunger Games (The Hunger Games, #1)",eng,4.3,10,10,1,1,1,1,1,1,x,y',
        "2,3,3,2,1,,9.78043902348e+12,Nobody,,Orig,,eng,4,1,1,1,1,1,1,1,1,x,y",
        "3,4,4,3,1,1,1,too,few",
    ]
    write(tmp_path, s, "books.csv", head + "\n".join(rows) + "\n")
    write(tmp_path, s, "tags.csv", "tag_id,tag_name\n0,-\n1,fantasy\n")
    res = load_source(s, tmp_path)
    accounted(res)
    it = res.items.set_index("item")
    assert it.loc["1", "isbn10"] == "0439023483" and it.loc["1", "isbn13"] == "9780439023481"
    assert it.loc["2", "title"] == "Orig" and it.loc["2", "isbn13"] == "9780439023481"
    assert res.files["books.csv"].dropped == {"wrong_column_count": 1}
    assert len(res.interactions) == 0 and (it["tags"] == "").all()
    write(tmp_path, s, "book_tags.csv", "goodreads_book_id,tag_id,count\n2767052,1,50\n2767052,0,9\n999,1,3\n")
    it = load_source(s, tmp_path).items.set_index("item")
    assert it.loc["1", "tags"] == "fantasy|-"


# ---------------------------------------------------------------- catalogs
def test_librivox_and_audible(tmp_path):
    cat = {
        "books": {
            "id_1": {"title": "Lay", "authors": "491", "genres": "Poetry", "language": "English", "totaltime": "01:00:30", "downloads": 7},
            "id_2": {"title": "", "authors": "491"},
            "id_3": "broken",
            "id_4": {"title": "Orphan", "authors": "9"},
        },
        "authors": {"a491": {"first_name": "Sir Walter", "last_name": "Scott"}},
    }
    write(tmp_path, "librivox-catalog", "db_catalog.json", json.dumps(cat))
    res = load_source("librivox-catalog", tmp_path)
    accounted(res)
    it = res.items.set_index("item")
    assert it.loc["1", ["creator", "tags"]].tolist() == ["Sir Walter Scott", "Poetry"]
    assert it.loc["1", "duration_s"] == 3630 and pd.isna(it.loc["4", "downloads"])
    assert res.files["db_catalog.json"].dropped == {"missing_value": 1, "bad_json": 1}
    assert res.files["db_catalog.json"].flags["unknown_author_id"] == 1

    ranks = ",#1 in Audible Audiobooks & Originals (See Top 100 in Audible Audiobooks & Originals),#1 in Meditation (Audible Audiobooks & Originals),#2 in Society & Culture (Books)"
    assert genres(ranks) == ["Meditation", "Society & Culture"]
    adv = "\ufeffBook Name,Author,Rating,Number of Reviews,Price,Description,Listening Time,Ranks and Genre\n" f'Monk,Jay,4.9,371,100,"Calm, text",10 hours and 54 minutes,"{ranks}"\n'
    write(tmp_path, "audible-catalog", "Audible_Catlog_Advanced_Features.csv", adv)
    write(tmp_path, "audible-catalog", "Audible_Catlog.csv", "Book Name,Author,Rating,Number of Reviews,Price\nMonk,Jay,4.9,313,100\nOther,Ann,4,1,1\n")
    res = load_source("audible-catalog", tmp_path)
    accounted(res)
    assert res.files["Audible_Catlog.csv"].dropped == {"duplicate": 1}
    monk = res.items[res.items["title"] == "Monk"].iloc[0]
    assert monk["description"] == "Calm, text" and monk["tags"] == "Meditation|Society & Culture" and monk["minutes"] == 654


# ---------------------------------------------------------------- Apple podcasts
def apple_fixture(root: Path) -> None:
    write(
        root,
        "apple-podcast-reviews",
        "podcasts.csv",
        "title,producer,genre,description,num_episodes,rating,num_reviews,link,itunes_id\n"
        'Kosmo,Randall,Science,"All, of it",95,4.9,699.0,https://x/id11,11\n'
        "Drilled,CF,News,climate,183,4.6,2100.0,https://x/id22,22\n",
    )
    write(
        root,
        "apple-podcast-reviews",
        "ratings.csv",
        'itunes_id,user,rating,title,review\n11,Jill,5,Awe,"multi\nline"\n11,Jill,4,again,dup\n22,Bob,6,bad,x\n33,Bob,2,ok,x\nabc,Ann,3,x,y\n',
    )


def test_apple_reviews(tmp_path):
    apple_fixture(tmp_path)
    res = load_source("apple-podcast-reviews", tmp_path)
    accounted(res)
    assert res.files["ratings.csv"].dropped == {"duplicate": 1, "out_of_range": 1, "not_a_number": 1}
    assert res.files["ratings.csv"].flags["item_without_metadata"] == 1
    it = res.items.set_index("item")
    assert it.loc["11", "tags"] == "Science" and it.loc["11", "creator"] == "Randall"
    assert not it.loc["33", "has_metadata"] and it.loc["33", "title"] == ""
    assert set(res.interactions["domain"]) == {"podcast"}
    assert res.extra["reviews"].set_index("user").loc["Jill", "review"] == "multi\nline"


def test_apple_subs_maps_titles_to_ids(tmp_path):
    apple_fixture(tmp_path)
    subs = [{"title": "Kosmo", "subs": ["Drilled", "Unknown Show", "Kosmo", "Info Only"]}, {"title": "Empty", "subs": []}, ["bad"]]
    info = [
        {"title": "Info Only", "producer": "P", "genre": "Arts", "description": "d", "link": "https://x/id44"},
        {"title": "", "link": "https://x/id55"},
    ]
    write(tmp_path, "apple-podcast-subs", "podcast_subs.json", json.dumps(subs))
    write(tmp_path, "apple-podcast-subs", "podcast_info.json", json.dumps(info))
    res = load_source("apple-podcast-subs", tmp_path)
    accounted(res)
    cos = res.extra["cosubs"]
    assert cos[["podcast_a", "podcast_b", "rank"]].values.tolist() == [["11", "22", 1], ["11", "Unknown Show", 2], ["11", "44", 4]]
    assert cos["b_mapped"].tolist() == [True, False, True]
    rep = res.files["podcast_subs.json"]
    assert rep.dropped == {"bad_json": 1} and rep.flags["pair_self_dropped"] == 1 and rep.flags["empty_subs_list"] == 1
    assert res.files["podcast_info.json"].dropped == {"missing_value": 1}
    assert res.items["item"].tolist() == ["44"]


def test_apple_subs_needs_reviews_source(tmp_path):
    write(tmp_path, "apple-podcast-subs", "podcast_subs.json", "[]")
    with pytest.raises(LoaderError, match="fetch that source first"):
        load_source("apple-podcast-subs", tmp_path)


def test_every_source_in_table_has_a_loader():
    from benchmark.data.fetch import sources_table

    assert set(sources_table()["source"]) == set(LOADERS)
