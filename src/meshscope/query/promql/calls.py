"""Evaluation of PromQL function calls (`rate(...)`, `label_replace(...)`, ...)."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import promql_parser as pp

from meshscope.model.metrics import Labels
from meshscope.model.regex import Match, RegexError, compile_pattern
from meshscope.query.promql import functions as fn
from meshscope.query.promql.histograms import histogram_quantile
from meshscope.query.promql.queryable import RawSeries
from meshscope.query.promql.steps import (
    Element,
    Ranges,
    Scalars,
    Steps,
    Text,
    Vectors,
    check_unique,
    instant_times,
)
from meshscope.query.promql.values import (
    NAME,
    PromQLError,
    drop_name,
    get_label,
    make_labels,
    set_label,
)

if TYPE_CHECKING:
    from meshscope.query.promql.evaluator import Evaluator

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def call(ev: Evaluator, node: Any) -> Steps:
    name = str(node.func.name)
    args = list(node.args)
    if name in fn.RANGE_FUNCTIONS:
        return _range_call(ev, name, args)
    if name == "timestamp":
        return _timestamp(ev, args[0])
    if name in ("absent", "absent_over_time"):
        return _absent(ev, name, args[0])
    if name == "time":
        return Scalars([t / 1000 for t in ev.steps])
    if name == "pi":
        return Scalars([math.pi] * len(ev.steps))
    if name == "vector":
        values = _scalars(ev, args[0])
        return Vectors([[((), v)] for v in values])
    if name == "scalar":
        vectors = _vectors(ev, args[0])
        return Scalars([vec[0][1] if len(vec) == 1 else math.nan for vec in vectors])
    if name in fn.TIME_FUNCTIONS:
        if not args:
            part = fn.TIME_FUNCTIONS[name]
            return Vectors([[((), part(t / 1000))] for t in ev.steps])
        return _map(ev, args[0], fn.TIME_FUNCTIONS[name])
    if name in fn.MATH_FUNCTIONS:
        return _map(ev, args[0], fn.MATH_FUNCTIONS[name])
    if name in ("sort", "sort_desc"):
        return _sort(_vectors(ev, args[0]), name == "sort_desc")
    if name in ("clamp", "clamp_min", "clamp_max", "round"):
        return _clamp_round(ev, name, args)
    if name == "histogram_quantile":
        qs = _scalars(ev, args[0])
        vectors = _vectors(ev, args[1])
        return Vectors(
            check_unique([histogram_quantile(q, v) for q, v in zip(qs, vectors, strict=True)])
        )
    if name == "label_replace":
        return _label_replace(ev, args)
    if name == "label_join":
        return _label_join(ev, args)
    raise PromQLError(f"function {name!r} is not supported")


def _scalars(ev: Evaluator, node: Any) -> list[float]:
    value = ev.eval(node)
    if not isinstance(value, Scalars):
        raise PromQLError("expected a scalar argument")
    return value.values


def _vectors(ev: Evaluator, node: Any) -> list[list[Element]]:
    value = ev.eval(node)
    if not isinstance(value, Vectors):
        raise PromQLError("expected an instant vector argument")
    return value.steps


def _text(ev: Evaluator, node: Any) -> str:
    value = ev.eval(node)
    if not isinstance(value, Text):
        raise PromQLError("expected a string argument")
    return value.value


def _range_call(ev: Evaluator, name: str, args: list[Any]) -> Vectors:
    param_nodes = args[:1] if name in fn.RANGE_PARAM_FIRST else args[1:]
    matrix_node = args[1] if name in fn.RANGE_PARAM_FIRST else args[0]
    params = [_scalars(ev, p) for p in param_nodes]
    matrix = ev.eval(matrix_node)
    if not isinstance(matrix, Ranges):
        raise PromQLError(f"function {name} needs a range vector")
    func = fn.RANGE_FUNCTIONS[name]
    keep = name in fn.KEEPS_NAME
    out: list[list[Element]] = [[] for _ in ev.steps]
    for series in matrix.series:
        labels = series.labels if keep else drop_name(series.labels)
        for index, ts, vs in matrix.windows(series):
            end = matrix.ends[index]
            window = fn.Window(
                end - matrix.range_ms,
                end,
                matrix.range_ms,
                ev.steps[index],
                tuple(p[index] for p in params),
            )
            value = func(ts, vs, window)
            if value is not None:
                out[index].append((labels, value))
    return Vectors(check_unique(out))


def _timestamp(ev: Evaluator, node: Any) -> Vectors:
    inner = node
    while isinstance(inner, pp.ParenExpr):
        inner = inner.expr
    if isinstance(inner, pp.VectorSelector):
        from meshscope.query.promql.evaluator import selector_matchers

        refs = ev.refs(inner)
        lookback = ev.ctx.lookback_ms
        series = ev.ctx.queryable.select(selector_matchers(inner), min(refs) - lookback, max(refs))
        steps = instant_times(series, refs, lookback)
    else:
        vectors = _vectors(ev, node)
        steps = [
            [(lb, t / 1000) for lb, _ in vec] for vec, t in zip(vectors, ev.steps, strict=True)
        ]
    return Vectors(check_unique([[(drop_name(lb), v) for lb, v in vec] for vec in steps]))


def _absent_labels(node: Any) -> Labels:
    if isinstance(node, pp.MatrixSelector):
        node = node.vector_selector
    if not isinstance(node, pp.VectorSelector):
        return ()
    equal: dict[str, str] = {}
    dropped: set[str] = set()
    for m in node.matchers.matchers:
        if m.name == NAME:
            continue
        if m.op == pp.MatchOp.Equal and m.name not in equal:
            equal[m.name] = m.value
        else:
            dropped.add(m.name)
    return make_labels((k, v) for k, v in equal.items() if k not in dropped)


def _absent(ev: Evaluator, name: str, node: Any) -> Vectors:
    labels = _absent_labels(node)
    value = ev.eval(node)
    if name == "absent":
        if not isinstance(value, Vectors):
            raise PromQLError("absent needs an instant vector")
        return Vectors([[] if vec else [(labels, 1.0)] for vec in value.steps])
    if not isinstance(value, Ranges):
        raise PromQLError("absent_over_time needs a range vector")
    present = [False] * len(ev.steps)
    for series in value.series:
        for index, _, _ in value.windows(series):
            present[index] = True
    return Vectors([[] if hit else [(labels, 1.0)] for hit in present])


def _map(ev: Evaluator, node: Any, func: Any) -> Vectors:
    vectors = _vectors(ev, node)
    return Vectors(check_unique([[(drop_name(lb), func(v)) for lb, v in vec] for vec in vectors]))


def _sort(vectors: list[list[Element]], descending: bool) -> Vectors:
    def key(element: Element) -> tuple[bool, float]:
        value = element[1]
        return (not math.isnan(value), -value if descending else value)

    return Vectors([sorted(vec, key=key) for vec in vectors])


def _clamp_round(ev: Evaluator, name: str, args: list[Any]) -> Vectors:
    vectors = _vectors(ev, args[0])
    params = [_scalars(ev, a) for a in args[1:]]
    out: list[list[Element]] = []
    for index, vec in enumerate(vectors):
        p = [values[index] for values in params]
        if name == "clamp":
            if p[1] < p[0]:
                out.append([])
                continue
            out.append([(drop_name(lb), fn.clamp(v, p[0], p[1])) for lb, v in vec])
        elif name == "clamp_min":
            out.append([(drop_name(lb), fn.go_max(p[0], v)) for lb, v in vec])
        elif name == "clamp_max":
            out.append([(drop_name(lb), fn.go_min(p[0], v)) for lb, v in vec])
        else:
            nearest = p[0] if p else 1.0
            out.append([(drop_name(lb), fn.round_value(v, nearest)) for lb, v in vec])
    return Vectors(check_unique(out))


def _go_template(template: str, match: Match) -> str:
    def group(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        ref = m.group(1) or m.group(2)
        try:
            value = match.group(int(ref)) if ref.isdigit() else match.group(ref)
        except (IndexError, KeyError):
            return ""
        return value or ""

    return re.sub(r"\$(?:\{(\w+)\}|(\w+)|\$)", group, template)


def _label_replace(ev: Evaluator, args: list[Any]) -> Vectors:
    vectors = _vectors(ev, args[0])
    dst, replacement, src, regex = (_text(ev, a) for a in args[1:5])
    try:
        pattern = compile_pattern(regex, anchored=True)
    except RegexError as exc:
        raise PromQLError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not _LABEL_NAME.match(dst):
        raise PromQLError(f"invalid destination label name in label_replace(): {dst}")
    out: list[list[Element]] = []
    for vec in vectors:
        step: list[Element] = []
        for labels, value in vec:
            match = pattern.match(get_label(labels, src))
            if match is not None:
                labels = set_label(labels, dst, _go_template(replacement, match))
            step.append((labels, value))
        out.append(step)
    return Vectors(check_unique(out))


def _label_join(ev: Evaluator, args: list[Any]) -> Vectors:
    vectors = _vectors(ev, args[0])
    dst, sep = _text(ev, args[1]), _text(ev, args[2])
    sources = [_text(ev, a) for a in args[3:]]
    if not _LABEL_NAME.match(dst):
        raise PromQLError(f"invalid destination label name in label_join(): {dst}")
    return Vectors(
        check_unique(
            [
                [
                    (set_label(lb, dst, sep.join(get_label(lb, s) for s in sources)), v)
                    for lb, v in vec
                ]
                for vec in vectors
            ]
        )
    )


def subquery_series(value: Steps, steps: list[int]) -> list[RawSeries]:
    """The result of a subquery's inner evaluation as series (what range functions read)."""
    if isinstance(value, Scalars):
        return [RawSeries((), list(steps), list(value.values))]
    if not isinstance(value, Vectors):
        raise PromQLError("subquery needs a scalar or instant vector expression")
    by_labels: dict[Labels, RawSeries] = {}
    for t, vec in zip(steps, value.steps, strict=True):
        for labels, v in vec:
            series = by_labels.get(labels)
            if series is None:
                series = by_labels[labels] = RawSeries(labels, [], [])
            series.ts.append(t)
            series.vs.append(v)
    return list(by_labels.values())
