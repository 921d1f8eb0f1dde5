"""Prometheus' duration strings (`1h30m`, `5m`, `90s`, `0`): `model.ParseDuration` of
prometheus/common, which the Prometheus and Loki HTTP APIs use for `step`, `timeout` and
`since`. Units y (365 d), w, d, h, m, s, ms, each at most once and in that order."""

from __future__ import annotations

import re

_UNITS_MS = (
    ("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000),
    ("m", 60_000), ("s", 1_000), ("ms", 1),
)  # fmt: skip
_PATTERN = re.compile("".join(rf"(?:(\d+){unit})?" for unit, _ in _UNITS_MS))
MAX_MS = (2**63 - 1) // 1_000_000
"""The longest duration: Go's time.Duration is int64 nanoseconds (~292 years)."""


def duration_ms(text: str) -> int:
    """`text` in milliseconds; ValueError with Prometheus' reason when it is not a duration
    or does not fit a time.Duration."""
    if text == "0":
        return 0
    match = _PATTERN.fullmatch(text) if text else None
    if match is None or not any(match.groups()):
        raise ValueError(f"not a valid duration string: {text!r}")
    total = sum(
        int(amount) * unit_ms
        for amount, (_, unit_ms) in zip(match.groups(), _UNITS_MS, strict=True)
        if amount
    )
    if total > MAX_MS:
        raise ValueError("duration out of range")
    return total
