"""Request latency per API: `meshscope_http_request_duration_seconds{handler, method, code}`.

A plain ASGI middleware (no body buffering, so streaming answers stay streaming) times every
HTTP request of the app it wraps. `handler` is the matched route's path template
(`/api/traces/{trace_id}`, not the id), so the series count stays bounded; requests matching
no route are `other`. One `HttpMetrics` can time several apps (the UI, OTLP/HTTP and Zipkin
listeners); `metrics_route(..., http=...)` exposes it on `/metrics`.
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "other"


class HttpMetrics:
    def __init__(self) -> None:
        # Not registered anywhere yet: `metrics_route` registers it in its own registry.
        self.duration = Histogram(
            "meshscope_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template, method and status code.",
            ["handler", "method", "code"],
            registry=None,
        )

    def middleware(self) -> Middleware:
        """For `Starlette(middleware=[http_metrics.middleware()])`."""
        return Middleware(RequestTimer, metrics=self)

    def observe(self, handler: str, method: str, code: int, seconds: float) -> None:
        self.duration.labels(handler, method, str(code)).observe(seconds)


class RequestTimer:
    """ASGI middleware: observes each HTTP request's duration once it is answered."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, Starlette answers 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.observe(handler, method, status, time.perf_counter() - started)
