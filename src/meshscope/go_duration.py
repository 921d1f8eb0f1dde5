"""Go's `time.ParseDuration` grammar, which the tools meshscope answers for read durations
with: Jaeger's and Tempo's `minDuration`, Loki's duration label filters."""

from __future__ import annotations

import re

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip
_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float | None:
    """`text` (`100ms`, `-1.5s`, `1h2m`, `0`) in nanoseconds, as Go reads it (a sign, then
    numbers with units; no `d`, no spaces); None if it is not one. Callers bound the text's
    length: the grammar is linear, the sum is not checked against int64."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not _DURATION.fullmatch(text):
        return None
    total = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    return -total if text.startswith("-") else total
