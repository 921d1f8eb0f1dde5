"""go-humanize's `ParseBytes`, which Loki reads byte sizes with (`| unwrap bytes(size)`, the
`bytes` type of detected fields): a number (digits, `.`, `,` as a thousands separator), then
optional spaces and a unit, SI (`kB`, `MB`, `k`) or IEC (`KiB`, `Mi`), any case; no unit means
bytes."""

from __future__ import annotations

_UNITS = {"": 1, "b": 1}
for _power, _prefix in enumerate("kmgtpe", start=1):
    _UNITS[_prefix] = _UNITS[f"{_prefix}b"] = 1000**_power
    _UNITS[f"{_prefix}i"] = _UNITS[f"{_prefix}ib"] = 1024**_power
_NUMBER_CHARS = frozenset("0123456789.,")
_MAX = 2.0**64


def parse_go_bytes(text: str) -> float | None:
    """`text` (`12kB`, `1.5 MiB`, `2,048`) in bytes, truncated to a whole number as go-humanize
    does; None where it answers an error (no number, an unknown unit, 2^64 or more)."""
    digits = 0
    for char in text:
        if char not in _NUMBER_CHARS:
            break
        digits += 1
    number = text[:digits].replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return None
    scale = _UNITS.get(text[digits:].strip().lower())
    if scale is None or value * scale >= _MAX:
        return None
    return float(int(value * scale))
