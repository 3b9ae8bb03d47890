"""Fetch stage on tiny fixture files and a fixture sources.tsv (no real data, no network)."""

from __future__ import annotations

import hashlib
import io
import urllib.error
from pathlib import Path

import pytest

from benchmark.data import fetch
from benchmark.data.fetch import FetchError, fetch_source, sources_table, verify_all

GOOD = b"user\titem\n1\t2\n"
PICKLE = b"\x80\x04not-really-a-pickle"
CSV = b"itunes_id,title\n1,a\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def write_tsv(path: Path, rows: list[dict]) -> Path:
    cols = fetch.TSV_COLUMNS
    lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def row(source: str, name: str, content: bytes, upstream: bytes | None = None) -> dict:
    return {
        "source": source,
        "file": f"raw/{source}/{name}",
        "bytes": len(content),
        "sha256": sha(content),
        "url": f"https://example.invalid/{source}/{name}",
        "upstream_sha256": sha(upstream if upstream is not None else content),
        "licence": "test",
    }


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)
    monkeypatch.delenv(fetch.ENV_OFFLINE, raising=False)


@pytest.fixture
def no_network(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", refuse)
    return calls


def serve(monkeypatch, payload: bytes):
    class Resp(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: Resp(payload))


def make_mirror(tmp_path: Path, source: str, name: str, content: bytes) -> Path:
    mirror = tmp_path / "mirror"
    (mirror / "raw" / source).mkdir(parents=True)
    (mirror / "raw" / source / name).write_bytes(content)
    return mirror


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_mirror_copy_verifies(tmp_path, no_network):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    mirror = make_mirror(tmp_path, "src", "a.dat", GOOD)
    out = fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert out == [tmp_path / "raw" / "src" / "a.dat"]
    assert out[0].read_bytes() == GOOD
    assert len(no_network) == 1  # the URL was tried first and failed
    assert verify_all(tmp_path / "raw", tsv).keys() == {"src"}


def test_mirror_may_point_at_raw_folder_and_env_overrides_param(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    mirror = make_mirror(tmp_path, "src", "a.dat", GOOD)
    monkeypatch.setenv(fetch.ENV_MIRROR, str(mirror / "raw"))
    out = fetch_source("src", tmp_path / "raw", mirror=tmp_path / "nowhere", sources_tsv=tsv, allow_network=False)
    assert out[0].read_bytes() == GOOD


def test_checksum_mismatch_is_error_and_leaves_nothing(tmp_path, no_network):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    mirror = make_mirror(tmp_path, "src", "a.dat", GOOD + b"tampered")
    with pytest.raises(FetchError, match=r"raw/src/a\.dat: checksum mismatch.*expected " + sha(GOOD)) as exc:
        fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert "\n" not in str(exc.value)
    assert leftovers(tmp_path / "raw") == []


def test_mirror_missing_file(tmp_path, no_network):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    mirror = make_mirror(tmp_path, "src", "other.dat", GOOD)
    with pytest.raises(FetchError, match=r"raw/src/a\.dat: .*mirror lacks"):
        fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert leftovers(tmp_path / "raw") == []


def test_no_network_and_no_mirror(tmp_path, no_network):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    with pytest.raises(FetchError, match="no mirror set.*CDRBENCH_DATA_MIRROR"):
        fetch_source("src", tmp_path / "raw", sources_tsv=tsv)


def test_offline_is_detected_once_per_source(tmp_path, no_network):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD), row("src", "b.dat", CSV)])
    mirror = make_mirror(tmp_path, "src", "a.dat", GOOD)
    (mirror / "raw" / "src" / "b.dat").write_bytes(CSV)
    fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert len(no_network) == 1  # no second timeout for the second file


def test_network_disabled_never_calls_urlopen(tmp_path, no_network, monkeypatch):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    mirror = make_mirror(tmp_path, "src", "a.dat", GOOD)
    fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv, allow_network=False)
    monkeypatch.setenv(fetch.ENV_OFFLINE, "1")
    (tmp_path / "raw" / "src" / "a.dat").unlink()
    fetch_source("src", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert no_network == []


def test_download_verified_and_bad_existing_file_replaced(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    dest = tmp_path / "raw" / "src" / "a.dat"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"stale")
    serve(monkeypatch, GOOD)
    fetch_source("src", tmp_path / "raw", sources_tsv=tsv)
    assert dest.read_bytes() == GOOD
    assert leftovers(tmp_path / "raw") == ["a.dat"]


def test_download_with_wrong_bytes_is_error(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    serve(monkeypatch, b"garbage")
    with pytest.raises(FetchError, match="checksum mismatch after download"):
        fetch_source("src", tmp_path / "raw", sources_tsv=tsv)
    assert leftovers(tmp_path / "raw") == []


def test_upstream_pickle_is_never_kept(tmp_path, monkeypatch):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("pods", "ratings.csv", CSV, upstream=PICKLE)])
    serve(monkeypatch, PICKLE)
    with pytest.raises(FetchError, match="pickle.*never unpickled.*CDRBENCH_DATA_MIRROR"):
        fetch_source("pods", tmp_path / "raw", sources_tsv=tsv)
    assert leftovers(tmp_path / "raw") == []
    # with a mirror the CSV conversion is used instead
    mirror = make_mirror(tmp_path, "pods", "ratings.csv", CSV)
    out = fetch_source("pods", tmp_path / "raw", mirror=mirror, sources_tsv=tsv)
    assert out[0].read_bytes() == CSV


def test_verify_all_names_bad_file_and_unknown_source(tmp_path):
    tsv = write_tsv(tmp_path / "sources.tsv", [row("src", "a.dat", GOOD)])
    with pytest.raises(FetchError, match=r"raw/src/a\.dat: missing"):
        verify_all(tmp_path / "raw", tsv)
    (tmp_path / "raw" / "src").mkdir(parents=True)
    (tmp_path / "raw" / "src" / "a.dat").write_bytes(b"x")
    with pytest.raises(FetchError, match="checksum mismatch"):
        verify_all(tmp_path / "raw", tsv)
    with pytest.raises(FetchError, match="unknown source 'nope'"):
        fetch_source("nope", tmp_path / "raw", sources_tsv=tsv)


def test_repository_sources_table_is_well_formed():
    table = sources_table()
    assert table["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert table["file"].str.startswith("raw/").all()
    assert (table["file"].str.split("/").str[1] == table["source"]).all()
