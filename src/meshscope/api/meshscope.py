"""meshscope's own read API (`/api/meshscope/...`): RED, the service graph with per-edge
numbers, and trace statistics. Routes only.

Envelope: `{"data": ...}` on success, `{"error": "message"}` with a 4xx otherwise. Times are
milliseconds since the epoch (`start`, `end`; default: the last hour up to now).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.api.envelope import FastJSONResponse
from meshscope.api.handlers import WARNINGS, Handler, status_of, threaded
from meshscope.api.params import NS_PER_MS, ParamError, optional_int, scaled, trace_id
from meshscope.model.spans import SpanKind
from meshscope.query import traces as trace_queries
from meshscope.query.dependencies import dependencies
from meshscope.query.red import red
from meshscope.query.red_range import (
    MAX_STEPS,
    RedSeries,
    boundaries,
    effective_steps,
    red_over_time,
)
from meshscope.store.base import Storage

HOUR_MS = 3600 * 1000
KINDS: dict[str, SpanKind | None] = {k.name.lower(): k for k in SpanKind} | {"all": None}
NowNs = Callable[[], int]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _endpoint(work: Callable[[Request], Any]) -> Handler:
    return threaded(
        work,
        lambda data: FastJSONResponse({"data": data}),
        lambda e: _error(status_of(e), str(e)),
        notes=WARNINGS,
    )


def time_range(request: Request, now_ns: NowNs) -> tuple[int, int]:
    """(start_ns, end_ns) from `start`/`end` in ms; end defaults to now, start to end - 1 h."""
    params = request.query_params
    end_ms = optional_int(params, "end", now_ns() // NS_PER_MS, 1)
    start_ms = optional_int(params, "start", max(0, end_ms - HOUR_MS), 0)
    if start_ms >= end_ms:
        raise ParamError("parameter start must be before end")
    return scaled(start_ms, NS_PER_MS), scaled(end_ms, NS_PER_MS)


def _grouping(request: Request) -> tuple[str, SpanKind | None]:
    """`groupBy` (service|operation) and `spanKind` (default server; `all` for every kind)."""
    group = request.query_params.get("groupBy", "service")
    if group not in ("service", "operation"):
        raise ParamError("parameter groupBy must be service or operation")
    kind_text = request.query_params.get("spanKind", "server").lower()
    if kind_text not in KINDS:
        raise ParamError(f"parameter spanKind must be one of {', '.join(KINDS)}")
    return group, KINDS[kind_text]


def series_error(series: RedSeries) -> float | None:
    """The bound on the relative error of a chart's percentiles: the largest of its points';
    None when some point's came from the explicit buckets (or none has percentiles)."""
    errors = [p.percentile_error for p in series.points if p.p50_ms is not None]
    if not errors or any(e is None for e in errors):
        return None
    return max(e for e in errors if e is not None)


def meshscope_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    def red_metrics(request: Request) -> Any:
        start_ns, end_ns = time_range(request, now_ns)
        group, kind = _grouping(request)
        rows = red(
            storage.metrics,
            start_ns,
            end_ns,
            service=request.query_params.get("service", ""),
            by_operation=group == "operation",
            kind=kind,
        )
        return [
            {
                "service": r.service,
                **({"operation": r.operation} if group == "operation" else {}),
                "calls": r.calls,
                "errors": r.errors,
                "rate": r.rate,
                "errorRatio": r.error_ratio,
                "p50Ms": r.p50_ms,
                "p95Ms": r.p95_ms,
                "p99Ms": r.p99_ms,
                "percentileError": r.percentile_error,
            }
            for r in rows
        ]

    def red_range(request: Request) -> Any:
        start_ns, end_ns = time_range(request, now_ns)
        group, kind = _grouping(request)
        requested = optional_int(request.query_params, "steps", 60, 1, MAX_STEPS)
        steps = effective_steps(start_ns, end_ns, requested)
        found = red_over_time(
            storage.metrics,
            start_ns,
            end_ns,
            steps,
            service=request.query_params.get("service", ""),
            by_operation=group == "operation",
            kind=kind,
        )
        return {
            "times": [t // NS_PER_MS for t in boundaries(start_ns, end_ns, steps)[1:]],
            "series": [
                {
                    "service": s.service,
                    **({"operation": s.operation} if group == "operation" else {}),
                    "rate": [p.rate for p in s.points],
                    "errorRatio": [p.error_ratio for p in s.points],
                    "p50Ms": [p.p50_ms for p in s.points],
                    "p95Ms": [p.p95_ms for p in s.points],
                    "p99Ms": [p.p99_ms for p in s.points],
                    "percentileError": series_error(s),
                }
                for s in found
            ],
        }

    def graph(request: Request) -> Any:
        start_ns, end_ns = time_range(request, now_ns)
        edges = dependencies(storage.metrics, start_ns, end_ns)
        nodes = dict.fromkeys(storage.catalog.services())
        for edge in edges:
            nodes.setdefault(edge.parent)
            nodes.setdefault(edge.child)
        return {
            "nodes": list(nodes),
            "edges": [
                {
                    "source": e.parent,
                    "target": e.child,
                    "calls": e.calls,
                    "errors": e.errors,
                    "rate": e.rate,
                    "errorRatio": e.error_ratio,
                    "p99Ms": e.p99_ms,
                    "p99Error": e.p99_error,
                    "connectionType": e.connection_type,
                }
                for e in edges
            ],
        }

    def trace_stats(request: Request) -> Any:
        wanted = trace_id(request.path_params["trace_id"])
        spans = trace_queries.get_trace(storage.traces, wanted)
        if not spans:
            return _error(404, f"trace {wanted} not found")
        stats = trace_queries.trace_stats(spans)
        return {
            "traceID": stats.trace_id,
            "startTime": stats.start_ns // 1000,
            "duration": stats.duration_ns // 1000,
            "spanCount": stats.spans,
            "errorCount": stats.errors,
            "rootService": stats.root_service,
            "rootOperation": stats.root_operation,
            "services": [
                {"service": s.service, "spanCount": s.spans, "errorCount": s.errors}
                for s in stats.services
            ],
            "criticalPath": [
                {"spanID": c.span_id, "start": c.start_ns // 1000, "end": c.end_ns // 1000}
                for c in stats.critical_path
            ],
        }

    return [
        Route("/api/meshscope/red", _endpoint(red_metrics), methods=["GET"]),
        Route("/api/meshscope/red/range", _endpoint(red_range), methods=["GET"]),
        Route("/api/meshscope/graph", _endpoint(graph), methods=["GET"]),
        Route("/api/meshscope/traces/{trace_id}/stats", _endpoint(trace_stats), methods=["GET"]),
    ]
