"""Go's value parsers as Loki's detected fields and labels (Grafana's Logs Drilldown) use them
to tell what a value is: strconv's `ParseInt`, `ParseFloat`, `ParseBool`, google/uuid's
`Parse` and go-humanize's `ParseBytes` (and `Bytes`, which writes sizes back). Each reads the
text as Go does, not as Python would (`int("1_0")`, `float(" 1")` and Unicode digits are
Python's, not Go's)."""

from __future__ import annotations

import math
import re
import unicodedata

from meshscope.go_duration import parse_go_duration

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT = re.compile(r"[+-]?[0-9]+")
_DIGITS = r"[0-9](?:_?[0-9])*"  # underscores only between digits, as Go's underscoreOK
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
_DECIMAL = re.compile(
    rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?"
)
_HEX_FLOAT = re.compile(rf"[+-]?0[xX]_?(?:{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP][+-]?{_DIGITS}")
_SPECIAL = re.compile(r"[+-]?(?:inf|infinity)|nan", re.IGNORECASE)
_BOOLS = frozenset({"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false",
                    "False"})  # fmt: skip
MAX_DURATION_CHARS = 256
"""Longer texts are not taken for durations (the grammar is linear; this bounds the work)."""
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
"""What Go's `strings.TrimSpace` trims (`unicode.IsSpace`)."""
_KIB, _KB = 1024, 1000
BYTE_UNITS = {
    "b": 1, "": 1,
    "kib": _KIB, "ki": _KIB, "kb": _KB, "k": _KB,
    "mib": _KIB**2, "mi": _KIB**2, "mb": _KB**2, "m": _KB**2,
    "gib": _KIB**3, "gi": _KIB**3, "gb": _KB**3, "g": _KB**3,
    "tib": _KIB**4, "ti": _KIB**4, "tb": _KB**4, "t": _KB**4,
    "pib": _KIB**5, "pi": _KIB**5, "pb": _KB**5, "p": _KB**5,
    "eib": _KIB**6, "ei": _KIB**6, "eb": _KB**6, "e": _KB**6,
}  # fmt: skip
"""go-humanize's `bytesSizeTable`: IEC units are powers of 1024, SI ones of 1000."""
_SI_NAMES = ("B", "kB", "MB", "GB", "TB", "PB", "EB")


def is_int(text: str) -> bool:
    """`strconv.ParseInt(text, 10, 64)` succeeds: a sign, ASCII digits, within int64."""
    return _INT.fullmatch(text) is not None and INT64_MIN <= int(text) <= INT64_MAX


def parse_float(text: str) -> float | None:
    """`strconv.ParseFloat(text, 64)`: decimal or hexadecimal (`0x1p-2`) floats, digits
    separated by single underscores, `inf`/`infinity` (signed) and `nan` in any case; None
    where Go errs (a finite number too large for a float64 is its range error)."""
    if _SPECIAL.fullmatch(text):
        return float(text)
    if _DECIMAL.fullmatch(text):
        value = float(text.replace("_", ""))
    elif _HEX_FLOAT.fullmatch(text):
        try:
            value = float.fromhex(text.replace("_", ""))
        except OverflowError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def is_float(text: str) -> bool:
    """`strconv.ParseFloat(text, 64)` succeeds."""
    return parse_float(text) is not None


def is_bool(text: str) -> bool:
    """`strconv.ParseBool(text)` succeeds."""
    return text in _BOOLS


def is_duration(text: str) -> bool:
    """`time.ParseDuration(text)` succeeds (`1h2m`, `-1.5s`, `0`; no `d`), within int64 ns."""
    if len(text) > MAX_DURATION_CHARS or not text.isascii():
        return False
    ns = parse_go_duration(text)
    return ns is not None and abs(ns) <= 2**63


def parse_bytes(text: str) -> int | None:
    """go-humanize's `ParseBytes`: a number (ASCII digits, `.`, `,` as thousands
    separators), optional spaces, then a unit of `BYTE_UNITS` in any case (`42 MB`,
    `1.5KiB`, `10`); None where it errs. Any other Unicode digit in the number makes it err
    (Go counts them in runes and slices bytes)."""
    end = 0
    while end < len(text) and (text[end] in ".," or unicodedata.category(text[end]) == "Nd"):
        end += 1
    number = text[:end].replace(",", "")
    if not number.isascii():
        return None
    try:
        value = float(number)
    except ValueError:
        return None
    unit = BYTE_UNITS.get(text[end:].strip(_GO_SPACE).lower())
    if unit is None or not math.isfinite(value) or value * unit >= 2**64:
        return None
    return int(value * unit)


def format_bytes(size: int) -> str:
    """go-humanize's `Bytes`: SI units, one decimal under 10 (`83 MB`, `1.5 kB`, `9 B`)."""
    if size < 10:
        return f"{size} B"
    exponent = math.floor(math.log(size) / math.log(1000))
    value = math.floor(size / 1000.0**exponent * 10 + 0.5) / 10
    return f"{value:.{0 if value >= 10 else 1}f} {_SI_NAMES[exponent]}"


def is_uuid(text: str) -> bool:
    """google/uuid's `Parse` succeeds: 32 hex digits, or `8-4-4-4-12` hex groups, bare,
    after `urn:uuid:` (any case) or between two characters it does not check (meant as
    `{...}`), lengths counted in UTF-8 bytes as Go does."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) == 32:
        return _hex(raw)
    if len(raw) == 45:
        if raw[:9].lower() != b"urn:uuid:":
            return False
        raw = raw[9:]
    elif len(raw) == 38:
        raw = raw[1:37]
    elif len(raw) != 36:
        return False
    if raw[8:9] + raw[13:14] + raw[18:19] + raw[23:24] != b"----":
        return False
    return _hex(raw[:8] + raw[9:13] + raw[14:18] + raw[19:23] + raw[24:36])


def _hex(raw: bytes) -> bool:
    return all(byte in b"0123456789abcdefABCDEF" for byte in raw)
