"""OTLP metric and attribute names -> Prometheus names.

Follows the OpenTelemetry "Prometheus and OpenMetrics compatibility" spec as implemented by
Prometheus' OTLP receiver and the Collector's prometheus exporter (the `otlptranslator`
`UnderscoreEscapingWithSuffixes` strategy, the default): the name is split into tokens at
characters outside `[a-zA-Z0-9:]`, the UCUM unit becomes a word suffix (`ms` ->
`milliseconds`, `By/s` -> `bytes_per_second`, `{request}` annotations are dropped), monotonic
counters end in `_total`, gauges of unit `1` end in `_ratio`, and a leading digit gets `_`.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import orjson

from meshscope.model.attributes import AttrValue

_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_NAME_SPLIT = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"(?<=[^_])_{2,}")


def _clean_unit(unit: str) -> str:
    return "_".join(token for token in _NAME_SPLIT.split(unit) if token)


def _unit_suffixes(unit: str) -> tuple[str, str]:
    """The main and "per" unit words of a UCUM unit, e.g. `By/s` -> ("bytes", "per_second")."""
    main_otel, _, per_otel = unit.partition("/")
    main_otel, per_otel = main_otel.strip(), per_otel.strip()
    main = ""
    if main_otel and "{" not in main_otel and "}" not in main_otel:
        main = _clean_unit(_UNITS.get(main_otel, main_otel))
    per = ""
    if per_otel and "{" not in per_otel and "}" not in per_otel:
        per_word = _clean_unit(_PER_UNITS.get(per_otel, per_otel))
        per = f"per_{per_word}" if per_word else ""
    return main, per


@lru_cache(maxsize=8192)
def metric_name(name: str, unit: str, *, counter: bool = False, gauge: bool = False) -> str:
    """The Prometheus name of an OTLP metric (`counter`: a monotonic sum).

    >>> metric_name("http.server.request.duration", "s")
    'http_server_request_duration_seconds'
    >>> metric_name("http.requests", "{request}", counter=True)
    'http_requests_total'
    """
    tokens = [token for token in _NAME_SPLIT.split(name) if token]
    main, per = _unit_suffixes(unit)
    if main and main not in tokens:
        tokens.append(main)
    if per and per not in tokens:
        tokens.append(per)
    if counter:
        tokens = [token for token in tokens if token != "total"] + ["total"]
    if gauge and unit == "1":
        tokens = [token for token in tokens if token != "ratio"] + ["ratio"]
    result = "_".join(tokens)
    if result[:1].isdigit():
        result = "_" + result
    return result


@lru_cache(maxsize=8192)
def label_name(key: str) -> str:
    """A valid Prometheus label name: invalid characters -> `_`, runs of `_` collapsed
    (leading ones kept), a leading digit prefixed `key_`. A reserved name (two leading
    underscores, not three) keeps its underscores, as Prometheus' OTLP translator keeps it:
    `__name__` stays `__name__` (it was `__name_`)."""
    if key.startswith("__") and key[2:3] != "_":
        return _LABEL_INVALID.sub("_", key)
    result = _UNDERSCORES.sub("_", _LABEL_INVALID.sub("_", key))
    if result[:1].isdigit():
        result = "key_" + result
    return result


def label_value(value: AttrValue) -> str:
    """An attribute value as a label value: strings as-is, bools lowercase, others JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    return orjson.dumps(value, default=_json_default).decode()


def format_float(value: float) -> str:
    """Like Go's `strconv.FormatFloat(v, 'f', -1, 64)` for usual values: 1.0 -> "1"."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError
