"""Fetch stage (DESIGN section 2): put every raw file of a source under ``data/raw``.

Every file listed in ``datasets/sources.tsv`` has a pinned sha256, so the benchmark is
reproducible only if the bytes are exactly those. For each file this module:

1. keeps it when it is already present with the right checksum;
2. otherwise downloads it from its pinned URL (short timeout, so an offline machine
   fails fast) into a temporary file beside the destination;
3. otherwise copies it from a local mirror folder with the same ``raw/<source>/<file>``
   layout (param ``fetch.mirror``; the env var ``CDRBENCH_DATA_MIRROR`` overrides it);

and verifies the checksum before an atomic rename, so the destination never holds a
partial or unverified file. A mismatch is a hard error naming the file. The prepare
stage re-checks the same table (:func:`verify_source`) before it parses anything, since
files under ``data/raw`` can change after fetch (an edit, a truncated copy).

The two ``apple-podcast-reviews`` files are CSV conversions of upstream pandas pickles:
their URL serves the pickle (``upstream_sha256``). Unpickling downloaded data can
execute arbitrary code and a pickle cannot be converted without unpickling it, so a
download that matches only the upstream checksum is verified, deleted, and reported as
a :class:`FetchError` telling the user to use the mirror.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from benchmark.config import paths

ENV_MIRROR = "CDRBENCH_DATA_MIRROR"
ENV_OFFLINE = "CDRBENCH_OFFLINE"
TIMEOUT_S = 10.0
CHUNK = 1 << 20
TSV_COLUMNS = ["source", "file", "bytes", "sha256", "repo", "commit", "path", "url", "upstream_sha256", "licence"]


class FetchError(RuntimeError):
    """A raw file could not be put in place with the pinned checksum (one-line message)."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sources_table(sources_tsv: Path = paths.SOURCES_TSV) -> pd.DataFrame:
    """The provenance table (one row per raw file), with its columns checked."""
    sources_tsv = Path(sources_tsv)
    if not sources_tsv.exists():
        raise FetchError(f"sources table {sources_tsv} not found; it ships with the repository (datasets/sources.tsv)")
    df = pd.read_csv(sources_tsv, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in TSV_COLUMNS if c not in df.columns]
    if missing:
        raise FetchError(f"{sources_tsv}: missing columns {missing}")
    df["bytes"] = pd.to_numeric(df["bytes"], errors="coerce").astype("Int64")
    return df


def _mirror_raw(mirror: Path | str | None) -> Path | None:
    """The mirror's ``raw`` folder: env var first, then the param; accepts the folder
    containing ``raw/`` or ``raw/`` itself."""
    value = os.environ.get(ENV_MIRROR) or (str(mirror) if mirror is not None else None)
    if not value:
        return None
    root = Path(value).expanduser()
    if (root / "raw").is_dir():
        return root / "raw"
    return root


_OFFLINE_VALUES = {"1": True, "true": True, "yes": True, "on": True, "": False, "0": False, "false": False, "no": False, "off": False}


def offline_from_env() -> bool:
    """``CDRBENCH_OFFLINE``: 1/true/yes/on skip the download, empty/0/false/no/off do
    not (any case); anything else is an error rather than a guess."""
    raw = os.environ.get(ENV_OFFLINE, "")
    try:
        return _OFFLINE_VALUES[raw.strip().lower()]
    except KeyError:
        raise FetchError(f"{ENV_OFFLINE}={raw!r}: expected 1/true/yes/on (offline) or 0/false/no/off or empty (online)") from None


def _network_allowed(allow_network: bool) -> bool:
    offline = offline_from_env()  # checked even when the caller disables the network: a typo is never silent
    return allow_network and not offline


