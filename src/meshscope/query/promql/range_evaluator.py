"""The vectorised evaluator: each node of the promql-parser AST is computed for all steps
of a range query at once, as arrays (see block.py). Selectors binary-search every step in
each series' sample arrays; range functions, aggregations, binary operators and
histogram_quantile are array expressions. A node kind without an array form here is
evaluated by the per-step `Evaluator` and converted, so every query runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import promql_parser as pp

from meshscope.query import budget
from meshscope.query.promql import block_aggregations, block_binary
from meshscope.query.promql.block import (
    ArrayRanges,
    Block,
    ScalarRow,
    Times,
    Value,
    block_series,
    drop_names,
    from_steps,
)
from meshscope.query.promql.evaluator import (
    Context,
    Evaluator,
    _matching,
    at_ms,
    millis,
    selector_matchers,
)
from meshscope.query.promql.steps import Text
from meshscope.query.promql.values import STALE_NAN_BITS, PromQLError


class RangeEvaluator:
    def __init__(self, ctx: Context, steps: Times) -> None:
        self.ctx = ctx
        self.steps = steps
        self.fallbacks = 0  # nodes evaluated step by step (for tests)

    @property
    def size(self) -> int:
        return len(self.steps)

    def fallback(self, node: Any) -> Value:
        self.fallbacks += 1
        return from_steps(Evaluator(self.ctx, self.steps.tolist()).eval(node))

    def eval(self, node: Any) -> Value:
        budget.check()
        if isinstance(node, pp.NumberLiteral):
            return ScalarRow(np.full(self.size, float(node.val)))
        if isinstance(node, pp.StringLiteral):
            return Text(str(node.val))
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.VectorSelector):
            return self.selector(node)
        if isinstance(node, pp.MatrixSelector):
            return self._matrix_selector(node)
        if isinstance(node, pp.SubqueryExpr):
            return self._subquery(node)
        if isinstance(node, pp.UnaryExpr):
            return self._negate(node)
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node)
        if isinstance(node, pp.AggregateExpr):
            return self._aggregate(node)
        if isinstance(node, pp.Call):
            from meshscope.query.promql.block_calls import call

            return call(self, node)
        return self.fallback(node)

    # ---- selectors ---------------------------------------------------------------------

    def refs(self, node: Any) -> Times:
        """The time each step looks at, after `@` and `offset`."""
        offset = millis(node.offset)
        at = node.at
        if at is None:
            return self.steps - offset
        if at.type == pp.AtModifierType.Start:
            fixed = self.ctx.start
        elif at.type == pp.AtModifierType.End:
            fixed = self.ctx.end
        else:
            fixed = at_ms(node)
        return np.full(self.size, fixed - offset, np.int64)

    def selector(self, node: Any, times: bool = False) -> Block:
        """Each series' latest sample in [ref - lookback, ref] at each step, unless it is a
        staleness marker; `times`: the sample's timestamp (s) instead of its value."""
        refs = self.refs(node)
        lookback = self.ctx.lookback_ms
        found = self.ctx.queryable.select_arrays(
            selector_matchers(node), int(refs.min()) - lookback, int(refs.max())
        )
        budget.charge(0, len(found) * self.size)  # the block's points, beside the samples
        values = np.zeros((len(found), self.size))
        present = np.zeros((len(found), self.size), np.bool_)
        for row, series in enumerate(found):
            if len(series.ts) == 0:
                continue
            index = np.searchsorted(series.ts, refs, "right") - 1
            safe = np.maximum(index, 0)
            picked = series.vs[safe]
            at = series.ts[safe]
            present[row] = (
                (index >= 0) & (at >= refs - lookback) & (picked.view(np.uint64) != STALE_NAN_BITS)
            )
            values[row] = at / 1000 if times else picked
        return Block([s.labels for s in found], values, present)

    def _matrix_selector(self, node: Any) -> ArrayRanges:
        selector = node.vector_selector
        range_ms = millis(node.range)
        refs = self.refs(selector)
        found = self.ctx.queryable.select_arrays(
            selector_matchers(selector), int(refs.min()) - range_ms, int(refs.max())
        )
        return ArrayRanges(found, range_ms, refs, selector)

    def _subquery(self, node: Any) -> Value:
        range_ms = millis(node.range)
        step = millis(node.step) or self.ctx.default_step_ms
        refs = self.refs(node)
        first = int(refs.min()) - range_ms
        start = step * (first // step)
        if start < first:
            start += step
        budget.check_steps((int(refs.max()) - start) // step + 1)
        inner_steps = np.arange(start, int(refs.max()) + 1, step, dtype=np.int64)
        inner = RangeEvaluator(self.ctx, inner_steps)
        value = inner.eval(node.expr)
        self.fallbacks += inner.fallbacks
        if isinstance(value, ScalarRow):
            value = Block([()], value.values[None, :], np.ones((1, len(inner_steps)), np.bool_))
        if not isinstance(value, Block):
            return self.fallback(node)
        return ArrayRanges(block_series(value, inner_steps), range_ms, refs)

    # ---- operators ---------------------------------------------------------------------

    def _negate(self, node: Any) -> Value:
        value = self.eval(node.expr)
        if isinstance(value, ScalarRow):
            return ScalarRow(-value.values)
        if isinstance(value, Block):
            return drop_names(Block(value.labels, -value.values, value.present))
        return self.fallback(node)

    def _binary(self, node: Any) -> Value:
        op = str(node.op)
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        modifier = node.modifier
        return_bool = bool(modifier is not None and modifier.return_bool)
        if isinstance(lhs, ScalarRow) and isinstance(rhs, ScalarRow):
            return ScalarRow(block_binary.scalar_scalar(op, lhs.values, rhs.values))
        if isinstance(lhs, Block) and isinstance(rhs, ScalarRow):
            return block_binary.vector_scalar(op, lhs, rhs.values, False, return_bool)
        if isinstance(lhs, ScalarRow) and isinstance(rhs, Block):
            return block_binary.vector_scalar(op, rhs, lhs.values, True, return_bool)
        if not (isinstance(lhs, Block) and isinstance(rhs, Block)):
            return self.fallback(node)
        matching = _matching(modifier)
        if op in ("and", "or", "unless"):
            return block_binary.set_operation(op, lhs, rhs, matching)
        return block_binary.vector_vector(op, lhs, rhs, matching, return_bool)

    def _aggregate(self, node: Any) -> Value:
        op = str(node.op)
        inner = self.eval(node.expr)
        params: list[float | str | None] = [None] * self.size
        if node.param is not None:
            param = self.eval(node.param)
            if isinstance(param, Text):
                params = [param.value] * self.size
            elif isinstance(param, ScalarRow):
                params = param.values.tolist()
            else:
                return self.fallback(node)
        if not isinstance(inner, Block) or op not in block_aggregations.AGGREGATIONS:
            return self.fallback(node)
        grouping: list[str] = []
        without = False
        if node.modifier is not None:
            grouping = list(node.modifier.labels)
            without = node.modifier.type == pp.AggModifierType.Without
        return block_aggregations.aggregate(op, inner, grouping, without, params)


def range_value(ctx: Context, steps: Times, node: Any) -> tuple[Value, int]:
    """The value of `node` at every step, and how many nodes fell back to the per-step
    evaluator."""
    evaluator = RangeEvaluator(ctx, steps)
    value = evaluator.eval(node)
    if isinstance(value, Block | ScalarRow | Text | ArrayRanges):
        return value, evaluator.fallbacks
    raise PromQLError("unexpected value")  # pragma: no cover
