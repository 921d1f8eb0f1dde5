"""RED metrics from spans, named and labelled like the OpenTelemetry spanmetrics connector.

`calls_total{service_name, span_name, span_kind, status_code}` and the histogram
`duration_milliseconds` (exposed as `_bucket`/`_sum`/`_count`) with the connector's default
buckets, so Grafana and Jaeger's Monitor tab work unchanged. One exception: an application's
SERVER span made behind a meshscope sidecar is counted as INTERNAL (model/sidecar_mark.py).

Where spans are decoded (in ingest workers) they are reduced to `SpanDurations`: their
distinct label keys, and each span's key and duration. The owner counts a whole group's spans
at once with numpy (`SpanMetrics.merge`, `deltas.py`) and hands the sums to the registry's
series before each collect (ADR 0024). The exponential histogram (ADR 0010) rides along on
the `duration_milliseconds` points: PromQL reads the buckets, meshscope's RED its percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from meshscope.model.metrics import Labels, MetricType
from meshscope.model.sidecar_mark import behind_sidecar
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.deltas import SMALL, Deltas, Slots, one_value
from meshscope.pipeline.derive.registry import MetricsRegistry

CALLS = "calls_total"
DURATION = "duration_milliseconds"
DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000,
)  # fmt: skip

SpanKey = tuple[str, int, str, int]
"""(service, kind, name, status code): what the labels of a span's series are made of."""

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class SpanDurations:
    """Spans as span metrics need them: their distinct keys (in order of first appearance)
    and, per span, the index of its key and its duration in ns (>= 0). Three objects a
    request, whatever its size; the arrays pickle as one buffer each. (A row of counts,
    buckets and exponential buckets per key, counted span by span in Python, cost the
    workers ~2 µs a span to make and pickle and the owner ~3 µs a span to merge.)"""

    keys: list[SpanKey]
    key_index: npt.NDArray[np.int32]
    duration_ns: Ints

    def __len__(self) -> int:
        return len(self.duration_ns)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SpanDurations)
            and self.keys == other.keys
            and np.array_equal(self.key_index, other.key_index)
            and np.array_equal(self.duration_ns, other.duration_ns)
        )

    __hash__ = None  # type: ignore[assignment]


class DurationsBuilder:
    """Collects spans into a `SpanDurations`, one `add` a span."""

    __slots__ = ("_index", "durations", "keys", "spans")

    def __init__(self) -> None:
        self._index: dict[SpanKey, int] = {}
        self.keys: list[SpanKey] = []
        self.spans: list[int] = []
        self.durations: list[int] = []

    def add(self, key: SpanKey, duration_ns: int) -> None:
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.keys)
            self.keys.append(key)
        self.spans.append(index)
        self.durations.append(duration_ns if duration_ns > 0 else 0)

    def build(self) -> SpanDurations:
        return SpanDurations(
            self.keys, np.array(self.spans, np.int32), np.array(self.durations, np.int64)
        )


def counted_kind(kind: int, parent_span_id: str, trace_state: str) -> int:
    """The kind a span is counted under: its own, except an application's SERVER span behind
    a meshscope sidecar, counted as INTERNAL because the sidecar's SERVER span counts the
    request (docs/sidecar.md). Only spans with a tracestate need asking."""
    return SpanKind.INTERNAL if behind_sidecar(kind, parent_span_id, trace_state) else kind


def span_durations(spans: Sequence[Span]) -> SpanDurations:
    """Reduce spans to their keys and durations (where they are decoded)."""
    out = DurationsBuilder()
    for span in spans:
        kind: int = span.kind
        if span.trace_state:
            kind = counted_kind(kind, span.parent_span_id, span.trace_state)
        out.add((span.service, kind, span.name, span.status_code), span.end_ns - span.start_ns)
    return out.build()


def _labels(key: SpanKey) -> Labels:
    service, kind, name, status = key
    return (
        ("service_name", service),
        ("span_kind", SpanKind(kind).otel_name),
        ("span_name", name),
        ("status_code", StatusCode(status).otel_name),
    )


