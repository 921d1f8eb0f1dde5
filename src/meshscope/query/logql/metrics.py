"""Metric queries: range aggregations over log entries, then vector aggregations, per step.

At each step time t a range aggregation sees the entries with t - range < time <= t (as
Prometheus selects samples); a series with no entry in that window has no point there.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from meshscope.go_parsers import parse_bytes
from meshscope.query import budget
from meshscope.query.logql.arithmetic import COMPARE, apply
from meshscope.query.logql.ast import (
    BinaryOp,
    LabelFilterStage,
    MetricExpr,
    NumberLiteral,
    RangeAggregation,
    VectorAggregation,
    VectorLiteral,
)
from meshscope.query.logql.labels import label_string
from meshscope.query.logql.lexer import LogQLError
from meshscope.query.logql.pipeline import (
    ERROR_DETAILS_LABEL,
    ERROR_LABEL,
    duration_error,
    float_error,
    parse_duration,
    parse_number,
    run,
)
from meshscope.query.logql.select import Entry, Scan, entries
from meshscope.query.promql.functions import max_of, mean_of, min_of, quantile, variance
from meshscope.store.base import LogStore, MatchOp

LabelKey = tuple[tuple[str, str], ...]
# series labels -> {step index: value}
Matrix = dict[LabelKey, dict[int, float]]


@dataclass(frozen=True, slots=True)
class Steps:
    start_ns: int
    end_ns: int
    step_ns: int

    @property
    def count(self) -> int:
        return (self.end_ns - self.start_ns) // self.step_ns + 1

    def time(self, index: int) -> int:
        return self.start_ns + index * self.step_ns


def evaluate(store: LogStore, expr: MetricExpr, steps: Steps, scan: Scan) -> Matrix:
    if isinstance(expr, RangeAggregation):
        return _range_aggregation(store, expr, steps, scan)
    if isinstance(expr, VectorLiteral | NumberLiteral):
        return {(): dict.fromkeys(range(steps.count), expr.value)}
    if isinstance(expr, BinaryOp):
        left = evaluate(store, expr.left, steps, scan)
        right = evaluate(store, expr.right, steps, scan)
        if expr.op in ("and", "or", "unless"):
            return _set_operation(expr.op, left, right)
        if isinstance(expr.left, NumberLiteral) and not isinstance(expr.right, NumberLiteral):
            # The series are on the right: swap the sides (a comparison keeps their values).
            return _binary(_SWAPPED.get(expr.op, expr.op), right, left, True, expr.bool)
        return _binary(expr.op, left, right, isinstance(expr.right, NumberLiteral), expr.bool)
    inner = expr.inner
    if expr.op == "sum" and isinstance(inner, RangeAggregation) and inner.func in _SUMS:
        # A sum of sums: the samples are summed by the aggregation's groups at once, not per
        # series first (a series per trace id, with structured metadata, is one line each).
        grouped = _range_aggregation(store, inner, steps, scan, lambda k: _group_key(k, expr))
        return _vector_aggregation(expr, grouped)
    return _vector_aggregation(expr, evaluate(store, inner, steps, scan))


_SWAPPED = {"-": "r-", "/": "r/", "%": "r%", "^": "r^", ">": "<", "<": ">", ">=": "<=",
            "<=": ">="}  # fmt: skip
"""An operator with its sides swapped (`r`: the operands are swapped back to apply it)."""


def _binary(op: str, left: Matrix, right: Matrix, number: bool, as_bool: bool) -> Matrix:
    """Series of equal labels combine, as Loki's vectorBinop (`vector(n)` is a series
    without labels: it meets only label-less series); a `number` right side applies to
    every series of the left. A comparison keeps the left value where it holds (1 or 0
    with `bool`)."""
    out: Matrix = {}
    for key, points in left.items():
        other = right.get(()) if number else right.get(key)
        if other is not None:
            combined = _combine(op, points, other, as_bool)
            if combined:
                out[key] = combined
    return out


def _combine(
    op: str, left: dict[int, float], right: dict[int, float], as_bool: bool
) -> dict[int, float]:
    out: dict[int, float] = {}
    compare = COMPARE.get(op)
    for index, a in left.items():
        if index not in right:
            continue
        if compare is None:
            out[index] = apply(op, a, right[index])
        elif as_bool:
            out[index] = float(compare(a, right[index]))
        elif compare(a, right[index]):
            out[index] = a
    return out


def _set_operation(op: str, left: Matrix, right: Matrix) -> Matrix:
    """Per step, as Prometheus' (Loki's) set operators on whole label sets: `and` keeps the
    left series present on the right, `unless` those absent, `or` adds to the left the right
    series it lacks."""
    if op == "or":
        out = {key: dict(points) for key, points in left.items()}
        for key, points in right.items():
            mine = out.setdefault(key, {})
            for index, value in points.items():
                mine.setdefault(index, value)
        return out
    keep = op == "and"
    kept: Matrix = {}
    for key, points in left.items():
        other = right.get(key, {})
        found = {index: v for index, v in points.items() if (index in other) == keep}
        if found:
            kept[key] = found
    return kept


def _range_aggregation(
    store: LogStore, expr: RangeAggregation, steps: Steps, scan: Scan,
    group: Callable[[LabelKey], LabelKey] | None = None,
) -> Matrix:  # fmt: skip
    """Each series' points (`group`: samples of the series a group takes summed at once)."""
    # Entries in (first step - range, last step] (each shifted back by the offset):
    # [start - range + 1, end + 1).
    first = steps.start_ns - expr.offset_ns - expr.range_ns + 1
    last = steps.time(steps.count - 1) - expr.offset_ns + 1
    times: dict[LabelKey, list[int]] = defaultdict(list)
    values: dict[LabelKey, list[float]] = defaultdict(list)
    sample = _sampler(expr)
    if last <= 0:
        return _absent(expr, {}, steps) if expr.func == "absent_over_time" else {}
    for entry in entries(store, expr.log, max(first, 0), last, scan):
        found = sample(entry)
        if found is None:
            continue
        labels, value = found
        if ERROR_LABEL in labels:
            raise LogQLError(_pipeline_error(labels))
        key = tuple(sorted(labels.items()))
        if group is not None:
            key = group(key)
        times[key].append(entry.time_ns)
        values[key].append(value)
    if expr.func in _SUMS:
        out = {key: _sums(expr, stamps, values[key], steps) for key, stamps in times.items()}
    else:
        window = _window_function(expr)
        out = {key: _windows(expr, window, stamps, values[key], steps)
               for key, stamps in times.items()}  # fmt: skip
    out = {key: points for key, points in out.items() if points}
    return _absent(expr, out, steps) if expr.func == "absent_over_time" else out


