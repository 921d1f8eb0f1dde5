"""Function calls in the vectorised evaluator (`rate(...)`, `histogram_quantile(...)`,
`abs(...)`, ...). Calls without an array form here fall back to the per-step evaluator."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import promql_parser as pp

from meshscope.model.metrics import Labels
from meshscope.model.regex import RegexError, compile_pattern
from meshscope.query.promql import functions as fn
from meshscope.query.promql import range_functions as rf
from meshscope.query.promql.block import (
    ArrayRanges,
    Block,
    Floats,
    ScalarRow,
    Value,
    drop_names,
    unique,
)
from meshscope.query.promql.block_histograms import histogram_quantile
from meshscope.query.promql.calls import _LABEL_NAME, _absent_labels, _go_template
from meshscope.query.promql.queryable import ArraySeries
from meshscope.query.promql.steps import Text
from meshscope.query.promql.values import PromQLError, drop_name, get_label, set_label

if TYPE_CHECKING:
    from meshscope.query.promql.range_evaluator import RangeEvaluator

_NUMPY_MATH: dict[str, Callable[[Floats], Floats]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sgn": np.sign,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
}
_ELEMENTWISE = {**fn.MATH_FUNCTIONS, **fn.TIME_FUNCTIONS}


def call(ev: RangeEvaluator, node: Any) -> Value:
    name = str(node.func.name)
    args = list(node.args)
    out = _call(ev, node, name, args)
    return ev.fallback(node) if out is None else out


def _call(ev: RangeEvaluator, node: Any, name: str, args: list[Any]) -> Value | None:
    if name in fn.RANGE_FUNCTIONS:
        return _range_call(ev, name, args)
    if name == "time":
        return ScalarRow(ev.steps / 1000)
    if name == "pi":
        return ScalarRow(np.full(ev.size, math.pi))
    if name == "vector":
        value = ev.eval(args[0])
        if not isinstance(value, ScalarRow):
            return None
        return Block([()], value.values[None, :].copy(), np.ones((1, ev.size), np.bool_))
    if name in fn.TIME_FUNCTIONS and not args:
        part = fn.TIME_FUNCTIONS[name]
        times = np.array([part(t / 1000) for t in ev.steps.tolist()])
        return Block([()], times[None, :], np.ones((1, ev.size), np.bool_))
    if name in ("sort", "sort_desc"):  # a range query's result has no order
        return _block(ev, args[0])
    if name in ("absent", "absent_over_time"):
        return _absent(ev, name, args[0])
    if name == "timestamp":
        return _timestamp(ev, args[0])
    if name == "histogram_quantile":
        qs, vector = ev.eval(args[0]), _block(ev, args[1])
        if not isinstance(qs, ScalarRow) or vector is None:
            return None
        return histogram_quantile(qs.values, vector)
    block = _block(ev, args[0]) if args else None
    if block is None:
        return None
    if name == "scalar":
        single = block.present.sum(axis=0) == 1
        if not len(block.labels):
            return ScalarRow(np.full(ev.size, math.nan))
        picked = block.values[block.present.argmax(axis=0), np.arange(ev.size)]
        return ScalarRow(np.where(single, picked, math.nan))
    if name in _NUMPY_MATH:
        with np.errstate(all="ignore"):
            return _map(block, _NUMPY_MATH[name](block.values))
    if name in _ELEMENTWISE:
        func = _ELEMENTWISE[name]
        values = np.zeros_like(block.values)
        values[block.present] = [func(v) for v in block.values[block.present].tolist()]
        return _map(block, values)
    if name in ("clamp", "clamp_min", "clamp_max", "round"):
        return _clamp_round(ev, name, block, args[1:])
    if name in ("label_replace", "label_join"):
        texts = [ev.eval(arg) for arg in args[1:]]
        if not all(isinstance(t, Text) for t in texts):
            return None
        relabel = _relabel(name, [t.value for t in texts if isinstance(t, Text)])
        labels = [relabel(lb) for lb in block.labels]
        return unique(Block(labels, block.values, block.present))
    return None


def _relabel(name: str, texts: list[str]) -> Callable[[Labels], Labels]:
    """The label change label_replace / label_join makes to each series (calls.py's rules
    and errors, applied to one-series vectors)."""
    if name == "label_replace":
        dst, replacement, src, regex = texts
        pattern = compile_pattern(regex, anchored=True) if _valid(regex) else None
        if pattern is None or not _LABEL_NAME.match(dst):
            raise_label_error(name, texts)

        def replace(labels: Labels) -> Labels:
            assert pattern is not None
            match = pattern.match(get_label(labels, src))
            if match is None:
                return labels
            return set_label(labels, dst, _go_template(replacement, match))

        return replace
    dst, sep, sources = texts[0], texts[1], texts[2:]
    if not _LABEL_NAME.match(dst):
        raise_label_error(name, texts)
    return lambda labels: set_label(labels, dst, sep.join(get_label(labels, s) for s in sources))


def _valid(regex: str) -> bool:
    try:
        compile_pattern(regex, anchored=True)
    except RegexError:
        return False
    return True


def raise_label_error(name: str, texts: list[str]) -> None:
    if name == "label_replace" and not _valid(texts[3]):
        raise PromQLError(f"invalid regular expression in label_replace(): {texts[3]}")
    raise PromQLError(f"invalid destination label name in {name}(): {texts[0]}")


def _block(ev: RangeEvaluator, node: Any) -> Block | None:
    value = ev.eval(node)
    return value if isinstance(value, Block) else None


def _map(block: Block, values: Floats) -> Block:
    return unique(drop_names(Block(block.labels, values, block.present)))


def _range_call(ev: RangeEvaluator, name: str, args: list[Any]) -> Value | None:
    param_nodes = args[:1] if name in fn.RANGE_PARAM_FIRST else args[1:]
    matrix_node = args[1] if name in fn.RANGE_PARAM_FIRST else args[0]
    params: list[Floats] = []
    for param_node in param_nodes:
        param = ev.eval(param_node)
        if not isinstance(param, ScalarRow):
            return None
        params.append(param.values)
    ranges = ev.eval(matrix_node)
    if not isinstance(ranges, ArrayRanges):
        return None
    _refuse_clashes(name, ranges)
    # A few series at a time: the temporaries of a chunk stay in the CPU caches.
    parts = [
        _range_function(ev, name, params, ArrayRanges(chunk, ranges.range_ms, ranges.ends))
        for chunk in _chunks(ranges.series, max(1, _CHUNK_POINTS // max(ev.size, 1)))
    ]
    if len(parts) == 1:
        return unique(parts[0])
    return unique(
        Block(
            [labels for part in parts for labels in part.labels],
            np.concatenate([part.values for part in parts]),
            np.concatenate([part.present for part in parts]),
        )
    )


_CHUNK_POINTS = 64 * 1024
_TWO_POINTS = frozenset(("rate", "increase", "delta", "irate", "idelta", "deriv", "predict_linear"))
"""Range functions with a value only where the window holds two samples or more (the others:
one or more)."""


def _refuse_clashes(name: str, ranges: ArrayRanges) -> None:
    """The error `unique` would raise after every window is computed, raised before: two
    series whose results have the same labels (the name dropped) both have a value at some
    step. Prometheus stops at that step; a window-by-window function (`quantile_over_time`
    over 7,200 steps) would otherwise run for seconds to end in the same error."""
    keep = name in fn.KEEPS_NAME
    groups: dict[Labels, list[ArraySeries]] = {}
    for series in ranges.series:
        groups.setdefault(series.labels if keep else drop_name(series.labels), []).append(series)
    least = 2 if name in _TWO_POINTS else 1
    for members in groups.values():
        if len(members) > 1:
            counts = rf.windows(ArrayRanges(members, ranges.range_ms, ranges.ends)).count
            if ((counts >= least).sum(axis=0) > 1).any():
                raise PromQLError("vector cannot contain metrics with the same labelset")


def _chunks(items: list[ArraySeries], size: int) -> list[list[ArraySeries]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _range_function(
    ev: RangeEvaluator, name: str, params: list[Floats], ranges: ArrayRanges
) -> Block:
    windows = rf.windows(ranges)
    if name in ("rate", "increase", "delta"):
        return rf.extrapolated(windows, ranges, name != "delta", name == "rate")
    if name in ("irate", "idelta"):
        return rf.instant(windows, ranges, name == "irate")
    found = rf.over_time(windows, ranges, name)
    return found if found is not None else rf.per_window(windows, ranges, name, ev.steps, params)


def _absent(ev: RangeEvaluator, name: str, node: Any) -> Value | None:
    labels = _absent_labels(node)
    value = ev.eval(node)
    if name == "absent" and isinstance(value, Block):
        seen = np.asarray(value.present.any(axis=0), np.bool_)
    elif name == "absent_over_time" and isinstance(value, ArrayRanges):
        seen = np.asarray((rf.windows(value).count > 0).any(axis=0), np.bool_)
    else:
        return None
    return Block([labels], np.ones((1, ev.size)), ~seen[None, :])


def _timestamp(ev: RangeEvaluator, node: Any) -> Value | None:
    inner = node
    while isinstance(inner, pp.ParenExpr):
        inner = inner.expr
    if isinstance(inner, pp.VectorSelector):
        block: Block | None = ev.selector(inner, times=True)
    else:
        block = _block(ev, node)
        if block is not None:
            block = Block(
                block.labels, np.broadcast_to(ev.steps / 1000, block.values.shape), block.present
            )
    if block is None:
        return None
    return unique(Block([drop_name(lb) for lb in block.labels], block.values, block.present))


def _clamp_round(ev: RangeEvaluator, name: str, block: Block, args: list[Any]) -> Value | None:
    params: list[Floats] = []
    for arg in args:
        param = ev.eval(arg)
        if not isinstance(param, ScalarRow):
            return None
        params.append(param.values[None, :])
    v = block.values
    present = block.present
    with np.errstate(all="ignore"):
        if name == "clamp":
            low, high = params
            present = present & ~(high < low)
            values = _go_max(low, _go_min(high, v))
        elif name == "clamp_min":
            values = _go_max(params[0], v)
        elif name == "clamp_max":
            values = _go_min(params[0], v)
        else:
            inverse = 1.0 / (params[0] if params else 1.0)
            values = np.floor(v * inverse + 0.5) / inverse
    return unique(drop_names(Block(block.labels, np.asarray(values, np.float64), present)))


def _go_max(a: Floats, b: Floats) -> Floats:
    return np.where((a > b) | np.isnan(a), a, b)


def _go_min(a: Floats, b: Floats) -> Floats:
    return np.where((a < b) | np.isnan(a), a, b)
