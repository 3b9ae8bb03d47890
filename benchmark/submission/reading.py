"""Reading a submission's files without letting them decide how much memory or time we spend.

Why a module of its own: a submission is untrusted input, and the dangerous moment is
parsing, before any check on content can run. A few bytes can expand enormously:

* YAML anchors and aliases (``a: &x [...]``, ``b: [*x, *x, ...]``) nest references so a
  1 KB ``metadata.yaml`` stands for billions of nodes; tags (``!!python/...``, ``!!set``)
  select constructors. Metadata is a flat record of strings and integer lists, so
  neither is ever needed: the event stream is checked first (cheap, no expansion) and
  any anchor, alias, explicit tag or nesting deeper than :data:`MAX_DEPTH` is refused.
  The file itself is capped at :data:`MAX_META_BYTES` (JSON likewise).
* Parquet is compressed: a 2 MB file can hold 100M constant rows (4.4 GB in pandas). The
  footer states the row count and the uncompressed column sizes; both are checked
  against caps *before* any column is read. String columns are read dictionary-encoded
  first, so an id of megabytes repeated on every row is caught at its dictionary
  entry (:data:`MAX_ID_BYTES`) instead of being copied once per row.
* CSV is not compressed (the file size cap covers its bytes), but its rows are counted
  while streaming, so a file of short lines cannot exceed the row cap either.

Every refusal is one line appended to ``problems`` (the caller's
:class:`~benchmark.submission.validate.SubmissionError` style); nothing here raises on
bad input. Limit: the caps trust the parquet footer; a hand-forged file whose page
headers disagree with its footer is beyond this check (run submissions under a memory
limit if that matters).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

MAX_META_BYTES = 64 * 2**10
MAX_DEPTH = 4  # mapping -> list -> scalar is depth 2; a little room, never recursion bombs
MAX_BYTES = 200 * 2**20  # compressed file size, and separately the decompressed column bytes
MAX_ID_BYTES = 512  # longest user or item id (bytes)
MAX_ROW_GROUPS = 10_000
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


def read_capped(path: Path, cap: int, problems: list[str]) -> bytes | None:
    """The file's bytes if it has at most ``cap`` of them (never reads more than cap + 1)."""
    with open(path, "rb") as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        problems.append(f"{path.name}: larger than the {cap // 2**10} KiB limit for metadata")
        return None
    return data


def _yaml_refusal(text: str) -> str | None:
    """Why this YAML is refused (anchor, alias, tag, depth), or None; scans events only."""
    depth = 0
    for ev in yaml.parse(text, Loader=_LOADER):
        line = ev.start_mark.line + 1 if ev.start_mark is not None else "?"
        if isinstance(ev, yaml.AliasEvent):
            return f"YAML alias '*{ev.anchor}' at line {line} is not accepted (no anchors or aliases)"
        if isinstance(ev, _NODE_EVENTS):
            if ev.anchor is not None:
                return f"YAML anchor '&{ev.anchor}' at line {line} is not accepted (no anchors or aliases)"
            if ev.tag is not None:
                return f"YAML tag '{ev.tag}' at line {line} is not accepted (plain values only)"
        if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                return f"nesting deeper than {MAX_DEPTH} levels at line {line} (metadata is a flat record)"
        elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1
    return None


def load_metadata(path: Path, problems: list[str]):
    """Parsed ``metadata.yaml|yml|json``, or None with the reason in ``problems``."""
    data = read_capped(path, MAX_META_BYTES, problems)
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        refusal = _yaml_refusal(text)
        if refusal:
            problems.append(f"{path.name}: {refusal}")
            return None
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - safe loader, and no alias/tag survived the scan
    except (ValueError, yaml.YAMLError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        first = str(e).splitlines()[0] if str(e) else ""
        problems.append(f"{path.name}: cannot be parsed ({type(e).__name__}: {first})")
        return None


def _unreadable(path: Path, e: Exception, problems: list[str]) -> None:
    problems.append(f"{path.name}: cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")


def _too_many_rows(path: Path, n: int, row_cap: int, problems: list[str]) -> bool:
    if n > row_cap:
        problems.append(f"{path.name}: {n:,} rows, more than the {row_cap:,} this scenario can use "
                        "(2 x test users x max K, plus slack): submit the top-K lists only")
        return True
    return False


def _csv_rows(path: Path) -> int:
    """Data lines of a CSV (newlines after the header), counted in 1 MiB blocks."""
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(2**20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines - 1 + (last != b"\n"))


def read_csv(path: Path, row_cap: int, problems: list[str]) -> pd.DataFrame | None:
    """The CSV as a frame (user and item as strings), after its line count passes the cap."""
    if _too_many_rows(path, _csv_rows(path), row_cap, problems):
        return None
    try:
        return pd.read_csv(path, dtype={"user": str, "item": str}, keep_default_na=False, na_values=[""],
                           compression=None)
    except Exception as e:  # any parser error is the submitter's to fix: report it, do not crash
        _unreadable(path, e, problems)
        return None


def _is_text(t) -> bool:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)


def read_parquet(path: Path, columns: tuple[str, ...], row_cap: int, problems: list[str]) -> pd.DataFrame | None:
    """The ``columns`` of a parquet file, after the footer's row count and sizes pass the caps."""
    try:
        pf = pq.ParquetFile(path)
        md, names = pf.metadata, pf.schema_arrow.names
    except Exception as e:
        _unreadable(path, e, problems)
        return None
    gone = [c for c in columns if c not in names]
    if gone:
        problems.append(f"{path.name}: missing column(s) {gone}; required {list(columns)}, found {names}")
        return None
    if md.num_row_groups > MAX_ROW_GROUPS:
        problems.append(f"{path.name}: {md.num_row_groups:,} row groups, more than {MAX_ROW_GROUPS:,}")
        return None
    if _too_many_rows(path, md.num_rows, row_cap, problems):
        return None
    want = [j for j in range(md.num_columns) if pf.schema.column(j).path.split(".")[0] in columns]  # nested: all leaves
    raw = sum(md.row_group(g).column(j).total_uncompressed_size for g in range(md.num_row_groups) for j in want)
    if raw > MAX_BYTES:
        problems.append(f"{path.name}: {raw / 2**20:,.1f} MB once decompressed, over the {MAX_BYTES / 2**20:,.0f} MB "
                        "limit (submit top-K lists only)")
        return None
    strings = [c for c in columns if _is_text(pf.schema_arrow.field(c).type)]
    try:  # ids come as dictionaries: one copy of each distinct value, whatever the row count
        table = pq.read_table(path, columns=list(columns), read_dictionary=strings or None, use_pandas_metadata=False)
        for c in columns:
            col = table.column(c)
            if not pa.types.is_dictionary(col.type):
                continue
            longest = max((pc.max(pc.binary_length(ch.dictionary)).as_py() or 0 for ch in col.chunks
                           if len(ch.dictionary) and _is_text(ch.dictionary.type)), default=0)
            if longest > MAX_ID_BYTES:
                problems.append(f"{path.name}: column '{c}' holds a value of {longest:,} bytes; "
                                f"ids are at most {MAX_ID_BYTES} bytes")
                return None
            table = table.set_column(table.schema.get_field_index(c), c, pc.cast(col, col.type.value_type))
        return table.to_pandas()
    except Exception as e:
        _unreadable(path, e, problems)
        return None
