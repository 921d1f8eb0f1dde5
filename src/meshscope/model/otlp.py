"""Model spans as OTLP protobuf (the opposite of meshscope.ingest's decoders): attribute
values, spans, and a trace grouped into one ResourceSpans per resource, as Tempo answers it.

Tempo's `tempopb.Trace` is `repeated ResourceSpans batches = 1`, the same wire format as
OTLP's `ExportTraceServiceRequest` (`resource_spans = 1`), so one message serves both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Status
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span


def any_value(value: AttrValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    if value is None:  # an empty value, as it came
        return AnyValue()
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, AttrValue]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def _id(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id) if hex_id else b""


def pb_span(span: Span) -> PbSpan:
    return PbSpan(
        trace_id=_id(span.trace_id),
        span_id=_id(span.span_id),
        parent_span_id=_id(span.parent_span_id),
        trace_state=span.trace_state,
        name=span.name,
        kind=int(span.kind),  # type: ignore[arg-type]
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=key_values(span.attributes),
        events=[
            PbSpan.Event(time_unix_nano=e.time_ns, name=e.name, attributes=key_values(e.attributes))
            for e in span.events
        ],
        links=[
            PbSpan.Link(
                trace_id=_id(link.trace_id),
                span_id=_id(link.span_id),
                attributes=key_values(link.attributes),
            )
            for link in span.links
        ],
        status=Status(code=int(span.status_code), message=span.status_message),  # type: ignore[arg-type]
        flags=span.flags,
    )


def trace_request(spans: Sequence[Span]) -> ExportTraceServiceRequest:
    """The spans grouped by (service and resource attributes), then by scope."""
    batches: dict[str, ResourceSpans] = {}
    scopes: dict[tuple[str, str, str], ScopeSpans] = {}
    for span in spans:
        resource = {"service.name": span.service, **span.resource}
        key = json.dumps(resource, sort_keys=True, default=str)
        batch = batches.get(key)
        if batch is None:
            batch = batches[key] = ResourceSpans(resource=Resource(attributes=key_values(resource)))
        scope_key = (key, span.scope_name, span.scope_version)
        scope = scopes.get(scope_key)
        if scope is None:
            scope = scopes[scope_key] = batch.scope_spans.add(
                scope=InstrumentationScope(name=span.scope_name, version=span.scope_version)
            )
        scope.spans.append(pb_span(span))
    return ExportTraceServiceRequest(resource_spans=list(batches.values()))
