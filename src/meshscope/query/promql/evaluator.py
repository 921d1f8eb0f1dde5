"""Evaluation of the promql-parser AST over a list of step timestamps.

This module and `calls.py` are the only ones that touch promql-parser's AST classes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser as pp

from meshscope.model.regex import RegexError, check
from meshscope.query import budget
from meshscope.query.promql import aggregations, binary
from meshscope.query.promql.queryable import Queryable
from meshscope.query.promql.steps import (
    Ranges,
    Scalars,
    Steps,
    Text,
    Vectors,
    check_unique,
    instant_values,
)
from meshscope.query.promql.values import NAME, BadQueryError, PromQLError, drop_name
from meshscope.store.base import LabelMatcher, MatchOp

# promql-parser's enums are not hashable: key by their str().
_MATCH_OPS = {
    "MatchOp.Equal": MatchOp.EQ,
    "MatchOp.NotEqual": MatchOp.NE,
    "MatchOp.Re": MatchOp.RE,
    "MatchOp.NotRe": MatchOp.NRE,
}
_CARDS = {
    "VectorMatchCardinality.OneToOne": "one-to-one",
    "VectorMatchCardinality.ManyToOne": "many-to-one",
    "VectorMatchCardinality.OneToMany": "one-to-many",
    "VectorMatchCardinality.ManyToMany": "many-to-many",
}


def parse(query: str) -> Any:
    # promql-parser's time grows quadratically with chained operators (2,000 `+`: ~1 s
    # holding the GIL) and the evaluators recurse per level: bound the depth first.
    budget.check_depth(query)
    try:
        return pp.parse(query)
    except ValueError as exc:
        raise BadQueryError(f"parse error: {_with_reason(str(exc))}") from exc


_ILLEGAL_REGEX = "illegal regex for "


def _with_reason(message: str) -> str:
    """promql-parser's `illegal regex for <pattern>` with RE2's reason, as Prometheus gives
    one (`error parsing regexp: missing closing ): ...`)."""
    if not message.startswith(_ILLEGAL_REGEX):
        return message
    try:
        check(message.removeprefix(_ILLEGAL_REGEX))
    except RegexError as error:
        return str(error)
    return message


def millis(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def selector_matchers(node: Any) -> list[LabelMatcher]:
    out = [LabelMatcher(NAME, MatchOp.EQ, node.name)] if node.name else []
    try:
        out += [
            LabelMatcher(m.name, _MATCH_OPS[str(m.op)], m.value) for m in node.matchers.matchers
        ]
    except RegexError as error:
        raise BadQueryError(str(error)) from None
    if node.matchers.or_matchers:
        raise PromQLError("'or' inside label matchers is not supported")
    return out


def at_ms(node: Any) -> int:
    """The time (ms) of an `@ <timestamp>` modifier. promql-parser panics reading one
    outside the system clock's range (`@ 1e20`): refused like Prometheus does."""
    try:
        ms: int = round(node.at.at.timestamp() * 1000)
        return ms
    except (OverflowError, ValueError) as error:
        raise _at_error() from error
    except BaseException as error:  # pyo3's PanicException derives from BaseException
        if type(error).__name__ != "PanicException":
            raise
        raise _at_error() from None


def _at_error() -> BadQueryError:
    return BadQueryError("parse error: timestamp out of bounds for @ modifier")


@dataclass(slots=True)
class Context:
    queryable: Queryable
    start: int  # query start and end (ms), for @ start() / end()
    end: int
    lookback_ms: int
    default_step_ms: int