Sample = tuple[dict[str, str], float]
_SUMS = frozenset({"count_over_time", "rate", "bytes_over_time", "bytes_rate", "sum_over_time"})
"""Range functions answered from prefix sums (one pass per series, whatever the range)."""


def _sampler(expr: RangeAggregation) -> Callable[[Entry], Sample | None]:
    """What an entry contributes: its series labels and value (1 a line, its bytes, or the
    unwrapped value), or None when it has none (an unwrapped label empty or missing, or
    dropped by a filter after the unwrap)."""
    if expr.unwrap is None:
        if expr.func in ("bytes_over_time", "bytes_rate"):
            return lambda entry: (entry.labels, float(len(entry.line.encode())))
        return lambda entry: (entry.labels, 1.0)
    unwrap = expr.unwrap
    convert = _CONVERSIONS[unwrap.conversion]
    filters = tuple(LabelFilterStage(f) for f in unwrap.filters)
    # The series' labels, as Loki's LabelExtractorWithStages: `by` keeps the names listed;
    # `without` or no grouping drops the names listed and the unwrapped label.
    names = frozenset(expr.grouping or ())
    keeping = expr.grouping is not None and not expr.without
    if not keeping:
        names |= {unwrap.label}

    def sample(entry: Entry) -> Sample | None:
        labels = entry.labels
        text = labels.get(unwrap.label, "")
        if not text:  # Loki: a line without the label is no sample, not an error
            return None
        value, problem = convert(text)
        if problem:
            labels = {**labels, ERROR_LABEL: "SampleExtractionErr",
                      ERROR_DETAILS_LABEL: problem}  # fmt: skip
        if filters:
            outcome = run(filters, labels, entry.line, entry.time_ns)
            if outcome is None:
                return None
            labels = outcome[0]
        if ERROR_LABEL in labels:  # kept whole: the query fails naming the series
            return labels, value
        return {k: v for k, v in labels.items() if (k in names) == keeping}, value

    return sample


def _go_float(text: str) -> tuple[float, str]:
    value = parse_number(text)
    if value is None:
        return 0.0, float_error(text)
    return value, ""


