"""RED metrics from spans, named and labelled like the OpenTelemetry spanmetrics connector.

`calls_total{service_name, span_name, span_kind, status_code}` and the histogram
`duration_milliseconds` (exposed as `_bucket`/`_sum`/`_count`) with the connector's default
buckets, so Grafana and Jaeger's Monitor tab work unchanged.

Spans are first reduced to `SpanPartials` (per label set: count, sum, bucket counts), which
ingest workers compute next to decoding; the owner only merges them into the registry.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from operator import add
from typing import cast

from meshscope.model.metrics import Labels, MetricType
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.registry import MetricsRegistry, Series

CALLS = "calls_total"
DURATION = "duration_milliseconds"
DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000,
)  # fmt: skip

SpanKey = tuple[str, int, str, int]
"""(service, kind, name, status code): what the labels of a span's series are made of."""

SpanPartials = dict[SpanKey, tuple[float, ...]]
"""Per span key: (count, sum of durations in ms, bucket count 0, bucket count 1, ...).

Tuples of plain numbers, which the garbage collector stops tracking: the owner holds a few
hundred per request until it has merged them (as lists they reached the oldest generation
and made its full collections more frequent)."""

PartialRows = dict[SpanKey, list[float]]
"""`SpanPartials` being counted: `freeze` makes them SpanPartials."""


def freeze(rows: PartialRows) -> SpanPartials:
    return {key: tuple(row) for key, row in rows.items()}


def _labels(key: SpanKey) -> Labels:
    service, kind, name, status = key
    return (
        ("service_name", service),
        ("span_kind", SpanKind(kind).otel_name),
        ("span_name", name),
        ("status_code", StatusCode(status).otel_name),
    )


def span_partials(
    spans: Sequence[Span], buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
) -> SpanPartials:
    """Count and bucket the spans' durations per label set (the costly, per-span part)."""
    out: PartialRows = {}
    width = len(buckets_ms) + 1
    for span in spans:
        key = (span.service, span.kind, span.name, span.status_code)
        row = out.get(key)
        if row is None:
            # Counts stay ints (small ones are shared objects: cheap to pickle and load).
            row = out[key] = [0, 0.0, *([0] * width)]
        ms = max(0, span.end_ns - span.start_ns) / 1e6
        row[0] += 1
        row[1] += ms
        row[2 + bisect_left(buckets_ms, ms)] += 1
    return freeze(out)


_MAX_CACHED_LABELS = 100_000


def _combine(partials: tuple[SpanPartials, ...]) -> Mapping[SpanKey, Sequence[float]]:
    if len(partials) == 1:
        return partials[0]
    out: PartialRows = {}
    for partial in partials:
        for key, row in partial.items():
            mine = out.get(key)
            out[key] = list(row) if mine is None else list(map(add, mine, row))
    return out


_CALLS_HELP = "Spans by service, name, kind and status."
_DURATION_HELP = "Span duration in milliseconds."


class SpanMetrics:
    def __init__(
        self, registry: MetricsRegistry, buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
    ) -> None:
        self._registry = registry
        self.buckets = buckets_ms
        # Per span key: its two series in the registry (bounded; never an overflow series).
        self._series: dict[SpanKey, tuple[Series, Series]] = {}

    def observe(self, spans: Sequence[Span]) -> None:
        self.merge(span_partials(spans, self.buckets))

    def merge(self, *partials: SpanPartials) -> None:
        """Add partials made with this instance's buckets to the registry."""
        combined = _combine(partials)
        registry = self._registry
        cache = self._series
        for key, row in combined.items():
            pair = cache.get(key)
            if pair is None:
                labels = _labels(key)
                calls = registry.series(CALLS, labels, MetricType.COUNTER, _CALLS_HELP)
                durations = registry.series(
                    DURATION, labels, MetricType.HISTOGRAM, _DURATION_HELP, self.buckets
                )
                if calls is None or durations is None:  # over the cap: counted each time
                    self._merge_row(labels, row)
                    continue
                if len(cache) >= _MAX_CACHED_LABELS:
                    cache.clear()
                pair = cache[key] = (calls, durations)
            count = int(row[0])
            registry.add(pair[0], count)
            buckets = cast("Iterator[int]", islice(row, 2, None))  # counts are ints
            registry.add_histogram(pair[1], buckets, row[1], count)

    def _merge_row(self, labels: Labels, row: Sequence[float]) -> None:
        count = int(row[0])
        self._registry.inc(CALLS, labels, count, help_text=_CALLS_HELP)
        self._registry.merge_histogram(
            DURATION,
            labels,
            self.buckets,
            [int(c) for c in row[2:]],
            row[1],
            count,
            help_text=_DURATION_HELP,
        )
