"""The pipeline: every Batch from every receiver goes through here, in one direction.

    catalog  <- services and operations seen
    derive   <- span metrics, request metrics, service graph (+ access logs), BEFORE sampling
    store    <- spans, logs (with access logs), metric points

Derived metrics accumulate in a registry and reach the store on `flush()`, which the server
calls every flush interval (and the node before each answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshscope.clock import Clock
from meshscope.model.batch import Batch
from meshscope.model.calls import Call, ProxyRequest
from meshscope.model.spans import SpanKind
from meshscope.pipeline.derive.accesslog import access_log
from meshscope.pipeline.derive.registry import MetricsRegistry
from meshscope.pipeline.derive.requestmetrics import RequestMetrics
from meshscope.pipeline.derive.servicegraph import ServiceGraphMetrics, SpanPairer
from meshscope.pipeline.derive.spanmetrics import SpanMetrics
from meshscope.store.base import Operation, Storage


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    servicegraph_ttl_ns: int = 10 * 10**9
    servicegraph_max_pending: int = 1_000_000
    max_series_per_metric: int = 10_000


def call_from_request(request: ProxyRequest) -> Call:
    return Call(
        source=request.source,
        target=request.service,
        time_ns=request.time_ns,
        failed=request.failed,
        server_duration_ns=request.duration_ns,
        status_code=request.status_code,
        method=request.method,
        path=request.path,
        trace_id=request.trace_id,
        span_id=request.span_id,
    )


class Pipeline:
    def __init__(
        self, storage: Storage, clock: Clock, settings: PipelineSettings | None = None
    ) -> None:
        settings = settings or PipelineSettings()
        self.storage = storage
        self.clock = clock
        self.registry = MetricsRegistry(settings.max_series_per_metric)
        self.pairer = SpanPairer(settings.servicegraph_ttl_ns, settings.servicegraph_max_pending)
        self._span_metrics = SpanMetrics(self.registry)
        self._request_metrics = RequestMetrics(self.registry)
        self._graph_metrics = ServiceGraphMetrics(self.registry)

    def declare_services(self, services: Sequence[str]) -> None:
        """Services known before they send anything (e.g. an instrumented call chain)."""
        self.storage.catalog.note([Operation(name, "", SpanKind.INTERNAL) for name in services])

    def consume(self, batch: Batch) -> None:
        """Derive from the batch and write it in one store transaction. When this returns,
        the batch is durable."""
        now = self.clock.now_ns()
        calls = self.pairer.add(batch.spans, now)
        calls.extend(call_from_request(r) for r in batch.requests if r.source)
        self._span_metrics.observe(batch.spans)
        self._request_metrics.observe(batch.requests)
        self._graph_metrics.observe(calls)
        logs = batch.logs + [access_log(call) for call in calls] if calls else batch.logs
        self.storage.write_batch(
            spans=batch.spans, logs=logs, points=batch.metrics, operations=_operations(batch)
        )

    def flush(self, changed_only: bool = False) -> None:
        """Expire service-graph state and write the derived metrics' current values."""
        now = self.clock.now_ns()
        calls = self.pairer.expire(now)
        if calls:
            self._graph_metrics.observe(calls)
            self.storage.logs.write_logs([access_log(call) for call in calls])
        points = self.registry.collect(now, changed_only=changed_only)
        if points:
            self.storage.metrics.write_points(points)


def _operations(batch: Batch) -> list[Operation]:
    """Catalog entries in order of appearance; a proxied call's source before its target."""
    ops = [Operation(span.service, span.name, span.kind) for span in batch.spans]
    for request in batch.requests:
        if request.source:
            ops.append(Operation(request.source, "", SpanKind.INTERNAL))
        ops.append(Operation(request.service, "", SpanKind.INTERNAL))
    return ops
