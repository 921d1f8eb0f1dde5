"""The Jaeger query HTTP API (what Jaeger UI and Grafana's Jaeger data source call): routes only.

Every answer is in Jaeger's envelope; bad parameters get a 400 in it, an unknown trace a 404.
Dependencies come from the pre-aggregated service-graph counters (query.dependencies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from meshscope.api.envelope import FastJSONResponse, jaeger_error, jaeger_ok
from meshscope.api.handlers import Handler, Notes, status_of, threaded
from meshscope.api.jaeger_model import trace_fragment, traces_fragments
from meshscope.api.jaeger_search import KINDS, parse_search
from meshscope.api.params import NS_PER_MS, ParamError, optional_int, scaled, trace_id
from meshscope.model.spans import SpanKind
from meshscope.query import traces as trace_queries
from meshscope.query.dependencies import dependencies
from meshscope.store.base import Storage

DAY_MS = 24 * 3600 * 1000
NowNs = Callable[[], int]


def kind_name(kind: SpanKind) -> str:
    return "" if kind is SpanKind.UNSPECIFIED else kind.name.lower()


JAEGER_NOTES = Notes("errors", lambda message: {"code": 503, "msg": message})
"""A partial answer's warnings as Jaeger's query service reports partial failures: in
`errors` beside `data`."""


def _endpoint(work: Callable[[Request], Any]) -> Handler:
    """`work` off the event loop; its data in the Jaeger envelope, ParamError a 400 in it."""
    return threaded(
        work,
        jaeger_ok,
        lambda error: jaeger_error(status_of(error), str(error)),
        notes=JAEGER_NOTES,
    )


def jaeger_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    def services(request: Request) -> Any:
        return storage.catalog.services()

    def service_operations(request: Request) -> Any:
        ops = storage.catalog.operations(request.path_params["service"])
        return list(dict.fromkeys(op.name for op in ops))

    def operations(request: Request) -> Any:
        service = request.query_params.get("service", "")
        if not service:
            raise ParamError("parameter service is required")
        wanted = request.query_params.get("spanKind", "").strip().lower()
        if wanted and wanted not in KINDS:
            raise ParamError(f"parameter spanKind must be one of {', '.join(KINDS)}")
        seen: dict[tuple[str, str], None] = {}
        for op in storage.catalog.operations(service):
            if not wanted or kind_name(op.kind) == wanted:
                seen[(op.name, kind_name(op.kind))] = None
        return [{"name": name, "spanKind": kind} for name, kind in seen]

    def get_trace(request: Request) -> Any:
        wanted = trace_id(request.path_params["trace_id"])
        spans = trace_queries.get_trace(storage.traces, wanted)
        if not spans:
            return jaeger_error(404, "trace not found")
        return [trace_fragment(spans)]

    def search(request: Request) -> Any:
        parsed = parse_search(request.query_params, now_ns)
        if parsed.trace_ids:
            found, missing = trace_queries.get_traces(storage.traces, parsed.trace_ids)
            total = len(found)
            body = {
                "data": traces_fragments(found),
                "total": total,
                "limit": 0,
                "offset": 0,
                "errors": [{"code": 404, "msg": "trace not found", "traceID": t} for t in missing]
                or None,
            }
            return FastJSONResponse(body)
        found = trace_queries.find_traces(storage.traces, parsed.query)
        return traces_fragments(found)

    def dependency_links(request: Request) -> Any:
        params = request.query_params
        end_ms = optional_int(params, "endTs", now_ns() // NS_PER_MS)
        lookback_ms = optional_int(params, "lookback", DAY_MS, 1)
        end_ns = scaled(end_ms, NS_PER_MS)
        start_ns = max(0, end_ns - scaled(lookback_ms, NS_PER_MS))
        edges = dependencies(storage.metrics, start_ns, end_ns, params.get("service", ""))
        return [{"parent": e.parent, "child": e.child, "callCount": e.calls} for e in edges]

    return [
        Route("/api/services", _endpoint(services), methods=["GET"]),
        # `:path`: a service name may hold a "/" (sent as %2F, which arrives decoded).
        Route(
            "/api/services/{service:path}/operations",
            _endpoint(service_operations),
            methods=["GET"],
        ),
        Route("/api/operations", _endpoint(operations), methods=["GET"]),
        Route("/api/traces", _endpoint(search), methods=["GET"]),
        Route("/api/traces/{trace_id}", _endpoint(get_trace), methods=["GET"]),
        Route("/api/dependencies", _endpoint(dependency_links), methods=["GET"]),
    ]