class Evaluator:
    def __init__(self, ctx: Context, steps: list[int]) -> None:
        self.ctx = ctx
        self.steps = steps

    def eval(self, node: Any) -> Steps:
        budget.check()
        if isinstance(node, pp.NumberLiteral):
            return Scalars([float(node.val)] * len(self.steps))
        if isinstance(node, pp.StringLiteral):
            return Text(str(node.val))
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.VectorSelector):
            return self._vector_selector(node)
        if isinstance(node, pp.MatrixSelector):
            return self._matrix_selector(node)
        if isinstance(node, pp.SubqueryExpr):
            return self._subquery(node)
        if isinstance(node, pp.UnaryExpr):
            return self._negate(self.eval(node.expr))
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node)
        if isinstance(node, pp.AggregateExpr):
            return self._aggregate(node)
        if isinstance(node, pp.Call):
            from meshscope.query.promql.calls import call

            return call(self, node)
        raise PromQLError(f"unsupported expression {type(node).__name__}")

    # ---- selectors ---------------------------------------------------------------------

    def refs(self, node: Any) -> list[int]:
        """The time each step looks at, after `@` and `offset`."""
        offset = millis(node.offset)
        at = node.at
        if at is None:
            return [t - offset for t in self.steps]
        if at.type == pp.AtModifierType.Start:
            fixed = self.ctx.start
        elif at.type == pp.AtModifierType.End:
            fixed = self.ctx.end
        else:
            fixed = at_ms(node)
        return [fixed - offset] * len(self.steps)

    def _vector_selector(self, node: Any) -> Vectors:
        refs = self.refs(node)
        lookback = self.ctx.lookback_ms
        series = self.ctx.queryable.select(selector_matchers(node), min(refs) - lookback, max(refs))
        return Vectors(instant_values(series, refs, lookback))

    def _matrix_selector(self, node: Any) -> Ranges:
        selector = node.vector_selector
        range_ms = millis(node.range)
        refs = self.refs(selector)
        series = self.ctx.queryable.select(
            selector_matchers(selector), min(refs) - range_ms, max(refs)
        )
        return Ranges(series, range_ms, refs, selector)

    def _subquery(self, node: Any) -> Ranges:
        from meshscope.query.promql.calls import subquery_series

        range_ms = millis(node.range)
        step = millis(node.step) or self.ctx.default_step_ms
        refs = self.refs(node)
        first = min(refs) - range_ms
        start = step * (first // step)
        if start < first:
            start += step
        budget.check_steps((max(refs) - start) // step + 1)
        inner = Evaluator(self.ctx, list(range(start, max(refs) + 1, step)))
        value = inner.eval(node.expr)
        return Ranges(subquery_series(value, inner.steps), range_ms, refs)

    # ---- operators ---------------------------------------------------------------------

    def _negate(self, value: Steps) -> Steps:
        if isinstance(value, Scalars):
            return Scalars([-v for v in value.values])
        if isinstance(value, Vectors):
            return Vectors([[(drop_name(lb), -v) for lb, v in vec] for vec in value.steps])
        raise PromQLError("unary minus needs a scalar or instant vector")

    def _binary(self, node: Any) -> Steps:
        op = str(node.op)
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        modifier = node.modifier
        return_bool = bool(modifier is not None and modifier.return_bool)
        if isinstance(lhs, Scalars) and isinstance(rhs, Scalars):
            pairs = zip(lhs.values, rhs.values, strict=True)
            return Scalars([binary.scalar_scalar(op, a, b, return_bool) for a, b in pairs])
        if isinstance(lhs, Vectors) and isinstance(rhs, Scalars):
            return Vectors(
                check_unique(
                    [
                        binary.vector_scalar(op, vec, s, False, return_bool)
                        for vec, s in zip(lhs.steps, rhs.values, strict=True)
                    ]
                )
            )
        if isinstance(lhs, Scalars) and isinstance(rhs, Vectors):
            return Vectors(
                check_unique(
                    [
                        binary.vector_scalar(op, vec, s, True, return_bool)
                        for vec, s in zip(rhs.steps, lhs.values, strict=True)
                    ]
                )
            )
        if not (isinstance(lhs, Vectors) and isinstance(rhs, Vectors)):
            raise PromQLError(f"binary operator {op!r} needs scalars or instant vectors")
        matching = _matching(modifier)
        pairs_v = zip(lhs.steps, rhs.steps, strict=True)
        if op in binary.SET_OPERATORS:
            return Vectors([binary.set_operation(op, a, b, matching) for a, b in pairs_v])
        return Vectors(
            check_unique(
                [binary.vector_vector(op, a, b, matching, return_bool) for a, b in pairs_v]
            )
        )

    def _aggregate(self, node: Any) -> Vectors:
        op = str(node.op)
        if op not in aggregations.AGGREGATIONS:
            raise PromQLError(f"aggregation {op!r} is not supported")
        inner = self.eval(node.expr)
        if not isinstance(inner, Vectors):
            raise PromQLError(f"aggregation {op} needs an instant vector")
        params: list[float | str | None] = [None] * len(self.steps)
        if node.param is not None:
            param = self.eval(node.param)
            if isinstance(param, Text):
                params = [param.value] * len(self.steps)
            elif isinstance(param, Scalars):
                params = list(param.values)
            else:
                raise PromQLError(f"aggregation {op} needs a scalar or string parameter")
        grouping: list[str] = []
        without = False
        if node.modifier is not None:
            grouping = list(node.modifier.labels)
            without = node.modifier.type == pp.AggModifierType.Without
        return Vectors(
            [
                aggregations.aggregate(op, vec, grouping, without, param)
                for vec, param in zip(inner.steps, params, strict=True)
            ]
        )


def _matching(modifier: Any) -> binary.Matching:
    if modifier is None:
        return binary.Matching()
    card = _CARDS[str(modifier.card)]
    labels: tuple[str, ...] = ()
    on = False
    if modifier.matching is not None:
        labels = tuple(modifier.matching.labels)
        on = modifier.matching.type == pp.LabelModifierType.Include
    include = tuple(modifier.group_labels or ())
    return binary.Matching(card, on, labels, include)