_MAX_KEYS = 100_000
"""Label keys numbered before the deltas are handed over early and the numbering restarts
(span names that embed ids would otherwise grow the arrays without bound)."""
_CALLS_HELP = "Spans by service, name, kind and status."
_DURATION_HELP = "Span duration in milliseconds."


class SpanMetrics:
    """Counts `SpanDurations` into `calls_total` and `duration_milliseconds`: per group in
    `merge`, into the series when the registry collects. `merge` and the registry's collect
    run on one thread (the pipeline's writer)."""

    def __init__(
        self, registry: MetricsRegistry, buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
    ) -> None:
        self._registry = registry
        self.buckets = buckets_ms
        # Past the series cap a service's spans still count as its own (RED per service).
        keep = ("service_name", "span_kind", "status_code")
        registry.keep_on_overflow.update({CALLS: keep, DURATION: keep})
        self._slots: Slots[SpanKey] = Slots()
        self._deltas = Deltas(buckets_ms, exponential=True)
        self._labels: dict[SpanKey, Labels] = {}  # by key (bounded)
        registry.before_collect.append(self._hand_over)

    def metrics(self) -> dict[str, tuple[float, ...]]:
        """The metrics made here: name -> histogram bounds (() for a counter)."""
        return {CALLS: (), DURATION: self.buckets}

    def observe(self, spans: Sequence[Span]) -> None:
        self.merge(span_durations(spans))

    def merge(self, *durations: SpanDurations) -> None:
        """Count spans (a group's, from several requests): a few straight into their
        series, more into the deltas."""
        parts = [each for each in durations if len(each)]
        if sum(map(len, parts)) <= SMALL:
            for each in parts:
                self._merge_each(each)
            return
        self._slots.renumber_when_full(_MAX_KEYS, self._hand_over, [self._deltas])
        slots = [self._slots.of(each.keys)[each.key_index] for each in parts]
        times = np.concatenate([each.duration_ns for each in parts]) / 1e6
        first = self._deltas.add(np.concatenate(slots), times)
        registry, keys = self._registry, self._slots.keys
        for slot in first.tolist():  # new series start now, not when first handed over
            labels = self._labels_of(keys[slot])
            registry.start(CALLS, labels, MetricType.COUNTER, _CALLS_HELP)
            registry.start(DURATION, labels, MetricType.HISTOGRAM, _DURATION_HELP, self.buckets)

    def _merge_each(self, durations: SpanDurations) -> None:
        """A few spans straight into their series, one at a time (`deltas.SMALL`)."""
        registry, buckets, keys = self._registry, self.buckets, durations.keys
        spans = zip(durations.key_index.tolist(), durations.duration_ns.tolist(), strict=True)
        for index, ns in spans:
            labels, ms = self._labels_of(keys[index]), ns / 1e6
            counts, exp = one_value(ms, buckets, exponential=True)
            registry.inc(CALLS, labels, 1, help_text=_CALLS_HELP)
            registry.merge_histogram(DURATION, labels, buckets, counts, ms, 1, _DURATION_HELP, exp)

    def _labels_of(self, key: SpanKey) -> Labels:
        labels = self._labels.get(key)
        if labels is None:
            if len(self._labels) >= _MAX_KEYS:
                self._labels.clear()
            labels = self._labels[key] = _labels(key)
        return labels

    def _hand_over(self) -> None:
        """Add the deltas to the series (the registry applies its cap)."""
        registry, keys, buckets = self._registry, self._slots.keys, self.buckets
        for slot, count, total, counts, exp in self._deltas.take():
            labels = self._labels_of(keys[slot])
            registry.inc(CALLS, labels, count, help_text=_CALLS_HELP)
            registry.merge_histogram(
                DURATION, labels, buckets, counts, total, count, _DURATION_HELP, exp
            )
