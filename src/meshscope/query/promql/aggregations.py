"""PromQL aggregation operators over one instant vector (one evaluation step)."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from meshscope.model.metrics import Labels
from meshscope.query.promql.functions import quantile
from meshscope.query.promql.values import (
    NAME,
    PromQLError,
    drop_name,
    format_f,
    format_le,
    keep_labels,
    set_label,
    without_labels,
)

Element = tuple[Labels, float]

AGGREGATIONS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "stddev",
    "stdvar",
}


@dataclass(slots=True)
class _Group:
    labels: Labels
    value: float
    mean: float
    count: int = 1
    values: list[float] = field(default_factory=list)
    members: list[Element] = field(default_factory=list)


def group_key(labels: Labels, grouping: list[str], without: bool) -> Labels:
    if without:
        return without_labels(labels, [*grouping, NAME])
    return keep_labels(labels, grouping)


def aggregate(
    op: str, vector: list[Element], grouping: list[str], without: bool, param: float | str | None
) -> list[Element]:
    if op in ("topk", "bottomk"):
        assert isinstance(param, float)
        return _top(op == "topk", vector, grouping, without, param)
    if op == "count_values":
        assert isinstance(param, str)
        vector = _count_values_input(vector, param)
        grouping = grouping if without else [*grouping, param]
        op = "count"
    groups: dict[Labels, _Group] = {}
    for labels, value in vector:
        key = group_key(labels, grouping, without)
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(key, value, value, values=[value])
            if op in ("stddev", "stdvar"):
                groups[key].value = 0.0
            continue
        _add(op, group, value)
    return [(g.labels, _finish(op, g, param)) for g in groups.values()]


def _add(op: str, group: _Group, value: float) -> None:
    group.count += 1
    if op == "sum":
        group.value += value
    elif op == "avg":
        mean = group.mean
        if math.isinf(mean):
            if math.isinf(value) and (mean > 0) == (value > 0):
                return
            if not math.isinf(value) and not math.isnan(value):
                return
        group.mean += value / group.count - mean / group.count
    elif op == "max":
        if group.value < value or math.isnan(group.value):
            group.value = value
    elif op == "min":
        if group.value > value or math.isnan(group.value):
            group.value = value
    elif op in ("stddev", "stdvar"):
        delta = value - group.mean
        group.mean += delta / group.count
        group.value += delta * (value - group.mean)
    elif op == "quantile":
        group.values.append(value)


def _finish(op: str, group: _Group, param: float | str | None) -> float:
    if op == "avg":
        return group.mean
    if op in ("count", "group"):
        return float(group.count) if op == "count" else 1.0
    if op == "stdvar":
        return group.value / group.count
    if op == "stddev":
        return math.sqrt(group.value / group.count)
    if op == "quantile":
        assert isinstance(param, float)
        return quantile(param, group.values)
    return group.value


def _count_values_input(vector: list[Element], label: str) -> list[Element]:
    if (
        not label
        or not (label[0].isalpha() or label[0] == "_")
        or not all(c.isalnum() or c == "_" for c in label)
    ):
        raise PromQLError(f"invalid label name {label!r}")
    return [(set_label(labels, label, format_f(value)), value) for labels, value in vector]


def _top(
    top: bool, vector: list[Element], grouping: list[str], without: bool, param: float
) -> list[Element]:
    if not -(2.0**63) <= param <= 2.0**63 - 1:  # NaN too: Prometheus' convertibleToInt64
        raise PromQLError(f"Scalar value {format_le(param)} overflows int64")  # Go %v
    if param < 1:
        return []
    k = min(int(param), len(vector))
    groups: dict[Labels, list[tuple[float, int, Element]]] = {}
    for index, (labels, value) in enumerate(vector):
        heap = groups.setdefault(group_key(labels, grouping, without), [])
        # heap[0] is the element to evict first; NaN is always evicted first.
        rank = _rank(value, top)
        item = (rank, -index, (labels, value))
        if len(heap) < k:
            heapq.heappush(heap, item)
        elif heap[0][0] < rank:
            heapq.heapreplace(heap, item)
    out: list[Element] = []
    for heap in groups.values():
        for _, _, element in sorted(heap, reverse=True):
            out.append(element)
    return out


def _rank(value: float, top: bool) -> float:
    if math.isnan(value):
        return -math.inf
    return value if top else -value


def drop_names(vector: list[Element]) -> list[Element]:
    return [(drop_name(labels), value) for labels, value in vector]
