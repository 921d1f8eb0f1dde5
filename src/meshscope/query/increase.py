"""How much cumulative series grew over a time range, from two instant lookups per series.

The derived metrics (span metrics, service graph) are cumulative and flushed periodically, so
the growth over (start, end] is the last value at or before `end` minus the last value at or
before `start` (the baseline; 0 for a series born inside the range). Only two samples per
series are read (`MetricStore.latest`), never the samples in between, which keeps RED and
dependency questions over a day as cheap as over a minute. A restart does not reset them:
the pipeline goes on from the stored totals (`Pipeline.resume_derived`, ADR 0010). A series
whose start time is after its baseline, or whose value went below it, was reset anyway (its
buckets changed, or the store could not be read at start): then the growth is the value
itself; a second reset inside the range is not seen (Prometheus' `increase` would see it, at
the price of reading every sample).

Each growth also says which time it covers: from the baseline sample (or, for a series born
or reset inside the range, from the series' start time) to its last sample. Rates divide by
that (`Covered`), not by the whole range: a service that started two minutes ago at 5 req/s
has a rate of 5/s over the last hour, not 0.17/s. Points written before start times were
stored cover from the range's start, as they used to.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshscope.model import exphistogram
from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels, MetricPoint
from meshscope.query.promql.histograms import bucket_quantile
from meshscope.store.base import MAX_TIME_NS, LabelMatcher, LatestOfMany, MetricStore, Series


@dataclass(frozen=True, slots=True)
class Growth:
    labels: Labels
    value: float
    histogram: Histogram | None = None
    exp: ExpHistogram | None = None  # the growth of the exponential histogram, if known
    since_ns: int = 0  # the growth counts from here (0: unknown, the range's start)
    until_ns: int = 0  # to here: the last sample's time


@dataclass(slots=True)
class Covered:
    """The time the growths of a group of series cover together: from the earliest `since`
    (the range's start where unknown) to the latest sample."""

    since_ns: int = MAX_TIME_NS
    until_ns: int = 0

    def add(self, growth: Growth, start_ns: int) -> None:
        self.since_ns = min(self.since_ns, growth.since_ns or start_ns)
        self.until_ns = max(self.until_ns, growth.until_ns)

    def rate(self, count: float, start_ns: int, end_ns: int) -> float:
        """`count` per second of the covered time (of the whole range if that is empty)."""
        seconds = (self.until_ns - self.since_ns) / 1e9
        if seconds <= 0:
            seconds = (end_ns - start_ns) / 1e9
        return count / seconds


def increases(
    metrics: MetricStore,
    name: str,
    matchers: Sequence[LabelMatcher],
    start_ns: int,
    end_ns: int,
) -> list[Growth]:
    """The growth of every series named `name` that has a sample in (start_ns, end_ns]."""
    return increases_of(metrics, [name], matchers, start_ns, end_ns)[name]


def increases_of(
    metrics: MetricStore,
    names: Sequence[str],
    matchers: Sequence[LabelMatcher],
    start_ns: int,
    end_ns: int,
) -> dict[str, list[Growth]]:
    """`increases` of several names at once: two lookups in all where the store answers
    several names together (`LatestOfMany`), not two per name."""
    if end_ns <= start_ns:
        return {name: [] for name in names}
    last = latest_of(metrics, names, matchers, end_ns, end_ns - start_ns - 1)
    asked = [name for name in names if last[name]]
    before = latest_of(metrics, asked, matchers, start_ns, max(0, start_ns)) if asked else {}
    out: dict[str, list[Growth]] = {}
    for name in names:
        base = {s.labels: s.samples[-1] for s in before.get(name, []) if s.samples}
        out[name] = [grow(s.labels, s.samples[-1], base.get(s.labels)) for s in last[name]]
    return out


def latest_of(
    metrics: MetricStore,
    names: Sequence[str],
    matchers: Sequence[LabelMatcher],
    at_ns: int,
    lookback_ns: int,
) -> dict[str, list[Series]]:
    """`metrics.latest` of each name: in one call where the store offers it."""
    if isinstance(metrics, LatestOfMany):
        return metrics.latest_of(names, matchers, at_ns, lookback_ns)
    return {name: metrics.latest(name, matchers, at_ns, lookback_ns) for name in names}


def snapshot(
    metrics: MetricStore, name: str, matchers: Sequence[LabelMatcher], at_ns: int
) -> dict[Labels, MetricPoint]:
    """Each series' last sample at or before `at_ns` (any age): a counter's total then."""
    return snapshots(metrics, [name], matchers, at_ns)[name]


def snapshots(
    metrics: MetricStore, names: Sequence[str], matchers: Sequence[LabelMatcher], at_ns: int
) -> dict[str, dict[Labels, MetricPoint]]:
    """`snapshot` of several names (one store lookup where the store offers `latest_of`)."""
    found = latest_of(metrics, names, matchers, at_ns, at_ns)
    return {
        name: {s.labels: s.samples[-1] for s in series if s.samples}
        for name, series in found.items()
    }


def growth_since(
    before: dict[Labels, MetricPoint], now: dict[Labels, MetricPoint], since_ns: int
) -> list[Growth]:
    """Growth from the snapshot at `since_ns` to `now`, of the series with a sample after it."""
    return [
        grow(labels, point, before.get(labels))
        for labels, point in now.items()
        if point.time_ns > since_ns
    ]


def grow(labels: Labels, point: MetricPoint, base: MetricPoint | None) -> Growth:
    """The growth of one series from `base` (its last sample before the range; None for a
    series born inside it) to `point` (its last sample in the range)."""
    if base is not None and point.start_ns > base.time_ns:
        base = None  # started again after the baseline: a reset
    since = point.start_ns if base is None else base.time_ns
    if point.histogram is not None:
        hist, exp = point.histogram, point.exp_histogram
        if base is not None and base.histogram is not None:
            hist = _histogram_growth(base.histogram, hist)
            if hist is point.histogram:  # a reset
                since = point.start_ns
            else:
                exp = _exp_growth(base.exp_histogram, exp)
        return Growth(labels, float(hist.count), hist, exp, since, point.time_ns)
    value = point.value
    if base is not None and value >= base.value:
        value -= base.value
    elif base is not None:
        since = point.start_ns
    return Growth(labels, value, since_ns=since, until_ns=point.time_ns)


def _exp_growth(base: ExpHistogram | None, last: ExpHistogram | None) -> ExpHistogram | None:
    if last is None or base is None:
        return None  # not both known: the buckets must do
    return exphistogram.difference(base, last)


def _histogram_growth(base: Histogram, last: Histogram) -> Histogram:
    if base.bounds != last.bounds or any(
        b > a for a, b in zip(last.counts, base.counts, strict=True)
    ):
        return last  # reset (or re-bucketed): everything in `last` is new
    counts = tuple(a - b for a, b in zip(last.counts, base.counts, strict=True))
    return Histogram(last.bounds, counts, last.sum - base.sum, last.count - base.count)


def merge(histograms: Iterable[Histogram]) -> Histogram | None:
    """Sum histograms bucket by bucket (those whose bounds differ from the first are left out)."""
    merged: Histogram | None = None
    for hist in histograms:
        if merged is None:
            merged = hist
        elif hist.bounds == merged.bounds:
            merged = Histogram(
                merged.bounds,
                tuple(a + b for a, b in zip(merged.counts, hist.counts, strict=True)),
                merged.sum + hist.sum,
                merged.count + hist.count,
            )
    return merged


def quantile(q: float, hist: Histogram | None) -> float | None:
    """Like PromQL's histogram_quantile: linear interpolation inside the bucket; None if empty."""
    if hist is None or hist.count == 0:
        return None
    value = bucket_quantile(q, [(le, float(c)) for le, c in hist.cumulative()])
    return None if math.isnan(value) else value
