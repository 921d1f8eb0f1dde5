"""The PromQL engine: instant and range queries over a Queryable, with Prometheus 2.x
semantics (closed windows, 5-minute lookback, staleness markers).

Range queries run on the vectorised evaluator (range_evaluator.py: every step at once, as
arrays); instant queries on the per-step evaluator (evaluator.py), which also serves as the
reference the tests hold the vectorised one to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meshscope.model.metrics import Labels
from meshscope.query.promql.block import ArrayRanges, Block, Floats, Mask, ScalarRow, Times
from meshscope.query.promql.evaluator import Context, Evaluator, parse
from meshscope.query.promql.queryable import Queryable
from meshscope.query.promql.range_evaluator import range_value
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


@dataclass(slots=True)
class RangeResult:
    """A range query's matrix as arrays: rows sorted by labels, one column per step."""

    labels: list[Labels]
    steps: Times
    values: Floats
    present: Mask

    def matrix(self) -> Matrix:
        out: list[SeriesPoints] = []
        for labels, values, present in zip(self.labels, self.values, self.present, strict=True):
            index = np.flatnonzero(present)
            points = list(zip(self.steps[index].tolist(), values[index].tolist(), strict=True))
            out.append(SeriesPoints(labels, points))
        return Matrix(out)


class Engine:
    def __init__(
        self,
        queryable: Queryable,
        lookback_ms: int = DEFAULT_LOOKBACK_MS,
        default_subquery_step_ms: int = DEFAULT_SUBQUERY_STEP_MS,
        vectorised: bool = True,
    ) -> None:
        self.queryable = queryable
        self.lookback_ms = lookback_ms
        self.default_subquery_step_ms = default_subquery_step_ms
        self.vectorised = vectorised
        self.last_fallbacks = 0  # nodes the last vectorised query evaluated step by step

    def _context(self, start: int, end: int) -> Context:
        return Context(self.queryable, start, end, self.lookback_ms, self.default_subquery_step_ms)

    def _evaluate(self, query: str, start: int, end: int, step: int) -> tuple[Steps, list[int]]:
        node: Any = parse(query)
        steps = list(range(start, end + 1, step))
        return Evaluator(self._context(start, end), steps).eval(node), steps

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
        return self.range_arrays(query, start_ms, end_ms, step_ms).matrix()

    def range_arrays(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> RangeResult:
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
        if not self.vectorised:
            value, steps = self._evaluate(query, start_ms, end_ms, step_ms)
            return _steps_result(value, steps)
        node: Any = parse(query)
        grid = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        result, self.last_fallbacks = range_value(self._context(start_ms, end_ms), grid, node)
        if isinstance(result, ScalarRow):
            return RangeResult([()], grid, result.values[None, :], np.ones((1, len(grid)), bool))
        if not isinstance(result, Block):
            raise _not_vector(isinstance(result, ArrayRanges))
        return _sorted(result, grid)


def _not_vector(is_range: bool) -> BadQueryError:
    kind = "range vector" if is_range else "string"
    return BadQueryError(
        f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector'
    )


def _sorted(block: Block, steps: Times) -> RangeResult:
    from meshscope.query.promql.block import unique

    block = unique(block)
    keep = sorted(range(len(block.labels)), key=block.labels.__getitem__)
    keep = [i for i in keep if block.present[i].any()]
    return RangeResult(
        [block.labels[i] for i in keep], steps, block.values[keep], block.present[keep]
    )


def _steps_result(value: Steps, steps: list[int]) -> RangeResult:
    grid = np.array(steps, np.int64)
    if isinstance(value, Scalars):
        return RangeResult([()], grid, np.array([value.values]), np.ones((1, len(steps)), bool))
    if not isinstance(value, Vectors):
        raise _not_vector(isinstance(value, Ranges))
    from meshscope.query.promql.block import from_vectors

    return _sorted(from_vectors(value.steps), grid)


def _ranges_matrix(value: Ranges) -> Matrix:
    out: list[SeriesPoints] = []
    for raw in value.series:
        for _, ts, vs in value.windows(raw):
            out.append(SeriesPoints(raw.labels, list(zip(ts, vs, strict=True))))
    return Matrix(out)
