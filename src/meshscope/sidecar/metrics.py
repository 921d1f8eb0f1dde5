"""The sidecar's own Prometheus metrics, served on its admin port at `/metrics`.

Request metrics follow Istio's shape (`source`/`destination` service, response code) with a
`direction` label: `inbound` for requests into the service, `outbound` for its own calls.
Export counters say what reached meshscope and what was dropped, and why.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class SidecarMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "meshscope_sidecar_requests",
            "Requests proxied by the sidecar.",
            ["direction", "source_service", "destination_service", "response_code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "meshscope_sidecar_request_duration_seconds",
            "Latency of proxied requests as the sidecar saw them, in seconds.",
            ["direction", "source_service", "destination_service"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.exported = Counter(
            "meshscope_sidecar_exported_items",
            "Spans and log records accepted by meshscope.",
            ["signal"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "meshscope_sidecar_dropped_items",
            "Spans and log records dropped: buffer_full (meshscope slow or down for long) or "
            "rejected (meshscope answered 4xx).",
            ["signal", "reason"],
            registry=self.registry,
        )
        self.export_failures = Counter(
            "meshscope_sidecar_export_failures",
            "Export attempts that failed (connection error, timeout, 5xx); the batch is retried.",
            ["signal"],
            registry=self.registry,
        )
        self.buffered = Gauge(
            "meshscope_sidecar_buffered_items",
            "Spans and log records waiting to be exported.",
            ["signal"],
            registry=self.registry,
        )

    def observe(
        self, direction: str, source: str, destination: str, status: int, seconds: float
    ) -> None:
        self.requests.labels(direction, source, destination, str(status)).inc()
        self.duration.labels(direction, source, destination).observe(seconds)
