"""Bad input never passes silently and never destroys good output (data stages).

Each case starts from a good ``cdrbench prepare`` (or scenario / embed / pretrain)
output built from small fixture raw files pinned in a fixture ``sources.tsv``, breaks
one input the way it happens in practice, and asserts three things through the real
CLI: exit code 1 (130 for an interruption), a single ``error: <line>`` naming the file
and what was expected, and the previous output byte for byte as it was (no temp
leftovers either).

For the loader checks the broken file is re-pinned in ``sources.tsv`` (as if a user
had swapped in another file and updated the table), so the loader's own header,
encoding and kept-share checks decide; :func:`test_changed_raw_file_fails_its_checksum`
shows the checksum check that comes first when the table is not updated.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.config import paths
from benchmark.data import fetch
from params_text import ci_params_text

DOUBAN, BX, CIAO = "douban-gadtcdr", "bookcrossing-subset", "ciao-tang"


# ---------------------------------------------------------------- fixture raw files


def douban_files(n_users: int = 30, seed: int = 0) -> dict[str, bytes]:
    """Headerless ``user \\t item \\t rating``; every user rates 4 music and 4 books."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, n_items in (("music_ratings.dat", 20), ("book_ratings.dat", 25)):
        lines = []
        for u in range(1, n_users + 1):
            for i in rng.choice(np.arange(1, n_items + 1), size=4, replace=False):
                lines.append(f"{u}\t{i}\t{rng.integers(1, 6) if name[0] == 'm' else rng.choice([2, 4, 5])}")
        out[name] = ("\n".join(lines) + "\n").encode()
    return out


def bookcrossing_files(n_books: int = 30, n_users: int = 20) -> dict[str, bytes]:
    books = ["ISBN,Book-Title,Book-Author,Year-Of-Publication,Book-Publisher"]
    books += [f"00000000{b:02d},Title {b},Author {b % 7},{1990 + b},Pub" for b in range(n_books)]
    ratings = ["User-ID,ISBN,Book-Rating"] + [f"{u},00000000{(u * 3 + k) % n_books:02d},{(u + k) % 11}" for u in range(1, n_users + 1) for k in range(3)]
    users = ["User-ID,User-City,User-State,User-Country,User-Age"] + [f'{u},city,state," country""",{20 + u}' for u in range(1, n_users + 1)]
    return {n: ("\n".join(rows) + "\n").encode() for n, rows in (("BX-Books.csv", books), ("BX-Ratings.csv", ratings), ("BX-Users.csv", users))}


def ciao_files(n_users: int = 8) -> dict[str, bytes]:
    rows = [[u, 10 + (u + k) % 5, (2, 4)[k % 2], 1 + (u + k) % 5, 3, 1000 * u + k] for u in range(1, n_users + 1) for k in range(4)]
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"rating": np.array(rows, dtype=np.float64)})
    return {"rating_with_timestamp.mat": buf.getvalue(), "catalog_ciao.txt": b"1 DVDs\r\n2 Books\r\n4 Music\r\n"}


FIXTURES: dict[str, Callable[[], dict[str, bytes]]] = {DOUBAN: douban_files, BX: bookcrossing_files, CIAO: ciao_files}


def write_raw(raw: Path, source: str, files: dict[str, bytes]) -> None:
    (raw / source).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (raw / source / name).write_bytes(data)


