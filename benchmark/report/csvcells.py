"""Writing report CSVs that a spreadsheet opens as data, never as formulas.

Why: model names, descriptions and tuned-config summaries come from submitters, and a
spreadsheet evaluates a cell starting with ``=``, ``+``, ``-`` or ``@`` (and, in some,
after a leading tab or carriage return) as a formula, e.g. ``=HYPERLINK(...)`` or a DDE
call. OWASP's advice is to prefix such a cell with a single quote, which spreadsheets
show as text. Only text cells are touched: numeric columns (``-3.2`` in a float column)
are written exactly as before, and so is a text cell that is a plain number
(``"-3.2"``), which no spreadsheet turns into a call. For a report without such cells
the file is byte-identical to a plain ``DataFrame.to_csv``.

Markdown and JSON outputs are not spreadsheet input and are left as they are.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RISKY_START = ("=", "+", "-", "@", "\t", "\r")


def _plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text and text.strip() == text


def neutralise(value):
    """``'`` + value for a text cell a spreadsheet would evaluate; anything else unchanged."""
    if isinstance(value, str) and value.startswith(RISKY_START) and not _plain_number(value):
        return "'" + value
    return value


def neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with risky text cells quoted; the same object when there are none (no dtype changes)."""
    out = frame
    for col in frame.columns:
        if not pd.api.types.is_string_dtype(frame[col].dtype):  # object or str columns; numbers never
            continue
        values = frame[col].tolist()
        safe = [neutralise(v) for v in values]
        if any(a is not b for a, b in zip(values, safe)):
            out = out.copy() if out is frame else out
            out[col] = pd.Series(safe, index=frame.index, dtype=object)
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """The report's CSV format (6 decimals, ``\\n`` line ends, no index), with risky cells neutralised."""
    neutralised(frame).to_csv(path, index=False, float_format="%.6f", lineterminator="\n")
    return path
