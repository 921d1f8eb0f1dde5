"""PromQL functions over range vectors (one window of one series at a time) and the
element-wise math functions, following Prometheus 2.x `promql/functions.go`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """Where a range function is evaluated: [start, end] in ms, the step time, params."""

    start: int
    end: int
    range_ms: int
    step_ts: int
    params: tuple[float, ...] = ()


RangeFn = Callable[[list[int], list[float], Window], float | None]


def go_max(a: float, b: float) -> float:
    return a if a > b or math.isnan(a) else b


def go_min(a: float, b: float) -> float:
    return a if a < b or math.isnan(a) else b


def _extrapolated_rate(
    ts: list[int], vs: list[float], w: Window, counter: bool, rate: bool
) -> float | None:
    if len(vs) < 2:
        return None
    result = vs[-1] - vs[0]
    if counter:
        last = 0.0
        for v in vs:
            if v < last:
                result += last
            last = v
    to_start = (ts[0] - w.start) / 1000
    to_end = (w.end - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    average = sampled / (len(vs) - 1)
    if counter and result > 0 and vs[0] >= 0:
        to_zero = sampled * (vs[0] / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    factor = interval / sampled
    if rate:
        factor /= w.range_ms / 1000
    return result * factor


def _instant_value(ts: list[int], vs: list[float], rate: bool) -> float | None:
    if len(vs) < 2:
        return None
    last, previous = vs[-1], vs[-2]
    result = last if rate and last < previous else last - previous
    interval = ts[-1] - ts[-2]
    if interval == 0:
        return None
    return result / (interval / 1000) if rate else result


def mean_of(vs: list[float]) -> float:
    """An incremental mean that keeps an infinite mean infinite (Prometheus' avg_over_time;
    Loki's avgOverTime is the same)."""
    mean, count = 0.0, 0
    for v in vs:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and not math.isnan(v):
                continue
        mean += v / count - mean / count
    return mean


def variance(vs: list[float]) -> float:
    """The population variance (Welford), as stdvar_over_time."""
    count, mean, aux = 0, 0.0, 0.0
    for v in vs:
        count += 1
        delta = v - mean
        mean += delta / count
        aux += delta * (v - mean)
    return aux / count


def quantile(q: float, values: list[float]) -> float:
    """Prometheus's quantile: linear interpolation between closest ranks."""
    if not values:
        return math.nan
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=lambda v: (not math.isnan(v), v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def linear_regression(ts: list[int], vs: list[float], intercept_time: int) -> tuple[float, float]:
    if all(v == vs[0] for v in vs):
        return (math.nan, math.nan) if math.isinf(vs[0]) else (0.0, vs[0])
    n = sum_x = sum_y = sum_xy = sum_x2 = 0.0
    for t, v in zip(ts, vs, strict=True):
        x = (t - intercept_time) / 1000
        n += 1
        sum_x += x
        sum_y += v
        sum_xy += x * v
        sum_x2 += x * x
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = (
        cov_xy / var_x if var_x != 0 else math.copysign(math.inf, cov_xy) if cov_xy else math.nan
    )
    return slope, sum_y / n - slope * sum_x / n


def _deriv(ts: list[int], vs: list[float], w: Window) -> float | None:
    return None if len(vs) < 2 else linear_regression(ts, vs, ts[0])[0]


def _predict_linear(ts: list[int], vs: list[float], w: Window) -> float | None:
    if len(vs) < 2:
        return None
    slope, intercept = linear_regression(ts, vs, w.step_ts)
    return slope * w.params[0] + intercept


def max_of(vs: list[float]) -> float:
    """The largest value; a NaN gives way to any later value (Go's max_over_time)."""
    out = vs[0]
    for v in vs[1:]:
        if v > out or math.isnan(out):
            out = v
    return out


def min_of(vs: list[float]) -> float:
    """The smallest value; a NaN gives way to any later value."""
    out = vs[0]
    for v in vs[1:]:
        if v < out or math.isnan(out):
            out = v
    return out


def _changes(vs: list[float]) -> float:
    return float(
        sum(
            1 for a, b in itertools.pairwise(vs) if a != b and not (math.isnan(a) and math.isnan(b))
        )
    )


RANGE_FUNCTIONS: dict[str, RangeFn] = {
    "rate": lambda ts, vs, w: _extrapolated_rate(ts, vs, w, True, True),
    "increase": lambda ts, vs, w: _extrapolated_rate(ts, vs, w, True, False),
    "delta": lambda ts, vs, w: _extrapolated_rate(ts, vs, w, False, False),
    "irate": lambda ts, vs, w: _instant_value(ts, vs, True),
    "idelta": lambda ts, vs, w: _instant_value(ts, vs, False),
    "avg_over_time": lambda ts, vs, w: mean_of(vs),
    "sum_over_time": lambda ts, vs, w: math.fsum(vs) if all(map(math.isfinite, vs)) else sum(vs),
    "count_over_time": lambda ts, vs, w: float(len(vs)),
    "min_over_time": lambda ts, vs, w: min_of(vs),
    "max_over_time": lambda ts, vs, w: max_of(vs),
    "last_over_time": lambda ts, vs, w: vs[-1],
    "present_over_time": lambda ts, vs, w: 1.0,
    "stdvar_over_time": lambda ts, vs, w: variance(vs),
    "stddev_over_time": lambda ts, vs, w: math.sqrt(variance(vs)),
    "quantile_over_time": lambda ts, vs, w: quantile(w.params[0], vs),
    "changes": lambda ts, vs, w: _changes(vs),
    "resets": lambda ts, vs, w: float(sum(1 for a, b in itertools.pairwise(vs) if b < a)),
    "deriv": _deriv,
    "predict_linear": _predict_linear,
}
"""Functions taking one range vector (plus scalar params); `quantile_over_time`'s param
comes first in PromQL and is passed in `Window.params`."""

RANGE_PARAM_FIRST = {"quantile_over_time"}
KEEPS_NAME = {"last_over_time"}


def _round(v: float, to_nearest: float = 1.0) -> float:
    # Go's float division: 1/0 is ±Inf (round(x, 0) is NaN in Prometheus, not an error).
    inverse = _go_divide(1.0, to_nearest)
    shifted = v * inverse + 0.5
    floored = math.floor(shifted) if math.isfinite(shifted) else shifted
    return _go_divide(floored, inverse)


def _go_divide(a: float, b: float) -> float:
    if b != 0:
        try:
            return a / b
        except OverflowError:
            return math.copysign(math.inf, a) * math.copysign(1.0, b)
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _log(fn: Callable[[float], float]) -> Callable[[float], float]:
    def apply(v: float) -> float:
        if math.isnan(v) or v < 0:
            return math.nan
        if v == 0:
            return -math.inf
        return fn(v) if not math.isinf(v) else math.inf

    return apply


def _safe(fn: Callable[[float], float]) -> Callable[[float], float]:
    def apply(v: float) -> float:
        try:
            return fn(v)
        except (ValueError, OverflowError):
            return math.inf if fn is math.exp and v > 0 else math.nan

    return apply


@dataclass(frozen=True, slots=True)
class Civil:
    """A Unix time in seconds as a UTC calendar date and time of day."""

    year: int
    month: int
    day: int
    hour: int
    minute: int
    weekday: int  # 0 = Sunday
    day_of_year: int
    days_in_month: int


_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def civil(seconds: int) -> Civil:
    """What Go's `time.Unix(seconds, 0).UTC()` gives, for any int64 (years far beyond
    Python's `datetime`, 1-9999): Howard Hinnant's `civil_from_days`, proleptic Gregorian."""
    days, rest = divmod(seconds, 86_400)
    era, day_of_era = divmod(days + 719_468, 146_097)  # eras of 400 years from 0000-03-01
    year_of_era = (
        day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    from_march = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted = (5 * from_march + 2) // 153  # 0 = March
    day = from_march - (153 * shifted + 2) // 5 + 1
    month = shifted + 3 if shifted < 10 else shifted - 9
    year = year_of_era + 400 * era + (month <= 2)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    before = sum(_MONTH_DAYS[: month - 1]) + (leap and month > 2)
    return Civil(
        year=year,
        month=month,
        day=day,
        hour=rest // 3_600,
        minute=rest % 3_600 // 60,
        weekday=(days + 4) % 7,  # 1970-01-01 was a Thursday
        day_of_year=before + day,
        days_in_month=_MONTH_DAYS[month - 1] + (leap and month == 2),
    )


def _time_part(part: Callable[[Civil], int]) -> Callable[[float], float]:
    """A date function of a sample value: Prometheus takes `time.Unix(int64(v), 0)`, the
    value truncated toward zero. NaN, infinities and values past int64 (where Go's
    conversion is left to the CPU) give NaN."""

    def apply(v: float) -> float:
        if not -(2.0**63) <= v < 2.0**63:  # NaN too
            return math.nan
        return float(part(civil(int(v))))

    return apply


MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": lambda v: float(math.ceil(v)) if math.isfinite(v) else v,
    "floor": lambda v: float(math.floor(v)) if math.isfinite(v) else v,
    "exp": _safe(math.exp),
    "sqrt": lambda v: math.sqrt(v) if v >= 0 else math.nan,
    "ln": _log(math.log),
    "log2": _log(math.log2),
    "log10": _log(math.log10),
    "sgn": lambda v: v if math.isnan(v) else float((v > 0) - (v < 0)),
    "sin": _safe(math.sin),
    "cos": _safe(math.cos),
    "tan": _safe(math.tan),
    "asin": _safe(math.asin),
    "acos": _safe(math.acos),
    "atan": _safe(math.atan),
    "sinh": _safe(math.sinh),
    "cosh": _safe(math.cosh),
    "tanh": _safe(math.tanh),
    "asinh": _safe(math.asinh),
    "acosh": _safe(math.acosh),
    "atanh": _safe(math.atanh),
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
}

TIME_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "day_of_month": _time_part(lambda d: d.day),
    "day_of_week": _time_part(lambda d: d.weekday),
    "day_of_year": _time_part(lambda d: d.day_of_year),
    "days_in_month": _time_part(lambda d: d.days_in_month),
    "hour": _time_part(lambda d: d.hour),
    "minute": _time_part(lambda d: d.minute),
    "month": _time_part(lambda d: d.month),
    "year": _time_part(lambda d: d.year),
}


def clamp(v: float, low: float, high: float) -> float:
    return go_max(low, go_min(high, v))


def round_value(v: float, to_nearest: float) -> float:
    return _round(v, to_nearest)