def pin(raw: Path, tsv: Path) -> None:
    """A sources.tsv pinning the sha256 of every raw file now present (directories keep
    their earlier row: a directory is not a file to pin)."""
    old = {}
    if tsv.exists():
        old = {r["file"]: r for r in fetch.sources_table(tsv).to_dict("records")}
    rows = dict(old)
    for f in sorted(raw.glob("*/*")):
        key = f"raw/{f.parent.name}/{f.name}"
        if f.is_file():
            data = f.read_bytes()
            rows[key] = {"source": f.parent.name, "file": key, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "licence": "test"}
    lines = ["\t".join(fetch.TSV_COLUMNS)] + ["\t".join(str(r.get(c, "")) for c in fetch.TSV_COLUMNS) for _, r in sorted(rows.items())]
    tsv.write_text("\n".join(lines) + "\n")


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, plus every name beside it (temp leftovers)."""
    out = {f"ls:{p.name}": "" for p in folder.parent.iterdir()} if folder.parent.exists() else {}
    out.update({str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()})
    return out


def cdr(*args: str):
    return CliRunner().invoke(app, list(args))


def refused(res, code: int = 1) -> str:
    """The one line of a refused command (exit ``code``, nothing else on stderr)."""
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0].removeprefix("error: ")


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """The stage paths under ``tmp_path``; raw fixtures of three sources, pinned."""
    for name in ("RAW", "PREPARED", "SCENARIOS", "EMBED", "PRETRAIN"):
        monkeypatch.setattr(paths, name, tmp_path / "data" / name.lower())
    monkeypatch.setattr(paths, "DATASET_CARDS", tmp_path / "datasets")
    monkeypatch.setattr(paths, "SOURCES_TSV", tmp_path / "datasets" / "sources.tsv")
    paths.DATASET_CARDS.mkdir()
    for source, make in FIXTURES.items():
        write_raw(paths.RAW, source, make())
    pin(paths.RAW, paths.SOURCES_TSV)
    monkeypatch.setenv("CDRBENCH_EMBED_CACHE", str(tmp_path / "cache"))
    return tmp_path


def good_prepare(source: str) -> dict[str, str]:
    res = cdr("prepare", source)
    assert res.exit_code == 0, res.output
    return snapshot(paths.PREPARED / source)


# ---------------------------------------------------------------- prepare: files the loader cannot read


def _lines(f: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return lambda b: "".join(f(line) + "\n" for line in b.decode().splitlines()).encode()


def _bx_semicolons(b: bytes) -> bytes:  # the original Book-Crossing dump: ';'-separated, every field quoted
    rows = [line.split(",") for line in b.decode().splitlines()]
    rows[0] = ["User-ID", "ISBN", "Book-Rating"]
    return "".join(";".join(f'"{x}"' for x in r) + "\n" for r in rows).encode()


def _swap_bx(line: str) -> str:
    u, i, r = line.split(",")
    return ",".join((i, u, r))


def _mostly_garbage(b: bytes) -> bytes:
    lines = b.decode().splitlines()
    return ("\n".join(lines[:5] + ["x\ty\tz"] * (len(lines) - 5)) + "\n").encode()


def _swap_item_rating(line: str) -> str:  # numbers still, so only the kept share can tell
    u, i, r = line.split("\t")
    return "\t".join((u, r, i))


class Case(NamedTuple):
    source: str
    file: str
    mutate: Callable[[bytes], bytes]
    message: str


CASES = {
    "appended-column": Case(DOUBAN, "music_ratings.dat", _lines(lambda l: l + "\t1"),
        "douban-gadtcdr/music_ratings.dat: expected 3 tab-separated columns ['user', 'item', 'rating']; the first data row has 4: ['1', '6', '1', '1']"),
    "missing-column": Case(DOUBAN, "music_ratings.dat", _lines(lambda l: l.rsplit("\t", 1)[0]),
        "douban-gadtcdr/music_ratings.dat: expected 3 tab-separated columns ['user', 'item', 'rating']; the first data row has 2"),
    "header-only-headerless-file": Case(DOUBAN, "music_ratings.dat", lambda b: b"user\titem\trating\n",
        "douban-gadtcdr/music_ratings.dat: the first data row ['user', 'item', 'rating'] does not fit the columns ['user', 'item', 'rating'] (user, item, rating not numeric)"),
    "empty-headerless-file": Case(DOUBAN, "book_ratings.dat", lambda b: b"",
        "douban-gadtcdr/book_ratings.dat: the file is empty; expected rows of ['user', 'item', 'rating']"),
    "utf16": Case(DOUBAN, "music_ratings.dat", lambda b: b.decode().encode("utf-16"),
        "douban-gadtcdr/music_ratings.dat: the file is UTF-16-LE (byte-order mark); expected UTF-8 text"),
    "utf16-without-bom": Case(DOUBAN, "music_ratings.dat", lambda b: b.decode().encode("utf-16-le"),
        "douban-gadtcdr/music_ratings.dat: the file contains NUL bytes"),
    "kept-share-below-threshold": Case(DOUBAN, "music_ratings.dat", _mostly_garbage,
        "douban-gadtcdr/music_ratings.dat: only 5 of 120 rows kept (4.2%; min_kept_share is 0.5); most common drop reason: not_a_number (115 rows)"),
    "swapped-columns-headerless": Case(DOUBAN, "music_ratings.dat", _lines(_swap_item_rating),
        "douban-gadtcdr/music_ratings.dat: only 21 of 120 rows kept (18.1% of the 116 that are not duplicates"),
    "extra-column": Case(BX, "BX-Ratings.csv", _lines(lambda l: l + ",x"),
        "bookcrossing-subset/BX-Ratings.csv: header ['User-ID', 'ISBN', 'Book-Rating', 'x'] does not match the expected columns ['User-ID', 'ISBN', 'Book-Rating']"),
    "missing-column-with-header": Case(BX, "BX-Ratings.csv", _lines(lambda l: l.rsplit(",", 1)[0]),
        "bookcrossing-subset/BX-Ratings.csv: header ['User-ID', 'ISBN'] does not match the expected columns ['User-ID', 'ISBN', 'Book-Rating']"),
    "swapped-columns": Case(BX, "BX-Ratings.csv", _lines(_swap_bx),
        "bookcrossing-subset/BX-Ratings.csv: header ['ISBN', 'User-ID', 'Book-Rating'] does not match the expected columns ['User-ID', 'ISBN', 'Book-Rating']"),
    "original-semicolon-format": Case(BX, "BX-Ratings.csv", _bx_semicolons,
        "does not match the expected columns ['User-ID', 'ISBN', 'Book-Rating'] (it looks semicolon-separated; expected comma)"),
    "header-only": Case(BX, "BX-Ratings.csv", lambda b: b.splitlines(keepends=True)[0],
        "bookcrossing-subset/BX-Ratings.csv: no data rows (empty or header-only file)"),
    "empty": Case(BX, "BX-Books.csv", lambda b: b"",
        "bookcrossing-subset/BX-Books.csv: the file is empty; expected a header row ['ISBN', 'Book-Title', "),
    "truncated-mat": Case(CIAO, "rating_with_timestamp.mat", lambda b: b[: len(b) // 2],
        "ciao-tang/rating_with_timestamp.mat: not a readable MATLAB .mat file ("),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_prepare_refuses_a_file_it_cannot_read_and_keeps_the_good_output(repo, case):
    before = good_prepare(case.source)
    path = paths.RAW / case.source / case.file
    path.write_bytes(case.mutate(path.read_bytes()))
    pin(paths.RAW, paths.SOURCES_TSV)
    msg = refused(cdr("prepare", case.source))
    assert case.message in msg, msg
    assert snapshot(paths.PREPARED / case.source) == before


def test_kept_share_threshold_is_the_prepare_param(repo, tmp_path):
    """Swapped numeric columns pass the first-row check; the kept share catches them,
    at the threshold params.yaml sets (here lowered until the file is accepted)."""
    good_prepare(DOUBAN)
    path = paths.RAW / DOUBAN / "music_ratings.dat"
    path.write_bytes(CASES["swapped-columns-headerless"].mutate(path.read_bytes()))
    pin(paths.RAW, paths.SOURCES_TSV)
    assert refused(cdr("prepare", DOUBAN)).endswith("min_kept_share is 0.5); most common drop reason: out_of_range (95 rows)")
    params = tmp_path / "params.yaml"
    params.write_text(ci_params_text().replace("min_kept_share: 0.5", "min_kept_share: 0.15"))
    assert cdr("prepare", DOUBAN, "--params", str(params)).exit_code == 0
    params.write_text(ci_params_text().replace("min_kept_share: 0.5", "min_kept_share: 0"))
    assert refused(cdr("prepare", DOUBAN, "--params", str(params))).startswith("params.yaml: prepare.min_kept_share: Input should be greater than 0")


def test_changed_raw_file_fails_its_checksum(repo):
    before = good_prepare(DOUBAN)
    path = paths.RAW / DOUBAN / "music_ratings.dat"
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(_lines(lambda l: l + "\t1")(path.read_bytes()))
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    msg = refused(cdr("prepare", DOUBAN))
    assert msg == (f"douban-gadtcdr: raw/douban-gadtcdr/music_ratings.dat: checksum mismatch: expected {good[:12]}..., got {got[:12]}... "
                   "(datasets/sources.tsv); the raw file changed after fetch: run `cdrbench fetch douban-gadtcdr`")
    assert snapshot(paths.PREPARED / DOUBAN) == before


def test_truncated_mat_fails_its_checksum_before_scipy_sees_it(repo):
    before = good_prepare(CIAO)
    path = paths.RAW / CIAO / "rating_with_timestamp.mat"
    path.write_bytes(path.read_bytes()[:1000])
    assert "rating_with_timestamp.mat: checksum mismatch" in refused(cdr("prepare", CIAO))
    assert snapshot(paths.PREPARED / CIAO) == before


def test_directory_where_a_raw_file_should_be(repo):
    before = good_prepare(DOUBAN)
    path = paths.RAW / DOUBAN / "book_ratings.dat"
    path.unlink()
    path.mkdir()
    msg = refused(cdr("prepare", DOUBAN))
    assert msg == f"douban-gadtcdr: raw/douban-gadtcdr/book_ratings.dat: {path} is a directory where the raw file should be; remove it and run the fetch stage"
    assert snapshot(paths.PREPARED / DOUBAN) == before
    paths.SOURCES_TSV.unlink()  # the library without a table to verify against: the loader says the same
    from benchmark.data.loaders import LoaderError, load_source

    with pytest.raises(LoaderError, match=f"douban-gadtcdr: {path} is a directory where a raw file should be"):
        load_source(DOUBAN, paths.RAW)


def test_fetch_refuses_a_directory_in_place_of_a_raw_file(repo, monkeypatch):
    monkeypatch.setenv("CDRBENCH_OFFLINE", "1")
    path = paths.RAW / DOUBAN / "book_ratings.dat"
    path.unlink()
    path.mkdir()
    assert refused(cdr("fetch", DOUBAN, "--mirror", str(repo / "nowhere"))).endswith("book_ratings.dat is a directory where the raw file should be; remove it and fetch again")
    assert path.is_dir()


def test_unknown_source_lists_the_valid_ones(repo):
    assert refused(cdr("prepare", "nosuch")) == (
        "unknown source 'nosuch'; known: apple-podcast-reviews, apple-podcast-subs, audible-catalog, bookcrossing-subset, "
        "ciao-tang, douban-gadtcdr, epinions-tang, goodbooks-10k, lastfm-hetrec2k, librivox-catalog")
    assert not paths.PREPARED.exists()


# ---------------------------------------------------------------- later stages: interrupted runs keep the old output


def _scenario_outputs(name: str) -> dict[str, str]:
    return {**{f"scenario/{k}": v for k, v in snapshot(paths.SCENARIOS / name).items()}, **{f"card/{k}": v for k, v in snapshot(paths.DATASET_CARDS / name).items()}}


def _interrupt(monkeypatch, target: str) -> None:
    """Replace the writer ``target`` by one killed (Ctrl-C) half-way through writing the
    path it was given: a half-written file where the real writer would put one."""

    def half_written(path, *a, **k):
        path = Path(path)
        if path.suffix:
            path.write_bytes(b"half-written")
        raise KeyboardInterrupt

    monkeypatch.setattr(target, half_written)


@pytest.fixture
def built(repo) -> str:
    good_prepare(DOUBAN)
    res = cdr("scenario", "douban-m2b")
    assert res.exit_code == 0, res.output
    return "douban-m2b"


def test_interrupted_scenario_keeps_folder_and_git_tracked_card(built, monkeypatch):
    before = _scenario_outputs(built)
    assert {"card/CARD.md", "card/card.json", "scenario/meta.json", "scenario/recbole/douban-m2b/douban-m2b.inter"} <= set(before)
    _interrupt(monkeypatch, "benchmark.scenarios.write_recbole")  # mid-write: parquet tables already written
    res = cdr("scenario", built)
    assert res.exit_code == 130 and isinstance(res.exception, SystemExit)
    assert _scenario_outputs(built) == before
    monkeypatch.undo()


def test_rebuilt_scenario_is_byte_identical(built):
    before = _scenario_outputs(built)
    assert cdr("scenario", built).exit_code == 0
    assert _scenario_outputs(built) == before


@pytest.mark.parametrize("stage, target", [("embed", "benchmark.features.embed.write_vectors"), ("pretrain", "benchmark.features.pretrain.write_vectors")])
def test_interrupted_feature_stage_keeps_its_output(built, monkeypatch, stage, target):
    assert cdr(stage, built).exit_code == 0
    out = getattr(paths, stage.upper()) / built
    before = snapshot(out)
    assert "info.json" in before
    _interrupt(monkeypatch, target)
    assert cdr(stage, built).exit_code == 130
    assert snapshot(out) == before


def test_stage_on_an_unbuilt_scenario_is_one_line(repo):
    msg = refused(cdr("pretrain", "douban-m2b"))
    assert msg == f"scenario 'douban-m2b' is not built ({paths.SCENARIOS / 'douban-m2b'} has no meta.json): run `cdrbench scenario douban-m2b` first"
