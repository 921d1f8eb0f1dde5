"""PromQL result values (Scalar, String, Vector, Matrix), label helpers and Prometheus's
number formatting. Times are integer milliseconds, as in Prometheus."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from meshscope.model.metrics import Labels

NAME = "__name__"
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


class PromQLError(Exception):
    """A query that cannot be run; `kind` is the Prometheus errorType."""

    kind = "execution"


class BadQueryError(PromQLError):
    """The query does not parse or is of the wrong type for the request."""

    kind = "bad_data"


def is_stale(value: float) -> bool:
    return value != value and struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


@dataclass(frozen=True, slots=True)
class Sample:
    labels: Labels
    t: int
    v: float


@dataclass(frozen=True, slots=True)
class Scalar:
    t: int
    v: float


@dataclass(frozen=True, slots=True)
class String:
    t: int
    v: str


@dataclass(slots=True)
class Vector:
    samples: list[Sample] = field(default_factory=list)


@dataclass(slots=True)
class SeriesPoints:
    labels: Labels
    points: list[tuple[int, float]]


@dataclass(slots=True)
class Matrix:
    series: list[SeriesPoints] = field(default_factory=list)


Value = Scalar | String | Vector | Matrix


def value_type(value: Value) -> str:
    """The Prometheus API `resultType` of a value."""
    if isinstance(value, Scalar):
        return "scalar"
    if isinstance(value, String):
        return "string"
    if isinstance(value, Vector):
        return "vector"
    return "matrix"


# ---- labels ----------------------------------------------------------------------------


def make_labels(pairs: Iterable[tuple[str, str]]) -> Labels:
    """Canonical labels: sorted by name, empty values dropped (empty means absent)."""
    return tuple(sorted((k, v) for k, v in pairs if v != ""))


def drop_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != NAME)


def get_label(labels: Labels, name: str) -> str:
    for key, value in labels:
        if key == name:
            return value
    return ""


def set_label(labels: Labels, name: str, value: str) -> Labels:
    rest = [p for p in labels if p[0] != name]
    if value != "":
        rest.append((name, value))
    return tuple(sorted(rest))


def keep_labels(labels: Labels, names: Iterable[str]) -> Labels:
    wanted = set(names)
    return tuple(p for p in labels if p[0] in wanted)


def without_labels(labels: Labels, names: Iterable[str]) -> Labels:
    unwanted = set(names)
    return tuple(p for p in labels if p[0] not in unwanted)


def labels_text(labels: Labels) -> str:
    """`{a="1", b="2"}` as Prometheus prints a label set in error messages."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


# ---- formatting ------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value as Prometheus's JSON API writes it (Go 'f' format, 'e' outside
    [1e-6, 1e21), "NaN", "+Inf", "-Inf")."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        return _go_e(value)
    return format_f(value)


def _shortest(value: float) -> tuple[str, str, int]:
    """(sign, digits, decimal point position) of the shortest round-tripping decimal."""
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).lstrip("0") or "0"
    stripped = text.rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len("".join(map(str, digits)).lstrip("0")) + exponent if text != "0" else 1
    return ("-" if sign else ""), stripped, point


def _go_e(value: float) -> str:
    sign, digits, point = _shortest(value)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1 if digits != "0" else 0
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_f(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_le(bound: float) -> str:
    """A bucket bound as Go's FormatFloat(b, 'g', -1, 64) writes it (how `le` is exposed)."""
    if math.isinf(bound):
        return "+Inf" if bound > 0 else "-Inf"
    if math.isnan(bound):
        return "NaN"
    if bound == 0:
        return "0"
    _, _, point = _shortest(bound)
    exp = point - 1
    return _go_e(bound) if exp < -4 or exp >= 6 else format_f(bound)


def format_time(t_ms: int) -> float | int:
    """Milliseconds as the JSON number Prometheus writes: seconds, without '.0'."""
    if t_ms % 1000 == 0:
        return t_ms // 1000
    return t_ms / 1000
