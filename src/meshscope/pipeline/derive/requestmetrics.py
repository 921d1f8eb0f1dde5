"""Request metrics seen by sidecar proxies, like Istio's `istio_requests_total`.

`mesh_requests_total{destination_service, source_service, response_code}` and the histogram
`mesh_request_duration_seconds{destination_service, source_service}`; 5xx responses are errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshscope.model.calls import ProxyRequest
from meshscope.pipeline.derive.registry import MetricsRegistry

REQUESTS = "mesh_requests_total"
DURATION = "mesh_request_duration_seconds"
UNKNOWN_SOURCE = "unknown"
DEFAULT_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class RequestMetrics:
    def __init__(
        self, registry: MetricsRegistry, buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S
    ) -> None:
        self._registry = registry
        self._buckets = buckets_s

    def metrics(self) -> dict[str, tuple[float, ...]]:
        """The metrics made here: name -> histogram bounds (() for a counter)."""
        return {REQUESTS: (), DURATION: self._buckets}

    def observe(self, requests: Sequence[ProxyRequest]) -> None:
        for request in requests:
            source = request.source or UNKNOWN_SOURCE
            self._registry.inc(
                REQUESTS,
                (
                    ("destination_service", request.service),
                    ("response_code", str(request.status_code)),
                    ("source_service", source),
                ),
                help_text="Requests seen by the destination's sidecar.",
            )
            self._registry.observe(
                DURATION,
                (("destination_service", request.service), ("source_service", source)),
                request.duration_ns / 1e9,
                self._buckets,
                help_text="Request latency seen by the destination's sidecar, in seconds.",
            )
