"""RED metrics from spans, named and labelled like the OpenTelemetry spanmetrics connector.

`calls_total{service_name, span_name, span_kind, status_code}` and the histogram
`duration_milliseconds` (exposed as `_bucket`/`_sum`/`_count`) with the connector's default
buckets, so Grafana and Jaeger's Monitor tab work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshscope.model.metrics import Labels
from meshscope.model.spans import Span
from meshscope.pipeline.derive.registry import MetricsRegistry

CALLS = "calls_total"
DURATION = "duration_milliseconds"
DEFAULT_BUCKETS_MS: tuple[float, ...] = (
    2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000,
)  # fmt: skip


def span_labels(span: Span) -> Labels:
    return (
        ("service_name", span.service),
        ("span_kind", span.kind.otel_name),
        ("span_name", span.name),
        ("status_code", span.status_code.otel_name),
    )


class SpanMetrics:
    def __init__(
        self, registry: MetricsRegistry, buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS
    ) -> None:
        self._registry = registry
        self._buckets = buckets_ms

    def observe(self, spans: Sequence[Span]) -> None:
        registry = self._registry
        for span in spans:
            labels = span_labels(span)
            registry.inc(CALLS, labels, help_text="Spans by service, name, kind and status.")
            registry.observe(
                DURATION,
                labels,
                span.duration_ns / 1e6,
                self._buckets,
                help_text="Span duration in milliseconds.",
            )
