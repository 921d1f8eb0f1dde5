"""Telemetry made by the real OpenTelemetry Python SDK, as the exporters would send it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._internal._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, StatusCode
from opentelemetry.trace.span import TraceFlags, TraceState

RESOURCE_ATTRS: dict[str, Any] = {
    "service.name": "checkout",
    "service.namespace": "shop",
    "service.instance.id": "checkout-7f9c-1",
    "deployment.environment": "test",
}
REMOTE_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
REMOTE_SPAN_ID = 0xB7AD6B7169203331


def make_spans() -> list[ReadableSpan]:
    """A small trace: a server span continuing a remote parent, a child with an error."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(RESOURCE_ATTRS))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("meshscope.tests", "1.2.3")
    remote = SpanContext(
        REMOTE_TRACE_ID,
        REMOTE_SPAN_ID,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    link_target = SpanContext(0x1234, 0x5678, is_remote=True)
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(remote))
    with tracer.start_as_current_span(
        "GET /api/cart",
        context=parent_ctx,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "sampled.ratio": 0.25,
            "cache.hit": True,
            "tags": ["a", "b"],
            "ports": [80, 443],
        },
        links=[Link(link_target, {"link.kind": "follows"})],
    ) as server:
        server.add_event("cart.loaded", {"items": 3, "note": "ok"}, timestamp=1_700_000_000_5)
        with tracer.start_as_current_span("SELECT carts", kind=trace.SpanKind.CLIENT) as db:
            db.set_attribute("db.system", "postgresql")
            db.set_status(Status(StatusCode.ERROR, "connection reset"))
        with tracer.start_as_current_span("publish", kind=trace.SpanKind.PRODUCER) as pub:
            pub.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("render"):
            pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def traces_request_bytes(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def make_logs() -> tuple[list[Any], bytes]:
    """Log records emitted through the SDK (with and without a span context), and their bytes."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=Resource(RESOURCE_ATTRS))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("meshscope.tests.logs", "0.1")
    tracer_provider = TracerProvider(resource=Resource(RESOURCE_ATTRS))
    tracer = tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("handler"):
        logger.emit(
            timestamp=1_700_000_000_000_000_001,
            severity_number=SeverityNumber.ERROR2,
            severity_text="ERROR",
            body="payment failed",
            attributes={"order.id": 42, "retry": False},
        )
    logger.emit(
        observed_timestamp=1_700_000_000_000_000_002,
        severity_number=SeverityNumber.INFO,
        severity_text="info",
        body={"event": "login", "user": {"id": 7}, "tags": ["x"]},
    )
    logger.emit(timestamp=1_700_000_000_000_000_003, body=12.5)
    provider.shutdown()
    records = list(exporter.get_finished_logs())
    return records, bytes(encode_logs(records).SerializeToString())


def make_metrics(delta: bool = False, exponential: bool = False) -> bytes:
    """One collection of a meter with every instrument kind, encoded as the exporter does."""
    temporality = AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE
    reader = InMemoryMetricReader(
        preferred_temporality={
            Counter: temporality,
            Histogram: temporality,
            UpDownCounter: AggregationTemporality.CUMULATIVE,
        }
    )
    views = []
    if exponential:
        views = [
            View(
                instrument_name="rpc.server.duration",
                aggregation=ExponentialBucketHistogramAggregation(max_size=20),
            )
        ]
    provider = MeterProvider(
        resource=Resource(RESOURCE_ATTRS), metric_readers=[reader], views=views
    )
    meter = provider.get_meter("meshscope.tests.metrics", "0.2")
    requests = meter.create_counter("http.server.requests", unit="{request}", description="reqs")
    requests.add(3, {"http.route": "/cart", "http.response.status_code": 200})
    requests.add(1, {"http.route": "/cart", "http.response.status_code": 500})
    active = meter.create_up_down_counter("http.server.active_requests", unit="{request}")
    active.add(5)
    active.add(-2)
    duration = meter.create_histogram("http.server.duration", unit="ms")
    for value in (3.0, 7.0, 7.0, 120.0, 20000.0):
        duration.record(value, {"http.route": "/cart"})
    rpc = meter.create_histogram("rpc.server.duration", unit="s")
    for value in (0.001, 0.002, 0.5, 1.5):
        rpc.record(value)
    meter.create_observable_gauge(
        "system.cpu.utilization",
        callbacks=[lambda _options: [_observation(0.75)]],
        unit="1",
    )
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return bytes(encode_metrics(data).SerializeToString())


def _observation(value: float) -> Any:
    from opentelemetry.metrics import Observation

    return Observation(value, {"cpu": "0"})
