"""RED metrics from spans, named and labelled like the OpenTelemetry spanmetrics connector.

`calls_total{service_name, span_name, span_kind, status_code}` and the histogram
`duration_milliseconds` (exposed as `_bucket`/`_sum`/`_count`) with the connector's default
buckets, so Grafana and Jaeger's Monitor tab work unchanged. One exception: an application's
SERVER span made behind a meshscope sidecar is counted as INTERNAL (model/sidecar_mark.py).

Spans are first reduced to `SpanPartials` (per label set: count, sum, bucket counts and an
exponential histogram), which ingest workers compute next to decoding; the owner only merges
them into the registry. The exponential histogram (ADR 0010) rides along on the
`duration_milliseconds` points: PromQL reads the buckets, meshscope's RED its percentiles.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from itertools import chain
from typing import Any

from meshscope.model.exphistogram import MAX_SCALE, index_factor
from meshscope.model.metrics import Labels, MetricType
from meshscope.model.sidecar_mark import behind_sidecar
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
"""Per span key: (count, sum of durations in ms, bucket count 0, bucket count 1, ..., then the
exponential histogram: durations <= 0, min, max, and (bucket index, count) pairs at MAX_SCALE).

Tuples of plain numbers, which the garbage collector stops tracking: the owner holds a few
hundred per request until it has merged them (as lists they reached the oldest generation
and made its full collections more frequent)."""

PartialRows = dict[SpanKey, list[Any]]
"""`SpanPartials` being counted (`new_row`, `tally`): `freeze` makes them SpanPartials."""

_FACTOR = index_factor(MAX_SCALE)


def new_row(width: int) -> list[Any]:
    """A row being counted for buckets `width` wide (+Inf included): the exponential
    buckets are a dict in its last place until `freeze`."""
    # Counts stay ints (small ones are shared objects: cheap to pickle and load).
    return [0, 0.0, *([0] * width), 0, math.inf, -math.inf, {}]


def tally(row: list[Any], ms: float, buckets_ms: Sequence[float]) -> None:
    """Count one duration into a `new_row` row (`otlp_direct` counts the same way)."""
    row[0] += 1
    row[1] += ms
    row[2 + bisect_left(buckets_ms, ms)] += 1
    if ms > 0:
        exp = row[-1]
        index = math.ceil(math.log(ms) * _FACTOR) - 1
        exp[index] = exp.get(index, 0) + 1
        if ms < row[-3]:
            row[-3] = ms
        if ms > row[-2]:
            row[-2] = ms
    else:
        row[-4] += 1
        row[-3] = min(row[-3], 0.0)
        row[-2] = max(row[-2], 0.0)


def freeze(rows: PartialRows) -> SpanPartials:
    return {key: (*row[:-1], *chain.from_iterable(row[-1].items())) for key, row in rows.items()}


def _labels(key: SpanKey) -> Labels:
    service, kind, name, status = key
    return (
        ("service_name", service),
        ("span_kind", SpanKind(kind).otel_name),
        ("span_name", name),
        ("status_code", StatusCode(status).otel_name),
    )


def counted_kind(kind: int, parent_span_id: str, trace_state: str) -> int:
    """The kind a span is counted under: its own, except an application's SERVER span behind
    a meshscope sidecar, counted as INTERNAL because the sidecar's SERVER span counts the
    request (docs/sidecar.md). Only spans with a tracestate need asking."""
    return SpanKind.INTERNAL if behind_sidecar(kind, parent_span_id, trace_state) else kind


def span_partials(
    spans: Sequence[Span], buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
) -> SpanPartials:
    """Count and bucket the spans' durations per label set (the costly, per-span part)."""
    out: PartialRows = {}
    width = len(buckets_ms) + 1
    for span in spans:
        kind: int = span.kind
        if span.trace_state:
            kind = counted_kind(kind, span.parent_span_id, span.trace_state)
        key = (span.service, kind, span.name, span.status_code)
        row = out.get(key)
        if row is None:
            row = out[key] = new_row(width)
        tally(row, max(0, span.end_ns - span.start_ns) / 1e6, buckets_ms)
    return freeze(out)


_MAX_CACHED_LABELS = 100_000


_CALLS_HELP = "Spans by service, name, kind and status."
_DURATION_HELP = "Span duration in milliseconds."


class SpanMetrics:
    def __init__(
        self, registry: MetricsRegistry, buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
    ) -> None:
        self._registry = registry
        self.buckets = buckets_ms
        # Past the series cap a service's spans still count as its own (RED per service).
        keep = ("service_name", "span_kind", "status_code")
        registry.keep_on_overflow.update({CALLS: keep, DURATION: keep})
        # Per span key: its two series in the registry (bounded; never an overflow series).
        self._series: dict[SpanKey, tuple[Series, Series]] = {}

    def metrics(self) -> dict[str, tuple[float, ...]]:
        """The metrics made here: name -> histogram bounds (() for a counter)."""
        return {CALLS: (), DURATION: self.buckets}

    def observe(self, spans: Sequence[Span]) -> None:
        self.merge(span_partials(spans, self.buckets))

    def merge(self, *partials: SpanPartials) -> None:
        """Add partials made with this instance's buckets to the registry, each straight into
        its series (a key is in few of a group's partials: combining them first cost more)."""
        width = len(self.buckets) + 1
        registry = self._registry
        cache = self._series
        for partial in partials:
            for key, row in partial.items():
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
                registry.add_row(pair[0], pair[1], row, width)

    def _merge_row(self, labels: Labels, row: Sequence[float]) -> None:
        count = int(row[0])
        fixed = 3 + len(self.buckets)
        self._registry.inc(CALLS, labels, count, help_text=_CALLS_HELP)
        self._registry.merge_histogram(
            DURATION,
            labels,
            self.buckets,
            [int(c) for c in row[2:fixed]],
            row[1],
            count,
            help_text=_DURATION_HELP,
            exp=row[fixed:],
        )
