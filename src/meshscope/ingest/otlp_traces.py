"""OTLP traces: `ExportTraceServiceRequest` (protobuf or OTLP/JSON) -> spans.

A span the store cannot hold (`checks.span_problem`: ids of the wrong length or all zero, a
parent span id neither empty nor 8 bytes, times past 2^63 ns, link ids of the wrong length)
is rejected and counted (OTLP partial success); the rest of the request is kept. An all-zero
parent span id means "root".

This is the hot path of ingest, hence the flat loop: resource-derived values are computed
once per `ResourceSpans` (and the resource dict is shared by its spans: treat it as
read-only), enum members come from tuples, and `Span` is built positionally.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from meshscope.ingest.checks import ZERO_SPAN, span_problem
from meshscope.ingest.otlp_common import (
    Decoded,
    Rejections,
    attributes,
    parse_json,
    parse_protobuf,
    resource_info,
)
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode

_WHAT = "ExportTraceServiceRequest"
_KINDS = tuple(SpanKind)
_STATUSES = tuple(StatusCode)
_ZERO_SPAN = ZERO_SPAN


def decode_traces_protobuf(body: bytes) -> Decoded:
    """Decode a protobuf `ExportTraceServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_protobuf(ExportTraceServiceRequest(), body, _WHAT)
    return spans_from_request(request.resource_spans)


def decode_traces_json(body: bytes) -> Decoded:
    """Decode an OTLP/JSON `ExportTraceServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_json(ExportTraceServiceRequest(), body, _WHAT)
    return spans_from_request(request.resource_spans)


def spans_from_request(resource_spans: Sequence[ResourceSpans]) -> Decoded:
    """Walk parsed `ResourceSpans` into a Batch of model spans, counting rejected spans."""
    out: list[Span] = []
    append = out.append
    rejections = Rejections()
    kinds, statuses = _KINDS, _STATUSES
    for rs in resource_spans:
        service, resource = resource_info(rs.resource)
        for ss in rs.scope_spans:
            scope = ss.scope
            scope_name, scope_version = scope.name, scope.version
            for span in ss.spans:
                problem = span_problem(span)
                if problem is not None:
                    rejections.add(problem)
                    continue
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                kind = span.kind
                status = span.status
                code = status.code
                events = span.events
                links = span.links
                append(
                    Span(
                        trace_id.hex(),
                        span_id.hex(),
                        span.name,
                        service,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        "" if not parent or parent == _ZERO_SPAN else parent.hex(),
                        kinds[kind] if 0 <= kind < 6 else SpanKind.UNSPECIFIED,
                        statuses[code] if 0 <= code < 3 else StatusCode.UNSET,
                        status.message,
                        attributes(span.attributes),
                        tuple(
                            [
                                SpanEvent(e.time_unix_nano, e.name, attributes(e.attributes))
                                for e in events
                            ]
                        )
                        if events
                        else (),
                        tuple(
                            [
                                SpanLink(
                                    link.trace_id.hex(),
                                    link.span_id.hex(),
                                    attributes(link.attributes),
                                )
                                for link in links
                            ]
                        )
                        if links
                        else (),
                        resource,
                        scope_name,
                        scope_version,
                        span.trace_state,
                        span.flags,
                    )
                )
    return rejections.result(Batch(spans=out), "spans")
