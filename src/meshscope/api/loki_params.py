"""Loki query API parameters: timestamps, durations, limits and directions, read as Loki does.

Errors are `ParamError`s whose message is the plain-text body of the HTTP 400 answer.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from meshscope.api.params import FormParams, ParamError
from meshscope.query.durations import duration_ms

NS = 10**9
MAX_NS = 2**63 - 1
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)


Params = FormParams


def one(params: Params, name: str) -> str:
    values = params.get(name)
    return values[0] if values else ""


def parse_timestamp(text: str, name: str) -> int:
    """Loki's timestamp forms -> ns: float seconds (with a '.'), an integer (seconds when it
    has at most 10 digits, else ns), or RFC 3339 with up to ns precision."""
    value = text.strip()
    try:
        if "." in value and not _RFC3339.fullmatch(value):
            seconds = float(value)
            if not math.isfinite(seconds):
                raise ValueError(value)
            whole = math.floor(seconds)
            return _checked(whole * NS + round((seconds - whole) * 1000) * 10**6, text, name)
        number = int(value)
        return _checked(number * NS if len(value.lstrip("-")) <= 10 else number, text, name)
    except ValueError:
        pass
    match = _RFC3339.fullmatch(value)
    if match:
        date, fraction, zone = match.groups()
        try:
            parsed = datetime.fromisoformat(
                date.replace("t", "T") + zone.upper().replace("Z", "+00:00")
            )
        except ValueError:
            raise ParamError(f'invalid {name}: cannot parse "{text}"') from None
        ns = int(parsed.timestamp()) * NS + int((fraction or "0").ljust(9, "0"))
        return _checked(ns, text, name)
    raise ParamError(f'invalid {name}: cannot parse "{text}" as a timestamp (ns, s or RFC3339)')


def _checked(ns: int, text: str, name: str) -> int:
    if not 0 <= ns <= MAX_NS:
        raise ParamError(f'invalid {name}: "{text}" is out of range')
    return ns


def parse_duration(text: str, name: str) -> int:
    """Float seconds or a Prometheus duration (`5m`, `1h30m`: units in order, as Loki's
    `model.ParseDuration`) -> ns; 400 if neither or not positive."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            ns = duration_ms(text.strip()) * 1_000_000
        except ValueError as error:
            raise ParamError(
                f'invalid {name}: cannot parse "{text}" as a duration: {error}'
            ) from None
    else:
        if not math.isfinite(seconds) or seconds * NS > MAX_NS:
            raise ParamError(f'invalid {name}: "{text}" is out of range')
        ns = round(seconds * NS)
    if ns <= 0:
        raise ParamError(f"invalid {name}: it must be positive")
    return ns


def parse_limit(text: str, default: int, maximum: int) -> int:
    if not text:
        return default
    try:
        limit = int(text)
    except ValueError:
        raise ParamError(f'invalid limit: cannot parse "{text}" as an integer') from None
    if limit <= 0:
        raise ParamError("limit must be a positive value")
    if limit > maximum:
        raise ParamError(
            f"max entries limit per query exceeded, limit > max_entries_limit ({limit} > {maximum})"
        )
    return limit


def parse_direction(text: str) -> bool:
    """True for backward (newest first; the default), False for forward."""
    value = text.strip().lower() or "backward"
    if value not in ("backward", "forward"):
        raise ParamError(f'invalid direction "{text}": use forward or backward')
    return value == "backward"


def time_range(params: Params, now_ns: int, default_ns: int) -> tuple[int, int]:
    """`start`/`end` (or `since`), defaulting to [now - default, now]."""
    end_text, start_text, since = one(params, "end"), one(params, "start"), one(params, "since")
    end = parse_timestamp(end_text, "end") if end_text else now_ns
    if start_text:
        start = parse_timestamp(start_text, "start")
    else:
        start = end - (parse_duration(since, "since") if since else default_ns)
    start = max(start, 0)
    if end < start:
        raise ParamError("invalid time range: the end timestamp must not be before the start")
    return start, end
