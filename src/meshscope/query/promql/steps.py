"""Intermediate values of an evaluation: one entry per evaluation step (a range query is
evaluated for all its steps at once, node by node, like Prometheus's rangeEval)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from meshscope.model.metrics import Labels
from meshscope.query import budget
from meshscope.query.promql.queryable import RawSeries
from meshscope.query.promql.values import PromQLError, is_stale

Element = tuple[Labels, float]


@dataclass(slots=True)
class Scalars:
    values: list[float]


@dataclass(slots=True)
class Vectors:
    steps: list[list[Element]]


@dataclass(slots=True)
class Text:
    value: str


@dataclass(slots=True)
class Ranges:
    """A range vector at every step: series data plus each step's window [end-range, end]."""

    series: list[RawSeries]
    range_ms: int
    ends: list[int]
    selector: object = None  # the VectorSelector node (for absent_over_time), if any

    def windows(self, series: RawSeries) -> Iterator[tuple[int, list[int], list[float]]]:
        """(step index, times, values) of each non-empty window of one series."""
        ts, vs = series.ts, series.vs
        if any(is_stale(v) for v in vs):
            kept = [(t, v) for t, v in zip(ts, vs, strict=True) if not is_stale(v)]
            ts, vs = [t for t, _ in kept], [v for _, v in kept]
        for index, end in enumerate(self.ends):
            lo = bisect_left(ts, end - self.range_ms)
            hi = bisect_right(ts, end)
            if hi > lo:
                yield index, ts[lo:hi], vs[lo:hi]


Steps = Scalars | Vectors | Text | Ranges


def check_unique(steps: list[list[Element]]) -> list[list[Element]]:
    for vector in steps:
        if len({labels for labels, _ in vector}) != len(vector):
            raise PromQLError("vector cannot contain metrics with the same labelset")
    return steps


def instant_values(
    series: list[RawSeries], refs: list[int], lookback_ms: int
) -> list[list[Element]]:
    """The instant vector at each reference time: each series' latest sample in
    [ref - lookback, ref], unless that sample is a staleness marker."""
    out: list[list[Element]] = [[] for _ in refs]
    for raw in series:
        budget.check()
        ts, vs = raw.ts, raw.vs
        for index, ref in enumerate(refs):
            at = bisect_right(ts, ref) - 1
            if at >= 0 and ts[at] >= ref - lookback_ms and not is_stale(vs[at]):
                out[index].append((raw.labels, vs[at]))
    return out


def instant_times(
    series: list[RawSeries], refs: list[int], lookback_ms: int
) -> list[list[Element]]:
    """Like instant_values, but each value is the sample's timestamp in seconds."""
    out: list[list[Element]] = [[] for _ in refs]
    for raw in series:
        for index, ref in enumerate(refs):
            at = bisect_right(raw.ts, ref) - 1
            if at >= 0 and raw.ts[at] >= ref - lookback_ms and not is_stale(raw.vs[at]):
                out[index].append((raw.labels, raw.ts[at] / 1000))
    return out
