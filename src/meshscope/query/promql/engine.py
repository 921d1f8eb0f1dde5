"""The PromQL engine: instant and range queries over a Queryable, with Prometheus 2.x
semantics (closed windows, 5-minute lookback, staleness markers)."""

from __future__ import annotations

from typing import Any

from meshscope.model.metrics import Labels
from meshscope.query.promql.evaluator import Context, Evaluator, parse
from meshscope.query.promql.queryable import Queryable
from meshscope.query.promql.steps import Ranges, Scalars, Steps, Text, Vectors
from meshscope.query.promql.values import (
    BadQueryError,
    Matrix,
    Sample,
    Scalar,
    SeriesPoints,
    String,
    Value,
    Vector,
)

DEFAULT_LOOKBACK_MS = 5 * 60 * 1000
DEFAULT_SUBQUERY_STEP_MS = 60 * 1000
MAX_STEPS = 11_000


class Engine:
    def __init__(
        self,
        queryable: Queryable,
        lookback_ms: int = DEFAULT_LOOKBACK_MS,
        default_subquery_step_ms: int = DEFAULT_SUBQUERY_STEP_MS,
    ) -> None:
        self.queryable = queryable
        self.lookback_ms = lookback_ms
        self.default_subquery_step_ms = default_subquery_step_ms

    def _evaluate(self, query: str, start: int, end: int, step: int) -> tuple[Steps, list[int]]:
        node: Any = parse(query)
        ctx = Context(self.queryable, start, end, self.lookback_ms, self.default_subquery_step_ms)
        steps = list(range(start, end + 1, step))
        return Evaluator(ctx, steps).eval(node), steps

    def instant(self, query: str, t_ms: int) -> Value:
        value, _ = self._evaluate(query, t_ms, t_ms, 1)
        if isinstance(value, Scalars):
            return Scalar(t_ms, value.values[0])
        if isinstance(value, Text):
            return String(t_ms, value.value)
        if isinstance(value, Vectors):
            return Vector([Sample(labels, t_ms, v) for labels, v in value.steps[0]])
        return _ranges_matrix(value)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> Matrix:
        if step_ms <= 0:
            raise BadQueryError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if end_ms < start_ms:
            raise BadQueryError("end timestamp must not be before start time")
        if (end_ms - start_ms) // step_ms > MAX_STEPS:
            raise BadQueryError(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        value, steps = self._evaluate(query, start_ms, end_ms, step_ms)
        if isinstance(value, Scalars):
            return Matrix([SeriesPoints((), list(zip(steps, value.values, strict=True)))])
        if not isinstance(value, Vectors):
            kind = "range vector" if isinstance(value, Ranges) else "string"
            raise BadQueryError(
                f'invalid expression type "{kind}" for range query, '
                "must be Scalar or instant Vector"
            )
        series: dict[Labels, list[tuple[int, float]]] = {}
        for t, vector in zip(steps, value.steps, strict=True):
            for labels, v in vector:
                series.setdefault(labels, []).append((t, v))
        return Matrix([SeriesPoints(labels, series[labels]) for labels in sorted(series)])


def _ranges_matrix(value: Ranges) -> Matrix:
    out: list[SeriesPoints] = []
    for raw in value.series:
        for _, ts, vs in value.windows(raw):
            out.append(SeriesPoints(raw.labels, list(zip(ts, vs, strict=True))))
    return Matrix(out)
