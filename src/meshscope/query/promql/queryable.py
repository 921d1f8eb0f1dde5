"""What the PromQL engine needs from storage, and an adapter over the MetricStore protocol.

The engine sees series as Prometheus does: the metric name is the `__name__` label, and a
stored histogram series `X` appears as the classic `X_bucket{le=...}` (cumulative), `X_sum`
and `X_count` series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from meshscope.model.metrics import Labels, MetricType
from meshscope.query import budget
from meshscope.query.promql.values import NAME, format_le, make_labels
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(slots=True)
class RawSeries:
    """One series in time order: labels include `__name__`; times in ms."""

    labels: Labels
    ts: list[int]
    vs: list[float]


@dataclass(frozen=True, slots=True)
class ArraySeries:
    """One series in time order as arrays: int64 ms times, float64 values (read-only)."""

    labels: Labels
    ts: npt.NDArray[np.int64]
    vs: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    type: str
    help: str = ""
    unit: str = ""


class Queryable(Protocol):
    def select(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        """Series matching all matchers (`__name__` included) with samples in [start, end]."""
        ...

    def select_arrays(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[ArraySeries]:
        """`select` with the samples as arrays (what range queries read)."""
        ...

    def series(self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int) -> list[Labels]:
        """The label sets of `select`'s series, without reading their samples (the series,
        labels and label-values APIs): O(series), not O(samples)."""
        ...

    def metric_names(self) -> list[str]:
        """Every metric name as PromQL sees it (histograms expanded), sorted."""
        ...

    def metadata(self) -> dict[str, MetricInfo]:
        """Type, help and unit per metric family name."""
        ...


class MetricStoreQueryable:
    """The engine's view of a MetricStore (store times are ns, engine times ms)."""

    def __init__(self, store: MetricStore) -> None:
        self.store = store

    def _stored_names(self) -> list[str]:
        return [family.name for family in self.store.families()]

    def metric_names(self) -> list[str]:
        out: set[str] = set()
        for family in self.store.families():
            if family.type is MetricType.HISTOGRAM:
                out.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
            else:
                out.add(family.name)
        return sorted(out)

    def metadata(self) -> dict[str, MetricInfo]:
        """As Prometheus: a summary is one family, its `_sum` and `_count` inside it."""
        families = self.store.families()
        summaries = {f.name for f in families if f.type is MetricType.SUMMARY}
        parts = {f"{name}{suffix}" for name in summaries for suffix in ("_sum", "_count")}
        return {
            f.name: MetricInfo(f.type.value, f.help, f.unit)
            for f in families
            if f.name not in parts or f.type is MetricType.SUMMARY
        }

    def select(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        return [
            RawSeries(s.labels, s.ts.tolist(), s.vs.tolist())
            for s in self.select_arrays(matchers, start_ms, end_ms)
        ]

    def select_arrays(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[ArraySeries]:
        names, others = self._names(matchers)
        out: list[ArraySeries] = []
        for name in names:
            budget.check()
            found = self._select_name(name, others, start_ms, end_ms)
            budget.charge(len(found), sum(len(s.ts) for s in found))
            out.extend(found)
        return out

    def series(self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int) -> list[Labels]:
        names, others = self._names(matchers)
        start_ns = max(start_ms * 1_000_000, -(2**63))
        end_ns = min(end_ms * 1_000_000, 2**63 - 1)
        out: list[Labels] = []
        for name in names:
            budget.check()
            found = self._series_name(name, others, start_ns, end_ns)
            room = budget.listing_room(len(found))
            out.extend(found[:room])
            if room < len(found):
                break
        return out

    def _names(self, matchers: Sequence[LabelMatcher]) -> tuple[list[str], list[LabelMatcher]]:
        """The metric names `matchers` select (histograms' classic names included), and the
        matchers on other labels."""
        name_matchers = [m for m in matchers if m.name == NAME]
        others = [m for m in matchers if m.name != NAME]
        exact = [m.value for m in name_matchers if m.op is MatchOp.EQ]
        if exact:
            names = exact[:1]
        else:
            names = self._stored_names()
            names += [n + s for n in names for s in HISTOGRAM_SUFFIXES]
        names = [n for n in dict.fromkeys(names) if all(m.matches(n) for m in name_matchers)]
        return names, others

    def _series_name(
        self, name: str, matchers: list[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Labels]:
        """`_select_name`'s label sets from each series' last point in the range."""
        lookback = max(end_ns - start_ns, 0)
        out = [
            make_labels([*s.labels, (NAME, name)])
            for s in self.store.latest(name, matchers, end_ns, lookback)
            if s.samples and s.samples[-1].histogram is None
        ]
        for suffix in HISTOGRAM_SUFFIXES:
            if not name.endswith(suffix) or len(name) <= len(suffix):
                continue
            store_matchers = [m for m in matchers if m.name != "le"]
            le_matchers = [m for m in matchers if m.name == "le"] if suffix == "_bucket" else []
            searched = store_matchers if suffix == "_bucket" else matchers
            for s in self.store.latest(name[: -len(suffix)], searched, end_ns, lookback):
                histogram = s.samples[-1].histogram if s.samples else None
                if histogram is None:
                    continue
                if suffix != "_bucket":
                    out.append(make_labels([*s.labels, (NAME, name)]))
                    continue
                for bound in (*histogram.bounds, math.inf):
                    le = format_le(bound)
                    if all(m.matches(le) for m in le_matchers):
                        out.append(make_labels([*s.labels, ("le", le), (NAME, name)]))
        return out

    def _select_name(
        self, name: str, matchers: list[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[ArraySeries]:
        start_ns = max(start_ms * 1_000_000, -(2**63))
        end_ns = min(end_ms * 1_000_000, 2**63 - 1)
        out = [
            ArraySeries(make_labels([*s.labels, (NAME, name)]), s.time_ns // 1_000_000, s.value)
            for s in self.store.select_values(name, matchers, start_ns, end_ns)
        ]
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                base = name[: -len(suffix)]
                out.extend(_expand(self.store, base, suffix, matchers, start_ns, end_ns))
        return [_one_per_time(series) for series in _merged(out)]


Piece = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""Samples of one series from one source: times (ms) and values."""


def _merged(found: list[ArraySeries]) -> list[ArraySeries]:
    """One series per label set: a series stored under a classic histogram name
    (`x_sum` as a gauge) and the one derived from histogram `x` with the same labels are
    one series, as they would be in Prometheus, their samples in time order."""
    if len({series.labels for series in found}) == len(found):
        return found
    parts: dict[Labels, list[Piece]] = {}
    for series in found:
        parts.setdefault(series.labels, []).append((series.ts, series.vs))
    return _joined(parts)


def _one_per_time(series: ArraySeries) -> ArraySeries:
    """At most one sample per millisecond, the last written of those there (what an
    instant selection sees): a remote write or OTLP request retried after it was stored
    (at-least-once delivery) must not count twice in `count_over_time`, `changes` or
    `increase`. Prometheus' TSDB keeps one sample per timestamp too."""
    ts = series.ts
    if len(ts) < 2:
        return series
    last = np.empty(len(ts), np.bool_)
    last[-1] = True
    np.not_equal(ts[1:], ts[:-1], out=last[:-1])
    if last.all():
        return series
    return ArraySeries(series.labels, ts[last], series.vs[last])


def _expand(
    store: MetricStore,
    base: str,
    suffix: str,
    matchers: list[LabelMatcher],
    start_ns: int,
    end_ns: int,
) -> list[ArraySeries]:
    """The classic series `base+suffix` derived from histogram points of series `base`."""
    store_matchers = [m for m in matchers if m.name != "le"] if suffix == "_bucket" else matchers
    le_matchers = [m for m in matchers if m.name == "le"] if suffix == "_bucket" else []
    name = (NAME, base + suffix)
    parts: dict[Labels, list[Piece]] = {}
    for group in store.select_histograms(base, store_matchers, start_ns, end_ns):
        times = group.time_ns // 1_000_000
        if suffix == "_sum":
            parts.setdefault(make_labels([*group.labels, name]), []).append((times, group.sum))
            continue
        if suffix == "_count":
            labels = make_labels([*group.labels, name])
            parts.setdefault(labels, []).append((times, group.count.astype(np.float64)))
            continue
        cumulative = np.cumsum(group.counts, axis=1, dtype=np.uint64).astype(np.float64)
        for column, bound in enumerate((*group.bounds, math.inf)):
            le = format_le(bound)
            if not all(m.matches(le) for m in le_matchers):
                continue
            labels = make_labels([*group.labels, ("le", le), name])
            parts.setdefault(labels, []).append((times, cumulative[:, column]))
    return _joined(parts)


def _joined(parts: dict[Labels, list[Piece]]) -> list[ArraySeries]:
    """A series per label set from its pieces' (times, values), in time order (stable: a
    piece's samples keep their order at equal times)."""
    out: list[ArraySeries] = []
    for labels, pieces in parts.items():
        if len(pieces) == 1:
            out.append(ArraySeries(labels, *pieces[0]))
            continue
        times = np.concatenate([t for t, _ in pieces])
        order = np.argsort(times, kind="stable")
        out.append(ArraySeries(labels, times[order], np.concatenate([v for _, v in pieces])[order]))
    return out


def series_labels(
    q: Queryable, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[Labels]:
    """Label sets of the series matching any selector (for /api/v1/series)."""
    seen: dict[Labels, None] = {}
    for matchers in selectors:
        for labels in q.series(matchers, start_ms, end_ms):
            seen.setdefault(labels, None)
    return sorted(seen)


def label_names(
    q: Queryable, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[str]:
    names: set[str] = set()
    for labels in series_labels(q, selectors or [[_ANY_NAME]], start_ms, end_ms):
        names.update(k for k, _ in labels)
    return sorted(names)


def label_values(
    q: Queryable, name: str, selectors: Sequence[Sequence[LabelMatcher]], start_ms: int, end_ms: int
) -> list[str]:
    if name == NAME and not selectors:
        return q.metric_names()
    values: set[str] = set()
    for labels in series_labels(q, selectors or [[_ANY_NAME]], start_ms, end_ms):
        values.update(v for k, v in labels if k == name)
    return sorted(values)


_ANY_NAME = LabelMatcher(NAME, MatchOp.RE, ".+")