def _download(url: str, tmp: Path, name: str, expected_bytes: int | None) -> None:
    """Stream ``url`` into ``tmp``; raises OSError/URLError on any network problem."""
    req = urllib.request.Request(url, headers={"User-Agent": "cdrbench-fetch"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, open(tmp, "wb") as out:
        total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        total = int(total) if total and str(total).isdigit() else expected_bytes
        with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar:
            for block in iter(lambda: resp.read(CHUNK), b""):
                out.write(block)
                bar.update(len(block))


def _fetch_one(row: pd.Series, dest: Path, mirror_raw: Path | None, network_state: dict) -> Path:
    name = dest.name
    expected = row["sha256"].strip().lower()
    upstream = (row.get("upstream_sha256") or "").strip().lower()
    if dest.is_dir():
        raise FetchError(f"{row['file']}: {dest} is a directory where the raw file should be; remove it and fetch again")
    if dest.exists():
        if sha256_of(dest) == expected:
            return dest
        dest.unlink()  # wrong bytes from an earlier run: replace, never trust
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a raw file is ordinary data
    try:
        net_problem = network_state["why"]
        if not network_state["down"] and row.get("url"):
            try:
                _download(row["url"], tmp, name, row["bytes"] if pd.notna(row["bytes"]) else None)
                got = sha256_of(tmp)
                if got == expected:
                    os.replace(tmp, dest)
                    return dest
                if not (upstream and upstream != expected and got == upstream):
                    raise FetchError(
                        f"{row['file']}: checksum mismatch after download from {row['url']}: expected {expected}, got {got}"
                    )
                # A verified upstream pickle: never unpickled (that can run arbitrary code),
                # so the CSV conversion has to come from the mirror.
                tmp.unlink()
                if mirror_raw is None:
                    raise FetchError(
                        f"{row['file']}: the URL serves the upstream pandas pickle (sha256 verified), which is never "
                        f"unpickled for safety; set {ENV_MIRROR} to a mirror holding the CSV conversion"
                    )
                net_problem = "the URL serves the upstream pickle (never unpickled)"
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                net_problem = f"download failed ({type(exc).__name__}: {exc})".replace("\n", " ")
                if not isinstance(exc, urllib.error.HTTPError):
                    # offline: do not wait one timeout per file for the rest of the source
                    network_state.update(down=True, why=f"network unreachable earlier ({net_problem})")
        if mirror_raw is None:
            raise FetchError(f"{row['file']}: {net_problem} and no mirror set; set {ENV_MIRROR} or params fetch.mirror to a folder holding raw/<source>/<file>")
        src = mirror_raw / row["source"] / name
        if not src.is_file():
            raise FetchError(f"{row['file']}: {net_problem} and the mirror lacks {src}; put the file there or fix {ENV_MIRROR}")
        shutil.copyfile(src, tmp)
        got = sha256_of(tmp)
        if got != expected:
            raise FetchError(f"{row['file']}: checksum mismatch for mirror copy {src}: expected {expected}, got {got}")
        os.replace(tmp, dest)
        return dest
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch_source(
    source: str,
    dest_root: Path = paths.RAW,
    mirror: Path | None = None,
    sources_tsv: Path = paths.SOURCES_TSV,
    allow_network: bool = True,
) -> list[Path]:
    """Put every file of ``source`` at ``dest_root/<source>/<name>`` with a verified sha256."""
    table = sources_table(sources_tsv)
    rows = table[table["source"] == source]
    if rows.empty:
        known = sorted(table["source"].unique())
        raise FetchError(f"unknown source {source!r}; known: {', '.join(known)}")
    mirror_raw = _mirror_raw(mirror)
    network_state = {"down": not _network_allowed(allow_network), "why": "network disabled (allow_network=False or CDRBENCH_OFFLINE=1)"}
    out = []
    for _, row in rows.iterrows():
        dest = Path(dest_root) / source / Path(row["file"]).name
        out.append(_fetch_one(row, dest, mirror_raw, network_state))
    return out


def _verified(row: pd.Series, dest_root: Path, missing_ok: bool) -> str | None:
    """sha256 of the fetched copy of ``row``'s file, checked against the table; None when
    the file is absent and ``missing_ok``. Messages give 12-character prefixes."""
    dest = Path(dest_root) / row["source"] / Path(row["file"]).name
    if dest.is_dir():
        raise FetchError(f"{row['file']}: {dest} is a directory where the raw file should be; remove it and run the fetch stage")
    if not dest.is_file():
        if missing_ok:
            return None
        raise FetchError(f"{row['file']}: missing under {dest_root}; run the fetch stage")
    got, expected = sha256_of(dest), row["sha256"].strip().lower()
    if got != expected:
        raise FetchError(
            f"{row['file']}: checksum mismatch: expected {expected[:12]}..., got {got[:12]}... (datasets/sources.tsv); "
            f"the raw file changed after fetch: run `cdrbench fetch {row['source']}`"
        )
    return got


def verify_source(source: str, dest_root: Path = paths.RAW, sources_tsv: Path = paths.SOURCES_TSV) -> list[Path]:
    """Check the present files of ``source`` against the table; returns the verified paths.

    Absent files are left to the loader (it names the ones it needs; a few are
    optional). Raises :class:`FetchError` for an unknown source or the first mismatch.
    """
    table = sources_table(sources_tsv)
    rows = table[table["source"] == source]
    if rows.empty:
        raise FetchError(f"{source}: no rows in {Path(sources_tsv).name}, so its raw files cannot be verified")
    return [Path(dest_root) / source / Path(r["file"]).name for _, r in rows.iterrows() if _verified(r, dest_root, missing_ok=True)]


def verify_all(dest_root: Path = paths.RAW, sources_tsv: Path = paths.SOURCES_TSV) -> dict[str, str]:
    """Check every fetched file; returns ``{source: digest}`` (sha256 over the source's
    file checksums in table order), usable as a DVC-friendly fingerprint.

    Raises :class:`FetchError` naming the first missing or mismatching file.
    """
    table = sources_table(sources_tsv)
    out: dict[str, str] = {}
    for source, rows in table.groupby("source", sort=True):
        h = hashlib.sha256()
        for _, row in rows.iterrows():
            h.update(f"{Path(row['file']).name}\t{_verified(row, dest_root, missing_ok=False)}\n".encode())
        out[source] = h.hexdigest()
    return out