def _go_duration(text: str) -> tuple[float, str]:
    value = parse_duration(text)
    if value is None:
        return 0.0, duration_error(text)
    return value / 1e9, ""


def _go_bytes(text: str) -> tuple[float, str]:
    value = parse_bytes(text)
    if value is None:
        return 0.0, f"invalid byte size: {text!r}"
    return float(value), ""


_CONVERSIONS: dict[str, Callable[[str], tuple[float, str]]] = {
    "": _go_float, "duration": _go_duration, "duration_seconds": _go_duration,
    "bytes": _go_bytes,
}  # fmt: skip
"""Loki's unwrap conversions: a value and "" , or 0 and Go's error text."""


def _sums(
    expr: RangeAggregation, stamps: list[int], values: list[float], steps: Steps
) -> dict[int, float]:
    budget.check()
    budget.charge(1, steps.count)
    per_second = expr.func in ("rate", "bytes_rate")
    reach = expr.range_ns // steps.step_ns + 1  # the most steps whose window holds a sample
    if len(stamps) * reach < steps.count:  # fewer samples than steps: walk the samples
        return _sparse_sums(expr, stamps, values, steps, per_second)
    prefix = [0.0]
    for value in values:
        prefix.append(prefix[-1] + value)
    points: dict[int, float] = {}
    for index in range(steps.count):
        t = steps.time(index) - expr.offset_ns
        low, high = bisect_right(stamps, t - expr.range_ns), bisect_right(stamps, t)
        if high > low:
            value = prefix[high] - prefix[low]
            points[index] = value / (expr.range_ns / 1e9) if per_second else value
    return points


