"""The spans a sidecar makes: a SERVER span per inbound request, a CLIENT span per outbound
call, with OpenTelemetry HTTP semantic-convention attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshscope.model.attributes import AttrValue
from meshscope.model.ids import FLAG_SAMPLED
from meshscope.model.sidecar_mark import SIDECAR_ATTRIBUTE
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.sidecar.proxy import Outcome

SOURCE_ATTRIBUTE = "source.service"
_ID_SEGMENT = re.compile(
    r"^(\d+|[0-9a-fA-F]{8,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)


def route_of(path: str) -> str:
    """A low-cardinality stand-in for the route: id-like segments become `{id}`
    (`/orders/42` -> `/orders/{id}`), so span names make usable span-metric labels."""
    if not path or path == "/":
        return "/"
    segments = path.split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(s) else s for s in segments)


@dataclass(slots=True)
class Exchange:
    """One proxied request, as the sidecar saw it."""

    trace_id: str
    span_id: str
    parent_span_id: str
    sampled: bool
    trace_state: str
    method: str
    path: str
    query: str
    start_ns: int
    peer_address: str
    peer_port: int
    user_agent: str
    protocol_version: str


def _http_attributes(exchange: Exchange, outcome: Outcome) -> dict[str, AttrValue]:
    attributes: dict[str, AttrValue] = {
        SIDECAR_ATTRIBUTE: True,
        "http.request.method": exchange.method,
        "url.path": exchange.path,
        "url.scheme": "http",
        "http.response.status_code": outcome.status,
        "network.protocol.version": exchange.protocol_version,
    }
    if exchange.query:
        attributes["url.query"] = exchange.query
    if exchange.user_agent:
        attributes["user_agent.original"] = exchange.user_agent
    if outcome.error_type:
        attributes["error.type"] = outcome.error_type
    elif outcome.status >= 500:
        attributes["error.type"] = str(outcome.status)
    return attributes


def _span(
    exchange: Exchange,
    service: str,
    kind: SpanKind,
    end_ns: int,
    outcome: Outcome,
    attributes: dict[str, AttrValue],
) -> Span:
    failed = outcome.failed
    return Span(
        trace_id=exchange.trace_id,
        span_id=exchange.span_id,
        parent_span_id=exchange.parent_span_id,
        name=f"{exchange.method} {route_of(exchange.path)}",
        service=service,
        start_ns=exchange.start_ns,
        end_ns=end_ns,
        kind=kind,
        status_code=StatusCode.ERROR if failed else StatusCode.UNSET,
        status_message=outcome.error_type or (f"HTTP {outcome.status}" if failed else ""),
        attributes=attributes,
        trace_state=exchange.trace_state,
        flags=FLAG_SAMPLED if exchange.sampled else 0,
    )


def server_span(
    exchange: Exchange,
    service: str,
    end_ns: int,
    outcome: Outcome,
    server_address: str,
    server_port: int,
    source: str,
) -> Span:
    attributes = _http_attributes(exchange, outcome)
    attributes["server.address"] = server_address
    attributes["server.port"] = server_port
    attributes["network.peer.address"] = exchange.peer_address
    if exchange.peer_port:
        attributes["network.peer.port"] = exchange.peer_port
    if source:
        attributes[SOURCE_ATTRIBUTE] = source
    return _span(exchange, service, SpanKind.SERVER, end_ns, outcome, attributes)


def client_span(
    exchange: Exchange,
    service: str,
    end_ns: int,
    outcome: Outcome,
    target: str,
    upstream_host: str,
    upstream_port: int,
) -> Span:
    attributes = _http_attributes(exchange, outcome)
    attributes["server.address"] = target
    attributes["server.port"] = upstream_port
    attributes["peer.service"] = target
    attributes["network.peer.address"] = upstream_host
    attributes["url.full"] = f"http://{target}{exchange.path}" + (
        f"?{exchange.query}" if exchange.query else ""
    )
    return _span(exchange, service, SpanKind.CLIENT, end_ns, outcome, attributes)
