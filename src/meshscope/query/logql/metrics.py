"""Metric queries: range aggregations over log entries, then vector aggregations, per step.

At each step time t a range aggregation sees the entries with t - range < time <= t (as
Prometheus selects samples); a series with no entry in that window has no point there.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass

from meshscope.query import budget
from meshscope.query.logql.ast import (
    BinaryOp,
    MetricExpr,
    NumberLiteral,
    RangeAggregation,
    VectorAggregation,
    VectorLiteral,
)
from meshscope.query.logql.labels import label_string
from meshscope.query.logql.lexer import LogQLError
from meshscope.query.logql.pipeline import ERROR_LABEL
from meshscope.query.logql.select import Scan, entries
from meshscope.store.base import LogStore

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
        if isinstance(expr.left, NumberLiteral) and not isinstance(expr.right, NumberLiteral):
            return _binary({"-": "r-", "/": "r/"}.get(expr.op, expr.op), right, left, True)
        return _binary(expr.op, left, right, isinstance(expr.right, NumberLiteral))
    return _vector_aggregation(expr, evaluate(store, expr.inner, steps, scan))


def _binary(op: str, left: Matrix, right: Matrix, number: bool) -> Matrix:
    """Series of equal labels combine, as Loki's vectorBinop (`vector(n)` is a series
    without labels: it meets only label-less series); a `number` right side applies to
    every series of the left."""
    out: Matrix = {}
    for key, points in left.items():
        other = right.get(()) if number else right.get(key)
        if other is not None:
            combined = _combine(op, points, other)
            if combined:
                out[key] = combined
    return out


def _combine(op: str, left: dict[int, float], right: dict[int, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for index, a in left.items():
        if index in right:
            out[index] = _apply(op, a, right[index])
    return out


def _apply(op: str, a: float, b: float) -> float:
    if op.startswith("r"):  # the operands were swapped to broadcast the label-less side
        op, a, b = op[1:], b, a
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:  # as Loki's MergeBinOp, whatever `a` is (Prometheus would say +-Inf)
        return math.nan
    return a / b


def _range_aggregation(store: LogStore, expr: RangeAggregation, steps: Steps, scan: Scan) -> Matrix:
    # Entries in (first step - range, last step]: [start - range + 1, end + 1).
    first, last = steps.start_ns - expr.range_ns + 1, steps.time(steps.count - 1) + 1
    times: dict[LabelKey, list[int]] = defaultdict(list)
    sizes: dict[LabelKey, list[int]] = defaultdict(list)
    for entry in entries(store, expr.log, max(first, 0), last, scan):
        if ERROR_LABEL in entry.labels:
            raise LogQLError(_pipeline_error(entry.labels))
        key = tuple(sorted(entry.labels.items()))
        times[key].append(entry.time_ns)
        sizes[key].append(len(entry.line.encode()))
    by_bytes = expr.func in ("bytes_over_time", "bytes_rate")
    per_second = expr.func in ("rate", "bytes_rate")
    out: Matrix = {}
    for key, stamps in times.items():
        budget.check()
        budget.charge(1, steps.count)
        prefix = [0]
        for size in sizes[key] if by_bytes else (1 for _ in stamps):
            prefix.append(prefix[-1] + size)
        points: dict[int, float] = {}
        for index in range(steps.count):
            t = steps.time(index)
            low, high = bisect_right(stamps, t - expr.range_ns), bisect_right(stamps, t)
            if high > low:
                value = float(prefix[high] - prefix[low])
                points[index] = value / (expr.range_ns / 1e9) if per_second else value
        if points:
            out[key] = points
    return out


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
    groups: dict[LabelKey, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, points in inner.items():
        group = groups[_group_key(key, expr)]
        for index, value in points.items():
            group[index].append(value)
    out: Matrix = {}
    for key, per_step in groups.items():
        out[key] = {index: _aggregate(expr.op, values) for index, values in per_step.items()}
    return out


def _aggregate(op: str, values: list[float]) -> float:
    if op == "sum":
        return sum(values)
    if op == "count":
        return float(len(values))
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    return sum(values) / len(values)