def _sparse_sums(
    expr: RangeAggregation, stamps: list[int], values: list[float], steps: Steps,
    per_second: bool,
) -> dict[int, float]:  # fmt: skip
    """`_sums` from the samples' side, for a series with few samples (one line of a trace
    id's series): step t's window (t - offset - range, t - offset] holds a sample at s when
    s + offset <= t < s + offset + range."""
    start, step, last_index = steps.start_ns, steps.step_ns, steps.count - 1
    sums: dict[int, float] = {}
    for stamp, value in zip(stamps, values, strict=True):
        at = stamp + expr.offset_ns - start
        first, last = max(-(-at // step), 0), min((at + expr.range_ns - 1) // step, last_index)
        for index in range(first, last + 1):
            sums[index] = sums.get(index, 0.0) + value
    seconds = expr.range_ns / 1e9
    return {index: total / seconds for index, total in sums.items()} if per_second else sums


Window = Callable[[list[int], list[float], int], float]
"""A range function over one window: its samples' times and values, and the window's end."""


def _windows(
    expr: RangeAggregation, window: Window, stamps: list[int], values: list[float], steps: Steps
) -> dict[int, float]:
    budget.charge(1, 0)
    points: dict[int, float] = {}
    for index in range(steps.count):
        t = steps.time(index) - expr.offset_ns
        low, high = bisect_right(stamps, t - expr.range_ns), bisect_right(stamps, t)
        if high > low:
            budget.charge(0, high - low)
            points[index] = window(stamps[low:high], values[low:high], t)
    return points


def _window_function(expr: RangeAggregation) -> Window:
    """Loki's range functions (`pkg/logql/range_vector.go`), each over one window."""
    func = expr.func
    if func == "quantile_over_time":
        q = expr.param if expr.param is not None else math.nan
        return lambda _, values, __: quantile(q, values)
    if func == "rate_counter":
        range_ns = expr.range_ns
        return lambda stamps, values, end: _counter_rate(stamps, values, end, range_ns)
    return _WINDOW_FUNCTIONS[func]


def _counter_rate(stamps: list[int], values: list[float], end_ns: int, range_ns: int) -> float:
    """Loki's rate_counter: Prometheus' extrapolated counter rate over the window (timestamps
    in ns, the window's own bounds); 0 with fewer than two samples."""
    if len(values) < 2:
        return 0.0
    result = values[-1] - values[0]
    last = 0.0
    for value in values:
        if value < last:
            result += last
        last = value
    to_start = (stamps[0] - (end_ns - range_ns)) / 1e9
    to_end = (end_ns - stamps[-1]) / 1e9
    sampled = (stamps[-1] - stamps[0]) / 1e9
    average = sampled / (len(values) - 1)
    threshold = average * 1.1
    if to_start >= threshold:
        to_start = average / 2
    to_zero = to_start
    if result > 0 and values[0] >= 0:
        to_zero = sampled * (values[0] / result)
    to_start = min(to_start, to_zero)
    if to_end >= threshold:
        to_end = average / 2
    if sampled == 0:  # samples at one instant: Go divides to +-Inf or NaN
        return math.nan if result == 0 else math.copysign(math.inf, result)
    return result * ((sampled + to_start + to_end) / sampled) / (range_ns / 1e9)


_WINDOW_FUNCTIONS: dict[str, Window] = {
    "avg_over_time": lambda _, values, __: mean_of(values),
    "min_over_time": lambda _, values, __: min_of(values),
    "max_over_time": lambda _, values, __: max_of(values),
    "stdvar_over_time": lambda _, values, __: variance(values),
    "stddev_over_time": lambda _, values, __: math.sqrt(variance(values)),
    "first_over_time": lambda _, values, __: values[0],
    "last_over_time": lambda _, values, __: values[-1],
    "absent_over_time": lambda _, values, __: 1.0,
}


def _absent(expr: RangeAggregation, present: Matrix, steps: Steps) -> Matrix:
    """absent_over_time: 1 at the steps where no series has a point, labelled by the
    selector's equality matchers (a name matched twice is left out), as Loki's absentLabels."""
    covered = {index for points in present.values() for index in points}
    missing = {index: 1.0 for index in range(steps.count) if index not in covered}
    if not missing:
        return {}
    equal: dict[str, str] = {}
    seen: set[str] = set()
    for matcher in expr.log.matchers:
        if matcher.name in seen:
            equal.pop(matcher.name, None)
        elif matcher.op is MatchOp.EQ:
            equal[matcher.name] = matcher.value
        seen.add(matcher.name)
    return {tuple(sorted(equal.items())): missing}


def _pipeline_error(labels: dict[str, str]) -> str:
    """Loki's answer to a metric query over entries a stage failed on (logqlmodel
    PipelineError, a 400): the error is to be skipped on purpose."""
    kind = labels[ERROR_LABEL]
    series = label_string(sorted(labels.items()))
    return (
        f"pipeline error: '{kind}' for series: '{series}'.\n"
        f'Use a label filter to intentionally skip this error. (e.g | __error__!="{kind}").\n'
        'To skip all potential errors you can match empty errors.(e.g __error__="")\n'
        "The label filter can also be specified after unwrap."
        ' (e.g | unwrap latency | __error__="" )'
    )


def _group_key(key: LabelKey, expr: VectorAggregation) -> LabelKey:
    if expr.grouping is None:
        return ()
    names = set(expr.grouping)
    return tuple((k, v) for k, v in key if (k in names) != expr.without)


def _vector_aggregation(expr: VectorAggregation, inner: Matrix) -> Matrix:
    if expr.op in ("topk", "bottomk"):
        return _ranked(expr, inner)
    groups: dict[LabelKey, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, points in inner.items():
        group = groups[_group_key(key, expr)]
        for index, value in points.items():
            group[index].append(value)
    out: Matrix = {}
    for key, per_step in groups.items():
        out[key] = {index: _aggregate(expr.op, values) for index, values in per_step.items()}
    return out


def _ranked(expr: VectorAggregation, inner: Matrix) -> Matrix:
    """topk/bottomk: at each step the k largest (smallest) series of each group, with all
    their labels; NaN ranks last, ties by labels, as Prometheus."""
    members: dict[tuple[LabelKey, int], list[tuple[float, LabelKey]]] = defaultdict(list)
    for key, points in inner.items():
        group = _group_key(key, expr)
        for index, value in points.items():
            members[group, index].append((value, key))
    sign = -1.0 if expr.op == "topk" else 1.0
    out: Matrix = defaultdict(dict)
    for (_, index), candidates in members.items():
        budget.check()
        candidates.sort(key=lambda item: (math.isnan(item[0]), sign * item[0], item[1]))
        for value, key in candidates[: expr.param]:
            out[key][index] = value
    return dict(out)


def _aggregate(op: str, values: list[float]) -> float:
    if op == "sum":
        return sum(values)
    if op == "count":
        return float(len(values))
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    if op == "stdvar":
        return variance(values)
    if op == "stddev":
        return math.sqrt(variance(values))
    return sum(values) / len(values)
