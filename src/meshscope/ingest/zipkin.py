"""Zipkin v2 JSON (`ListOfSpans`, the body of `POST /api/v2/spans`) -> spans.

Mapping (compatible with how the OTel Zipkin exporter encodes and the Collector's Zipkin
receiver decodes):
- ids are lowercased and left-padded with zeros: 64-bit trace ids to 32 hex, span ids to 16;
- `kind` CLIENT/SERVER/PRODUCER/CONSUMER, absent -> INTERNAL; `timestamp`/`duration` µs -> ns;
- `localEndpoint.serviceName` -> service (as sent; `unknown_service` when absent), its address
  and port -> `network.local.address` / `network.local.port`;
- `remoteEndpoint.serviceName` -> `peer.service`, its address and port ->
  `network.peer.address` / `network.peer.port`;
- tags -> attributes, except `otel.status_code`/`otel.status_description` and `error`
  (-> status ERROR, the tag value as message) and `otel.scope.*`/`otel.library.*` (-> scope);
- annotations -> events; an annotation written by the OTel exporter (`{"name": {attrs}}` as
  JSON) becomes that event with its attributes.

Zipkin has no partial success: a structurally invalid span fails the whole body with a
DecodeError naming the span (Zipkin answers such bodies with 400 too).
"""

from __future__ import annotations

from typing import Any

import orjson

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import UNKNOWN_SERVICE, Decoded
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanEvent, SpanKind, StatusCode

_KINDS = {
    "CLIENT": SpanKind.CLIENT,
    "SERVER": SpanKind.SERVER,
    "PRODUCER": SpanKind.PRODUCER,
    "CONSUMER": SpanKind.CONSUMER,
}
_MAX_MICROS = 2**63 // 1000
_HEX = frozenset("0123456789abcdef")
_SCOPE_NAME_TAGS = ("otel.scope.name", "otel.library.name")
_SCOPE_VERSION_TAGS = ("otel.scope.version", "otel.library.version")


