"""Spans in Zipkin's v2 JSON model (`zipkin2.Span`), the inverse of ingest/zipkin.py's mapping.

- a trace id whose high 64 bits are zero is written with 16 hex characters (as received from a
  64-bit tracer), others with 32; `parentId` is left out for a root;
- kind CLIENT/SERVER/PRODUCER/CONSUMER, left out for INTERNAL/UNSPECIFIED;
- `timestamp`/`duration` in µs, the duration at least 1 (Zipkin drops a 0 duration);
- service -> `localEndpoint.serviceName`; `network.local.*` -> its ipv4/ipv6/port;
  `peer.service` -> `remoteEndpoint.serviceName`, `network.peer.*` -> its address and port;
- attributes -> tags (text form); status -> `otel.status_code` (OK or ERROR) and, for ERROR,
  tag `error` with the status message ("" without one), as the OTel spec's Zipkin mapping asks;
  scope -> `otel.scope.name`/`.version`;
- events -> annotations whose value is the event name, or, with attributes, `{"name":{...}}`
  (the spec's `"name": {attributes}` as the OTel Zipkin exporters write it; ingest reads it).
"""

from __future__ import annotations

from typing import Any

from meshscope.model.attributes import AttrValue, json_text
from meshscope.model.spans import Span, SpanEvent, SpanKind, StatusCode
from meshscope.store.base import attr_text

Json = dict[str, Any]
_KINDS = {SpanKind.CLIENT, SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER}
_ENDPOINT_KEYS = ("peer.service", "network.local.address", "network.local.port",
                  "network.peer.address", "network.peer.port")  # fmt: skip


def zipkin_trace_id(trace_id: str) -> str:
    return trace_id[16:] if trace_id.startswith("0" * 16) else trace_id


def _endpoint(service: str, attrs: dict[str, AttrValue], prefix: str) -> Json:
    out: Json = {}
    if service:
        out["serviceName"] = service
    address = attrs.get(f"{prefix}.address")
    if isinstance(address, str) and address:
        out["ipv6" if ":" in address else "ipv4"] = address
    port = attrs.get(f"{prefix}.port")
    if isinstance(port, int) and not isinstance(port, bool) and port > 0:
        out["port"] = port
    return out


def _annotation(event: SpanEvent) -> str:
    return json_text({event.name: event.attributes}) if event.attributes else event.name


def span_json(span: Span) -> Json:
    attrs = span.attributes
    out: Json = {"traceId": zipkin_trace_id(span.trace_id), "id": span.span_id}
    if span.parent_span_id:
        out["parentId"] = span.parent_span_id
    if span.kind in _KINDS:
        out["kind"] = span.kind.name
    out["name"] = span.name
    out["timestamp"] = span.start_ns // 1000
    out["duration"] = max(1, span.duration_ns // 1000)
    out["localEndpoint"] = _endpoint(span.service, attrs, "network.local")
    peer = attrs.get("peer.service")
    remote = _endpoint(peer if isinstance(peer, str) else "", attrs, "network.peer")
    if remote:
        out["remoteEndpoint"] = remote
    if span.events:
        out["annotations"] = [
            {"timestamp": e.time_ns // 1000, "value": _annotation(e)} for e in span.events
        ]
    tags = {k: attr_text(v) for k, v in attrs.items() if k not in _ENDPOINT_KEYS}
    if span.status_code is not StatusCode.UNSET:
        tags["otel.status_code"] = span.status_code.name
    if span.status_code is StatusCode.ERROR:
        tags["error"] = span.status_message
    if span.scope_name:
        tags["otel.scope.name"] = span.scope_name
    if span.scope_version:
        tags["otel.scope.version"] = span.scope_version
    if tags:
        out["tags"] = tags
    return out
