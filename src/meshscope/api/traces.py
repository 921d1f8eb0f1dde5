"""The trace read routes of the UI app: the Jaeger query API plus span/log counts.

`trace_routes` is what app.py wires; the Jaeger routes themselves live in api/jaeger.py.
"""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.api.jaeger import NowNs, jaeger_routes
from meshscope.store.base import Storage


def trace_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    async def stats(request: Request) -> Response:
        spans = await run_in_threadpool(storage.traces.span_counts)
        logs = await run_in_threadpool(storage.logs.log_counts)
        return JSONResponse({"spans": spans, "logs": logs})

    return [
        *jaeger_routes(storage, now_ns),
        Route("/api/meshscope/stats", stats, methods=["GET"]),
    ]