def decode_zipkin_json(body: bytes) -> Decoded:
    """Decode a Zipkin v2 JSON list of spans. Raises DecodeError if any span is invalid."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON Zipkin spans: {exc}") from None
    return Decoded(Batch(spans=zipkin_spans(document)))


def zipkin_spans(document: object) -> list[Span]:
    """The spans of a parsed Zipkin v2 body, one per item in order (trace ids padded to 32
    lowercase hex). Raises DecodeError if any span is invalid."""
    if not isinstance(document, list):
        raise DecodeError(
            f"Zipkin v2 body must be a JSON list of spans, got {type(document).__name__}"
        )
    return [_span(item, index) for index, item in enumerate(document)]


def _hex_id(value: object, size: int, field: str, index: int) -> str:
    if not isinstance(value, str) or not value:
        raise DecodeError(f"span {index}: {field} must be a non-empty hex string")
    text = value.lower()
    if len(text) > size or not _HEX.issuperset(text):
        raise DecodeError(f"span {index}: {field} {value[:40]!r} is not {size} hex characters")
    text = text.rjust(size, "0")
    if text == "0" * size:
        raise DecodeError(f"span {index}: {field} must not be all zeros")
    return text


def _micros(value: object, field: str, index: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise DecodeError(f"span {index}: {field} must be a non-negative number of microseconds")
    if not value < _MAX_MICROS:  # also false for NaN and infinity
        raise DecodeError(f"span {index}: {field} {value} is out of range")
    return int(value * 1000)


def _dict(value: object, field: str, index: int) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"span {index}: {field} must be an object")
    return value


def _endpoint(endpoint: dict[str, Any], prefix: str, attrs: dict[str, AttrValue]) -> None:
    address = endpoint.get("ipv4") or endpoint.get("ipv6")
    if isinstance(address, str) and address:
        attrs[f"{prefix}.address"] = address
    port = endpoint.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and port > 0:
        attrs[f"{prefix}.port"] = port


def _event(annotation: object, index: int) -> SpanEvent:
    if not isinstance(annotation, dict):
        raise DecodeError(f"span {index}: each annotation must be an object")
    time_ns = _micros(annotation.get("timestamp"), "annotation timestamp", index)
    value = annotation.get("value")
    name = value if isinstance(value, str) else ""
    if name.startswith("{"):  # `{"name": {attributes}}`: the OTel SDKs' Zipkin exporters
        parsed = _json(name)
        if isinstance(parsed, dict) and len(parsed) == 1:
            ((event_name, event_attrs),) = parsed.items()
            if isinstance(event_attrs, dict) and all(map(_attribute, event_attrs.values())):
                return SpanEvent(time_ns, event_name, event_attrs)
    elif "|{" in name:  # `name|{attributes}|dropped`: the OTel Collector's Zipkin exporter
        head, _, dropped = name.rpartition("|")
        event_name, _, attrs_text = head.partition("|")
        parsed = _json(attrs_text) if dropped.isdigit() else None
        if isinstance(parsed, dict) and all(map(_attribute, parsed.values())):
            return SpanEvent(time_ns, event_name, parsed)
    return SpanEvent(time_ns, name)  # not what an exporter writes: the text as it came


def _json(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _attribute(value: object) -> bool:
    """Whether `value` is an OpenTelemetry attribute value as JSON: a string, number or
    boolean, or a list of them (nothing nested deeper)."""
    if isinstance(value, list):
        return all(isinstance(item, str | int | float | bool) for item in value)
    return isinstance(value, str | int | float | bool)


def _span(item: object, index: int) -> Span:
    if not isinstance(item, dict):
        raise DecodeError(f"span {index}: each span must be a JSON object")
    trace_id = _hex_id(item.get("traceId"), 32, "traceId", index)
    span_id = _hex_id(item.get("id"), 16, "id", index)
    parent = item.get("parentId")
    parent_id = "" if parent in (None, "") else _hex_id(parent, 16, "parentId", index)
    kind_name = item.get("kind")
    if kind_name is not None and not (isinstance(kind_name, str) and kind_name in _KINDS):
        shown = repr(kind_name) if isinstance(kind_name, str) else type(kind_name).__name__
        raise DecodeError(f"span {index}: unknown kind {shown[:40]}")
    start_ns = _micros(item.get("timestamp"), "timestamp", index)
    duration_ns = _micros(item.get("duration"), "duration", index)
    name = item.get("name")
    if name is not None and not isinstance(name, str):  # as Zipkin's decoder
        raise DecodeError(f"span {index}: name must be a string")

    attrs: dict[str, AttrValue] = {}
    local = _dict(item.get("localEndpoint"), "localEndpoint", index)
    remote = _dict(item.get("remoteEndpoint"), "remoteEndpoint", index)
    service = local.get("serviceName")
    service = service if isinstance(service, str) and service else UNKNOWN_SERVICE
    _endpoint(local, "network.local", attrs)
    peer = remote.get("serviceName")
    if isinstance(peer, str) and peer:
        attrs["peer.service"] = peer
    _endpoint(remote, "network.peer", attrs)

    tags = _dict(item.get("tags"), "tags", index)
    for key, value in tags.items():
        if isinstance(value, str | int | float | bool):
            attrs[key] = value
        elif value is not None:
            raise DecodeError(f"span {index}: tag {key[:40]!r} must be a string")
    status_code, status_message = _status(attrs)
    scope_name = _pop_first(attrs, _SCOPE_NAME_TAGS)
    scope_version = _pop_first(attrs, _SCOPE_VERSION_TAGS)

    annotations = item.get("annotations")
    if annotations is not None and not isinstance(annotations, list):
        raise DecodeError(f"span {index}: annotations must be a list")
    events = tuple(_event(a, index) for a in annotations or ())
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name or "",
        service=service,
        start_ns=start_ns,
        end_ns=start_ns + duration_ns,
        parent_span_id="" if parent_id == "0" * 16 else parent_id,
        kind=_KINDS[kind_name] if kind_name is not None else SpanKind.INTERNAL,
        status_code=status_code,
        status_message=status_message,
        attributes=attrs,
        events=events,
        resource={"service.name": service},
        scope_name=scope_name,
        scope_version=scope_version,
    )


def _pop_first(attrs: dict[str, AttrValue], keys: tuple[str, ...]) -> str:
    found = ""
    for key in keys:
        value = attrs.pop(key, None)
        if value is not None and not found:
            found = str(value)
    return found


def _status(attrs: dict[str, AttrValue]) -> tuple[StatusCode, str]:
    """Status from the `otel.status_code` / `error` tags, which are then removed."""
    code_tag = str(attrs.pop("otel.status_code", "")).upper()
    message = str(attrs.pop("otel.status_description", ""))
    error = attrs.pop("error", None)
    if error is not None:
        text = str(error)
        return StatusCode.ERROR, message or ("" if text.lower() in ("", "true") else text)
    if code_tag == "ERROR":
        return StatusCode.ERROR, message
    if code_tag == "OK":
        return StatusCode.OK, ""
    return StatusCode.UNSET, ""
