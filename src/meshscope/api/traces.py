"""The minimal read path: a trace by id (Jaeger model), services, and counts per service.

The full Jaeger search API builds on these routes; they are not duplicated elsewhere.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.api.envelope import jaeger_error, jaeger_ok
from meshscope.api.jaeger_model import trace_json
from meshscope.model.ids import TRACE_ID_HEX_LEN
from meshscope.query import traces as trace_queries
from meshscope.store.base import Storage


def normalize_trace_id(raw: str) -> str | None:
    """Lowercase hex, left-padded to 32 (64-bit Zipkin ids); None when not hex."""
    value = raw.strip().lower()
    if (
        not value
        or len(value) > TRACE_ID_HEX_LEN
        or any(c not in "0123456789abcdef" for c in value)
    ):
        return None
    return value.rjust(TRACE_ID_HEX_LEN, "0")


def trace_routes(storage: Storage) -> list[Route]:
    async def get_trace(request: Request) -> Response:
        trace_id = normalize_trace_id(request.path_params["trace_id"])
        if trace_id is None:
            return jaeger_error(400, "trace id must be 1 to 32 hex characters")
        spans = await run_in_threadpool(trace_queries.get_trace, storage.traces, trace_id)
        if not spans:
            return jaeger_error(404, "trace not found")
        return jaeger_ok([trace_json(spans)])

    async def services(request: Request) -> Response:
        return jaeger_ok(await run_in_threadpool(storage.catalog.services))

    async def operations(request: Request) -> Response:
        ops = await run_in_threadpool(storage.catalog.operations, request.path_params["service"])
        return jaeger_ok(list(dict.fromkeys(op.name for op in ops)))

    async def stats(request: Request) -> Response:
        spans = await run_in_threadpool(storage.traces.span_counts)
        logs = await run_in_threadpool(storage.logs.log_counts)
        return JSONResponse({"spans": spans, "logs": logs})

    return [
        Route("/api/traces/{trace_id}", get_trace, methods=["GET"]),
        Route("/api/services", services, methods=["GET"]),
        Route("/api/services/{service}/operations", operations, methods=["GET"]),
        Route("/api/meshscope/stats", stats, methods=["GET"]),
    ]
