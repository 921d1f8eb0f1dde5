"""The node's messages, each a small function over the shared core.

Writes (`record`, `trace`, `http_request`, `log`, `instrument_service`) build model objects and
hand them to the same Pipeline the server uses; reads (`query`, `generate`, `search_logs`)
answer through the query layer. See docs/node-protocol.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from meshscope.model.batch import Batch
from meshscope.model.calls import ProxyRequest
from meshscope.model.ids import new_span_id, new_trace_id, parse_traceparent
from meshscope.model.logs import LogRecord, Severity
from meshscope.model.spans import Span, SpanKind
from meshscope.node.fields import (
    BadFieldError,
    opt_object,
    opt_str,
    req_int,
    req_number,
    req_str,
    req_str_list,
)
from meshscope.node.framing import JsonObject
from meshscope.node.snippets import count_span_starts
from meshscope.pipeline.chain import Pipeline
from meshscope.query.access_logs import access_log_summary
from meshscope.query.logs import trace_logs
from meshscope.query.requests import request_count
from meshscope.query.servicegraph import service_graph

DEFAULT_LOG_SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Envelope:
    src: str
    dest: str


@dataclass(slots=True)
class NodeState:
    pipeline: Pipeline
    chain: list[str] = field(default_factory=list)  # the instrumented call chain, in order
    node_id: str = ""


Reply = JsonObject | None
Handler = Callable[[NodeState, JsonObject, Envelope], Reply]


MAX_DURATION_MS = 2**63 / 1e6
"""Durations are int64 nanoseconds: `duration_ms` is below ~292 years."""


def handle_init(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    state.node_id = opt_str(body, "node_id")
    return {"type": "init_ok"}


def handle_record(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    service = req_str(body, "service")
    duration_ms = req_number(body, "duration_ms", below=MAX_DURATION_MS)
    status = req_int(body, "status", 100, 599)
    source = opt_str(body, "source_service")
    now = state.pipeline.clock.now_ns()
    request = ProxyRequest(service, now, round(duration_ms * 1e6), status, source=source)
    state.pipeline.consume(Batch(requests=[request]))
    state.pipeline.flush(changed_only=True)
    count = request_count(state.pipeline.storage.metrics, service)
    return {"type": "metrics_recorded", "service": service, "request_count": count}


def handle_trace(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    operation = req_str(body, "operation")
    service = opt_str(body, "service") or env.src
    trace_id = opt_str(body, "trace_id")
    parent = opt_str(body, "parent_span_id") if trace_id else ""
    now = state.pipeline.clock.now_ns()
    span = Span(
        trace_id=trace_id or new_trace_id(),
        span_id=new_span_id(),
        name=operation,
        service=service,
        start_ns=now,
        end_ns=now,
        parent_span_id=parent,
        kind=SpanKind.SERVER,
    )
    state.pipeline.consume(Batch(spans=[span]))
    return {"type": "trace_created", "trace_id": span.trace_id, "span_id": span.span_id}


def handle_query(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    filters = opt_object(body, "filter")
    source = opt_str(filters, "source_service")
    target = opt_str(filters, "target_service")
    state.pipeline.flush(changed_only=True)
    groups = access_log_summary(state.pipeline.storage.logs, source, target)
    logs = [
        {"source_service": g.source, "target_service": g.target, "count": g.count} for g in groups
    ]
    return {"type": "access_logs", "logs": logs}


def handle_generate(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    state.pipeline.flush(changed_only=True)
    graph = service_graph(state.pipeline.storage)
    edges = [
        {"source": e.source, "target": e.target, "request_count": e.request_count}
        for e in graph.edges
    ]
    return {"type": "service_graph", "nodes": graph.nodes, "edges": edges}


def handle_instrument_service(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    services = req_str_list(body, "services")
    state.chain = services
    state.pipeline.declare_services(services)
    return None


def handle_http_request(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    """The request flows through each instrumented service in order, one SERVER span per hop,
    each the child of the previous one: the context a sidecar would propagate hop by hop."""
    path = req_str(body, "path")
    method = opt_str(body, "method", "GET").upper() or "GET"
    headers = opt_object(body, "headers")
    context = parse_traceparent(_header(headers, "traceparent"))
    trace_state = (_header(headers, "tracestate") or "") if context else ""
    chain = state.chain or [env.dest]
    trace_id = context.trace_id if context else new_trace_id()
    parent = context.span_id if context else ""
    clock = state.pipeline.clock
    starts: list[tuple[str, str, str, int]] = []  # (service, span_id, parent_id, start)
    for service in chain:
        span_id = new_span_id()
        starts.append((service, span_id, parent, clock.now_ns()))
        parent = span_id
    spans: list[Span] = []
    for service, span_id, parent_id, start in reversed(starts):  # responses return upstream
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                name=f"{method} {path}",
                service=service,
                start_ns=start,
                end_ns=clock.now_ns(),
                parent_span_id=parent_id,
                kind=SpanKind.SERVER,
                attributes={"http.request.method": method, "url.path": path},
                trace_state=trace_state,
                flags=context.flags if context else 1,
            )
        )
    spans.reverse()
    state.pipeline.consume(Batch(spans=spans))
    return {
        "type": "trace_complete",
        "trace_id": trace_id,
        "services": chain,
        "span_count": len(spans),
    }


def _header(headers: JsonObject, name: str) -> str | None:
    """A header value by case-insensitive name, if it is a string."""
    for key, value in headers.items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def handle_log(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    message = req_str(body, "message", allow_empty=True)
    trace_id = req_str(body, "trace_id", allow_empty=True)  # required by the protocol's table
    service = opt_str(body, "service") or DEFAULT_LOG_SERVICE
    level = opt_str(body, "level", "info")
    record = LogRecord(
        time_ns=state.pipeline.clock.now_ns(),
        body=message,
        service=service,
        severity=Severity.from_text(level),
        severity_text=level,
        trace_id=trace_id,
        span_id=opt_str(body, "span_id"),
    )
    state.pipeline.consume(Batch(logs=[record]))
    return None


def handle_search_logs(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    trace_id = req_str(body, "trace_id")
    records = trace_logs(state.pipeline.storage.logs, trace_id)
    logs = [{"service": r.service, "message": r.body, "trace_id": r.trace_id} for r in records]
    return {"type": "search_results", "logs": logs}


def handle_manual_instrument(state: NodeState, body: JsonObject, env: Envelope) -> Reply:
    code = req_str(body, "code", allow_empty=True)
    return {"type": "instrumentation_ok", "spans_created": count_span_starts(code)}


HANDLERS: dict[str, Handler] = {
    "init": handle_init,
    "record": handle_record,
    "trace": handle_trace,
    "query": handle_query,
    "generate": handle_generate,
    "instrument_service": handle_instrument_service,
    "http_request": handle_http_request,
    "log": handle_log,
    "search_logs": handle_search_logs,
    "manual_instrument": handle_manual_instrument,
}

__all__ = ["HANDLERS", "BadFieldError", "Envelope", "NodeState"]
