"""Checks that what the OTel SDK exported is exactly what the store holds."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from meshscope.model.attributes import AttrValue
from meshscope.model.logs import Severity
from meshscope.model.metrics import Labels, labels_of
from meshscope.model.spans import Span
from meshscope.store.base import MAX_TIME_NS, LabelMatcher, LogQuery, MatchOp, Storage
from tests.ingest.otel_sdk import RESOURCE_ATTRS


def plain(attributes: Mapping[str, Any] | None) -> dict[str, AttrValue]:
    """SDK attributes as the model keeps them (sequences become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (attributes or {}).items()}


def trace_hex(value: int) -> str:
    return format(value, "032x")


def span_hex(value: int) -> str:
    return format(value, "016x")


def stored_span(storage: Storage, sent: ReadableSpan) -> Span:
    assert sent.context is not None
    trace = storage.traces.get_trace(trace_hex(sent.context.trace_id))
    matches = [s for s in trace if s.span_id == span_hex(sent.context.span_id)]
    assert len(matches) == 1, f"span {sent.name!r} stored {len(matches)} times"
    return matches[0]


def assert_otlp_spans_stored(storage: Storage, sent: Sequence[ReadableSpan]) -> None:
    """Every field OTLP carries arrived unchanged: ids, parents, names, kinds, statuses,
    attributes, events, links, resource (service) and scope."""
    for span in sent:
        got = stored_span(storage, span)
        assert got.name == span.name
        assert got.service == "checkout"
        assert got.parent_span_id == (span_hex(span.parent.span_id) if span.parent else "")
        assert got.kind.name == span.kind.name
        assert got.status_code.name == span.status.status_code.name
        assert got.status_message == (span.status.description or "")
        assert (got.start_ns, got.end_ns) == (span.start_time, span.end_time)
        assert got.attributes == plain(span.attributes)
        assert [(e.name, e.time_ns, e.attributes) for e in got.events] == [
            (e.name, e.timestamp, plain(e.attributes)) for e in span.events
        ]
        assert [(link.trace_id, link.span_id, link.attributes) for link in got.links] == [
            (
                trace_hex(link.context.trace_id),
                span_hex(link.context.span_id),
                plain(link.attributes),
            )
            for link in span.links
        ]
        assert got.resource == plain(span.resource.attributes)
        assert span.instrumentation_scope is not None
        assert got.scope_name == span.instrumentation_scope.name
        assert got.scope_version == span.instrumentation_scope.version


def assert_sdk_logs_stored(storage: Storage, records: Sequence[Any]) -> None:
    """The three records of `otel_sdk.make_logs`, found by service and by trace id."""
    logs = storage.logs.find_logs(LogQuery(service="checkout"))
    assert [(r.severity, r.severity_text) for r in logs] == [
        (18, "ERROR"),  # ERROR2, the number as sent
        (Severity.INFO, "info"),
        (Severity.UNSPECIFIED, ""),
    ]
    assert logs[0].body == "payment failed"
    assert json.loads(logs[1].body) == {"event": "login", "user": {"id": 7}, "tags": ["x"]}
    assert json.loads(logs[2].body) == 12.5
    assert [r.time_ns for r in logs] == [
        r.log_record.timestamp or r.log_record.observed_timestamp for r in records
    ]
    assert logs[0].attributes == {"order.id": 42, "retry": False}
    assert logs[0].resource["service.namespace"] == "shop"
    sent = records[0].log_record
    assert (logs[0].trace_id, logs[0].span_id) == (trace_hex(sent.trace_id), span_hex(sent.span_id))
    assert [(r.trace_id, r.span_id) for r in logs[1:]] == [("", ""), ("", "")]
    correlated = storage.logs.find_logs(LogQuery(trace_id=logs[0].trace_id))
    assert [r.body for r in correlated] == ["payment failed"]


def sdk_metrics() -> MetricsData:
    """One collection of a counter (two series), a histogram and a gauge, made by the SDK."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource(RESOURCE_ATTRS), metric_readers=[reader])
    meter = provider.get_meter("meshscope.tests.receivers", "0.3")
    requests = meter.create_counter("http.server.requests", unit="{request}")
    requests.add(3, {"http.route": "/cart", "http.response.status_code": 200})
    requests.add(1, {"http.route": "/cart", "http.response.status_code": 500})
    duration = meter.create_histogram("http.server.duration", unit="ms")
    for value in (3.0, 7.0, 120.0):
        duration.record(value, {"http.route": "/cart"})
    gauge = meter.create_gauge("queue.depth", unit="{item}")
    gauge.set(12, {"queue": "orders"})
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return data


def assert_sdk_metrics_stored(storage: Storage) -> None:
    """What `sdk_metrics` recorded, as Prometheus series of job `shop/checkout`."""
    job = [LabelMatcher("job", MatchOp.EQ, "shop/checkout")]
    requests = storage.metrics.select("http_server_requests_total", job, 0, MAX_TIME_NS)
    assert {s.labels: s.samples[-1].value for s in requests} == {
        _labels({"http_route": "/cart", "http_response_status_code": "200"}): 3.0,
        _labels({"http_route": "/cart", "http_response_status_code": "500"}): 1.0,
    }
    (duration,) = storage.metrics.select("http_server_duration_milliseconds", job, 0, MAX_TIME_NS)
    histogram = duration.samples[-1].histogram
    assert histogram is not None
    assert (histogram.count, histogram.sum) == (3, 130.0)
    (depth,) = storage.metrics.select("queue_depth", job, 0, MAX_TIME_NS)
    assert depth.samples[-1].value == 12.0
    assert depth.samples[-1].label("queue") == "orders"
    # The resource's other attributes, as the spec's target info (no scope labels on it).
    (info,) = storage.metrics.select("target_info", job, 0, MAX_TIME_NS)
    assert info.labels == labels_of(
        {"deployment_environment": "test", "job": "shop/checkout", "instance": "checkout-7f9c-1"}
    )
    assert info.samples[-1].value == 1.0
    assert info.samples[-1].time_ns == depth.samples[-1].time_ns


def _labels(attrs: dict[str, str]) -> Labels:
    """A point's labels: its attributes, the resource's job and instance, the meter's scope."""
    return labels_of(
        {**attrs, "job": "shop/checkout", "instance": "checkout-7f9c-1",
         "otel_scope_name": "meshscope.tests.receivers", "otel_scope_version": "0.3"}
    )  # fmt: skip
