"""An in-process registry of cumulative counters and histograms, flushed to the metric store.

Derivers (span metrics, service graph, request metrics) write here, never to storage directly;
the pipeline collects the registry periodically (like Tempo's metrics-generator registry).
Span metrics and the service graph first sum a group's updates with numpy (`deltas.py`) and
hand the sums over when the registry collects (`before_collect`).
Cardinality is capped per metric name: past the cap, observations go to an overflow series
labelled `otel_metric_overflow="true"` (the OpenTelemetry convention) and are counted. The
overflow series keeps the labels its metric names in `keep_on_overflow` (span metrics: the
service, kind and status, so one service whose span names explode does not take the others'
RED with it: it was one series with no labels, and every service created after the cap
vanished from RED); past `MAX_OVERFLOW_SERIES` of those, one series with no other label.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import add

from meshscope.model.exphistogram import MAX_BUCKETS, MAX_SCALE, fit, make
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType

OVERFLOW_LABELS: Labels = (("otel_metric_overflow", "true"),)
OVERFLOW_KEY = OVERFLOW_LABELS[0]
MAX_OVERFLOW_SERIES = 1_000
"""Overflow series per metric that keep labels (`keep_on_overflow`); past them, one."""


@dataclass(slots=True)
class Series:
    """One series' cumulative state."""

    name: str
    labels: Labels
    type: MetricType
    help: str
    value: float = 0.0
    bounds: tuple[float, ...] = ()
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0
    start_ns: int = 0
    # The exponential histogram of the same observations (span durations only): sparse
    # bucket index -> count at `exp_scale`, its lowest and highest index, values <= 0, and
    # the min and max (inf and -inf before the first value).
    exp: dict[int, int] | None = None
    exp_scale: int = MAX_SCALE
    exp_low: int = 0
    exp_high: int = -1
    exp_zero: int = 0
    min: float = float("inf")
    max: float = float("-inf")

    def point(self, now_ns: int) -> MetricPoint:
        histogram = exp = None
        if self.type is MetricType.HISTOGRAM:
            histogram = Histogram(self.bounds, tuple(self.counts), self.sum, self.count)
            if self.exp is not None:
                exp = make(self.exp_scale, self.exp, self.exp_zero, self.min, self.max)
        return MetricPoint(
            self.name,
            self.labels,
            now_ns,
            self.type,
            self.value,
            histogram,
            self.help,
            start_ns=self.start_ns,
            exp_histogram=exp,
        )


