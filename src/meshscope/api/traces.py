"""The trace read routes of the UI app: the Jaeger query API plus span/log counts.

`trace_routes` is what app.py wires; the Jaeger routes themselves live in api/jaeger.py.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.api.handlers import status_of, threaded
from meshscope.api.jaeger import NowNs, jaeger_routes
from meshscope.store.base import Storage


def trace_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    def counts(request: Request) -> dict[str, Any]:
        return {"spans": storage.traces.span_counts(), "logs": storage.logs.log_counts()}

    stats = threaded(
        counts,
        JSONResponse,
        lambda error: JSONResponse({"error": str(error)}, status_code=status_of(error)),
    )

    return [
        *jaeger_routes(storage, now_ns),
        Route("/api/meshscope/stats", stats, methods=["GET"]),
    ]
