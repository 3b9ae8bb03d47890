"""ISBN normalisation, so the same book gets one id across Book-Crossing and goodbooks.

Raw ISBNs come as ``039592720x`` (lower-case check digit), ``0-395-92720-X``, with
spaces, or as numbers that lost their leading zeros (goodbooks stores ``439023483``
for ``0439023483``) and as ISBN-13 in scientific notation (``9.78043902348e+12``, whose
last digit is lost). The canonical id is the ISBN-10 when the book has one (every
978-prefixed ISBN-13 maps to exactly one ISBN-10), else the ISBN-13.
"""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def isbn10_check(first9: str) -> str:
    s = sum((10 - i) * int(d) for i, d in enumerate(first9))
    c = (11 - s % 11) % 11
    return "X" if c == 10 else str(c)


def isbn13_check(first12: str) -> str:
    s = sum((1 if i % 2 == 0 else 3) * int(d) for i, d in enumerate(first12))
    return str((10 - s % 10) % 10)


def is_valid10(s: str) -> bool:
    return bool(re.fullmatch(r"\d{9}[\dX]", s)) and isbn10_check(s[:9]) == s[9]


def is_valid13(s: str) -> bool:
    return bool(re.fullmatch(r"\d{13}", s)) and isbn13_check(s[:12]) == s[12]


def to_isbn13(isbn10: str) -> str:
    core = "978" + isbn10[:9]
    return core + isbn13_check(core)


def to_isbn10(isbn13: str) -> str | None:
    """ISBN-10 of a 978-prefixed ISBN-13 (979 ones have none)."""
    if not isbn13.startswith("978"):
        return None
    core = isbn13[3:12]
    return core + isbn10_check(core)


def clean(raw: object) -> str:
    """Strip, upper-case and drop every non-alphanumeric character."""
    if raw is None:
        return ""
    return _NON_ALNUM.sub("", str(raw).strip()).upper()


def normalise(raw: object, pad_numeric: bool = False) -> str:
    """Canonical id of an ISBN string ("" when nothing usable is left).

    ``pad_numeric`` restores leading zeros lost by a numeric column (7-9 digits ->
    10). Valid ISBN-13s with a 978 prefix become ISBN-10; anything else that is not a
    recognisable ISBN is returned cleaned but unchanged, so ids never collapse by
    accident (Book-Crossing has a few non-ISBN codes).
    """
    s = clean(raw)
    if not s:
        return ""
    if pad_numeric and s.isdigit() and 7 <= len(s) < 10:
        s = s.zfill(10)
    if len(s) == 13 and s.isdigit():
        ten = to_isbn10(s) if is_valid13(s) else None
        return ten or s
    return s


def from_scientific13(raw: object) -> str:
    """Best-effort ISBN-13 from a float string such as ``9.78043902348e+12``.

    Twelve significant digits survive; the check digit is recomputed. Rounding may
    have bumped the twelfth digit, so both candidates are tried and one is returned
    only when exactly one of them rounds back to the stored value.
    """
    s = str(raw).strip()
    if not s:
        return ""
    try:
        value = float(s)
    except ValueError:
        return ""
    if not 9.7e12 <= value < 9.8e12:
        return ""
    if "e" not in s.lower():
        n = str(int(round(value)))
        return n if is_valid13(n) else ""
    # pandas/numpy print floats with 12 significant digits: the 13th is gone.
    prefix = int(round(value)) // 10
    found = []
    for p in (prefix, prefix - 1):
        cand = f"{p:012d}" + isbn13_check(f"{p:012d}")
        if f"{float(cand):.12g}" == f"{value:.12g}":
            found.append(cand)
    return found[0] if len(found) == 1 else ""