class MetricsRegistry:
    def __init__(
        self, max_series_per_metric: int = 10_000, now_ns: Callable[[], int] = lambda: 0
    ) -> None:
        """`now_ns` stamps each series' start (OTLP's start time: rates cover the time since)."""
        self.max_series_per_metric = max_series_per_metric
        self._now_ns = now_ns
        self._series: dict[tuple[str, Labels], Series] = {}
        # Changed since the last collect, by id (a series lives as long as the registry; an
        # int key saves hashing the labels again on every update).
        self._dirty: dict[int, Series] = {}
        self._per_name: dict[str, int] = {}
        self._overflow_series: dict[str, int] = {}
        self.overflowed = 0
        # Metric name -> the labels its overflow series keep (the rest are dropped).
        self.keep_on_overflow: dict[str, tuple[str, ...]] = {}
        # Called first by `collect`: derivers that sum updates of their own hand them over.
        self.before_collect: list[Callable[[], None]] = []

    def _get(
        self, name: str, labels: Labels, kind: MetricType, help_text: str, bounds: tuple[float, ...]
    ) -> Series:
        key = (name, labels)
        series = self._series.get(key)
        if series is not None:
            return series
        if self._per_name.get(name, 0) >= self.max_series_per_metric:
            self.overflowed += 1
            labels = self._overflow_labels(name, labels)
            key = (name, labels)
            series = self._series.get(key)
            if series is not None:
                return series
            self._overflow_series[name] = self._overflow_series.get(name, 0) + 1
        series = Series(name, labels, kind, help_text, bounds=bounds, start_ns=self._now_ns())
        if kind is MetricType.HISTOGRAM:
            series.counts = [0] * (len(bounds) + 1)
        self._series[key] = series
        self._per_name[name] = self._per_name.get(name, 0) + 1
        return series

    def start(
        self,
        name: str,
        labels: Labels,
        kind: MetricType,
        help_text: str = "",
        bounds: tuple[float, ...] = (),
    ) -> None:
        """Make the series `name{labels}` now if it is new and under the cap: its start time
        (for a deriver that hands its updates over later, when the first one came)."""
        if (name, labels) not in self._series and (
            self._per_name.get(name, 0) < self.max_series_per_metric
        ):
            self._get(name, labels, kind, help_text, bounds)

    def resume(self, points: Iterable[MetricPoint], bounds: Mapping[str, tuple[float, ...]]) -> int:
        """Go on from stored series (their last points, after a restart): each counter and
        histogram continues from its total, with its start time, so a read that takes a
        series' growth from two samples sees no reset (it saw one, and counted only what came
        after it). Only metrics in `bounds` (name -> histogram bounds, () for a counter) of
        the kind and bounds given there, and not past the cap; returns how many."""
        resumed = 0
        for point in points:
            want = bounds.get(point.name)
            hist = point.histogram
            if want is None or (hist.bounds if hist is not None else ()) != want:
                continue  # not ours, or bucketed otherwise since: starts again
            if point.type is not (MetricType.HISTOGRAM if want else MetricType.COUNTER):
                continue
            key = (point.name, point.labels)
            if key in self._series or self._per_name.get(point.name, 0) >= self._cap(point):
                continue
            series = Series(point.name, point.labels, point.type, point.help,
                            value=point.value, start_ns=point.start_ns)  # fmt: skip
            if hist is not None:
                series.bounds, series.counts = hist.bounds, list(hist.counts)
                series.sum, series.count = hist.sum, hist.count
                exp = point.exp_histogram
                if exp is not None:
                    series.exp = exp.buckets()
                    series.exp_scale, series.exp_zero = exp.scale, exp.zero_count
                    series.min, series.max = exp.min, exp.max
                    if series.exp:
                        series.exp_low, series.exp_high = min(series.exp), max(series.exp)
            self._series[key] = series
            self._per_name[point.name] = self._per_name.get(point.name, 0) + 1
            if OVERFLOW_KEY in point.labels:
                self._overflow_series[point.name] = self._overflow_series.get(point.name, 0) + 1
            resumed += 1
        return resumed

    def _cap(self, point: MetricPoint) -> int:
        """The cap for a resumed series: overflow series are always taken."""
        return 2**62 if OVERFLOW_KEY in point.labels else self.max_series_per_metric

    def _overflow_labels(self, name: str, labels: Labels) -> Labels:
        keep = self.keep_on_overflow.get(name, ())
        if not keep or self._overflow_series.get(name, 0) >= MAX_OVERFLOW_SERIES:
            return OVERFLOW_LABELS
        return tuple(sorted((*(kv for kv in labels if kv[0] in keep), OVERFLOW_KEY)))

    def inc(self, name: str, labels: Labels, amount: float = 1.0, help_text: str = "") -> None:
        series = self._get(name, labels, MetricType.COUNTER, help_text, ())
        series.value += amount
        self._dirty[id(series)] = series

    def observe(
        self,
        name: str,
        labels: Labels,
        value: float,
        bounds: tuple[float, ...],
        help_text: str = "",
    ) -> None:
        series = self._get(name, labels, MetricType.HISTOGRAM, help_text, bounds)
        series.counts[bisect_left(series.bounds, value)] += 1
        series.sum += value
        series.count += 1
        self._dirty[id(series)] = series

    def merge_histogram(
        self,
        name: str,
        labels: Labels,
        bounds: tuple[float, ...],
        counts: list[int],
        total: float,
        count: int,
        help_text: str = "",
        exp: Sequence[float] = (),
    ) -> None:
        """Add pre-bucketed observations (`counts` per bucket of `bounds`, +Inf last; `exp`
        as for `add_exp`, if any)."""
        series = self._get(name, labels, MetricType.HISTOGRAM, help_text, bounds)
        series.counts = list(map(add, series.counts, counts))
        series.sum += total
        series.count += count
        self._dirty[id(series)] = series
        if exp:
            self.add_exp(series, exp)

    def add_exp(self, series: Series, exp: Sequence[float], at: int = 0) -> None:
        """Add to the series' exponential histogram (`merge_histogram`'s `exp`): `exp[at:]`
        is (values <= 0, min, max, then bucket index and count pairs at MAX_SCALE).
        Downscales past MAX_BUCKETS."""
        buckets = series.exp
        if buckets is None:
            buckets = series.exp = {}
        series.exp_zero += int(exp[at])
        if exp[at + 1] < series.min:
            series.min = exp[at + 1]
        if exp[at + 2] > series.max:
            series.max = exp[at + 2]
        shift = MAX_SCALE - series.exp_scale
        low, high = series.exp_low, series.exp_high
        for k in range(at + 3, len(exp), 2):
            index = int(exp[k]) >> shift
            buckets[index] = buckets.get(index, 0) + int(exp[k + 1])
            if high < low:
                low = high = index
            elif index < low:
                low = index
            elif index > high:
                high = index
        if high - low + 1 > MAX_BUCKETS:
            scale, buckets = fit(series.exp_scale, buckets)
            series.exp = buckets
            shift = series.exp_scale - scale
            series.exp_scale = scale
            low, high = low >> shift, high >> shift
        series.exp_low, series.exp_high = low, high
        self._dirty[id(series)] = series

    def collect(self, now_ns: int, changed_only: bool = False) -> list[MetricPoint]:
        """Cumulative points of every series (or only those changed since the last collect),
        in order of series creation."""
        for hand_over in self.before_collect:
            hand_over()
        chosen = self._dirty if changed_only else self._series
        points = [series.point(now_ns) for series in chosen.values()]
        self._dirty = {}
        return points

    def __len__(self) -> int:
        return len(self._series)
