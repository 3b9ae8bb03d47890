"""Any bytes in a raw file: a table whose accounting adds up, or one line saying why not.

Hypothesis mutates the bytes of one small, valid raw file of three loaders with
different formats (Douban: headerless TSV; Last.fm: TSV with header; Book-Crossing:
quoted CSV with header and a latin-1 fallback), or replaces them with arbitrary bytes.
The other files of the source stay valid. Whatever the bytes, the loader either
returns a result whose every file kept rows, kept at least the threshold share and
accounts for every row read (read == kept + dropped), with a non-empty interactions
table that passes prepare's table checks; or raises a LoaderError with one line of
message. Never another exception, never an empty table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.data.loaders import DEFAULT_MIN_KEPT_SHARE, LoaderError, load_source
from benchmark.data.prepare import _check
from test_bad_input_data import bookcrossing_files, douban_files, write_raw

LASTFM = {
    "artists.dat": b"id\tname\turl\tpictureURL\n1\tA\tu1\tp1\n2\tB\tu2\tp2\n3\tC\tu3\tp3\n",
    "tags.dat": b"tagID\ttagValue\n1\trock\n2\tjazz\n",
    "user_artists.dat": b"userID\tartistID\tweight\n2\t1\t100\n2\t2\t5\n3\t1\t7\n3\t3\t12\n4\t2\t1\n",
    "user_taggedartists.dat": b"userID\tartistID\ttagID\tday\tmonth\tyear\n2\t1\t1\t1\t4\t2009\n3\t2\t2\t1\t4\t2009\n",
}
TARGETS = {  # source -> (its valid files, the file whose bytes are fuzzed)
    "douban-gadtcdr": (lambda: douban_files(n_users=4), "music_ratings.dat"),
    "lastfm-hetrec2k": (lambda: LASTFM, "user_artists.dat"),
    "bookcrossing-subset": (lambda: bookcrossing_files(n_books=6, n_users=4), "BX-Ratings.csv"),
}
NASTY = [b"\t", b",", b"\n", b"\r\n", b'"', b";", b"\x00", b"\xff\xfe", b"\xe9", b"\x81", b"-", b"1e400", b"nan", b"99999999999999999999"]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 12))
        ins = draw(st.one_of(st.sampled_from(NASTY), st.binary(max_size=6)))
        data[pos : pos + cut] = ins
    return bytes(data)


def _check_outcome(source: str, root: Path) -> None:
    try:
        res = load_source(source, root)
        _check(res, source, DEFAULT_MIN_KEPT_SHARE)
    except LoaderError as e:
        msg = str(e)
        assert msg.strip() and "\n" not in msg and "\r" not in msg, repr(msg)
        msg.encode("utf-8")  # printable as is: raw undecodable bytes are escaped (repr), never passed through
        return
    assert len(res.interactions) > 0
    for name, rep in res.files.items():
        assert rep.rows_read == rep.rows_kept + sum(rep.dropped.values()), name
        assert rep.rows_kept > 0 and rep.kept_share() >= DEFAULT_MIN_KEPT_SHARE, name


@pytest.mark.parametrize("source", sorted(TARGETS))
def test_any_bytes_give_an_accounted_table_or_one_line(source):
    files, target = TARGETS[source]
    base = files()

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(data=mutated(base[target]))
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            write_raw(Path(tmp), source, {**base, target: data})
            _check_outcome(source, Path(tmp))

    run()


def test_the_fuzzer_sees_both_outcomes():
    """The unmutated files load and an arbitrary byte string is refused, so the
    property above is exercised on both of its branches."""
    for source, (files, target) in TARGETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            write_raw(Path(tmp), source, files())
            assert len(load_source(source, Path(tmp)).interactions) > 0
            write_raw(Path(tmp), source, {target: b"\x00\x01garbage"})
            with pytest.raises(LoaderError):
                load_source(source, Path(tmp))
