"""The demo's example services: tiny aiohttp apps, each instrumented with
`meshscope.instrument` (its own spans and JSON logs with trace ids, shipped over OTLP), each
with a Prometheus `/metrics`, each calling its dependencies through its sidecar's egress.

    web    GET /checkout -> api POST /orders        GET /browse -> api GET /catalog
    api    POST /orders  -> cache GET /items/{id}, db POST /query, then worker POST /jobs
           GET /catalog  -> cache GET /items/all
    db     POST /query   (a few ms of "query")
    cache  GET /items/{id}
    worker POST /jobs    (202 at once; the job runs in the background, traced and logged)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from meshscope.demo.faults import Faults
from meshscope.demo.topology import DemoSettings
from meshscope.instrument import Instrumentation

PROPAGATOR = TraceContextTextMapPropagator()
Work = Callable[[web.Request], Awaitable[int]]


class FaultSwitch:
    """The current faults, shared by every service of the process; switched at run time."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random()


class DemoService:
    def __init__(
        self,
        name: str,
        settings: DemoSettings,
        switch: FaultSwitch,
        obs: Instrumentation,
        session: aiohttp.ClientSession,
    ) -> None:
        self.name = name
        self.switch = switch
        self.obs = obs
        self.session = session
        self.egress = settings.url(settings.egress_port(name))
        self.background: set[asyncio.Task[None]] = set()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "demo_requests", "Requests handled.", ["route", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "demo_request_duration_seconds", "Handling time.", ["route"], registry=self.registry
        )

    async def call(self, target: str, method: str, path: str) -> int:
        """Call `target` through the sidecar's egress, propagating the current context."""
        headers: dict[str, str] = {}
        PROPAGATOR.inject(headers)
        try:
            async with self.session.request(
                method, f"{self.egress}/{target}{path}", headers=headers
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self.obs.log.error("call failed", target=target, error=type(error).__name__)
            return 599

    def route(self, work: Work) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            started = time.perf_counter()
            context = PROPAGATOR.extract(dict(request.headers))
            name = f"{self.name} {request.method} {request.match_info.route.resource.canonical}"  # type: ignore[union-attr]
            with self.obs.tracer.start_as_current_span(name, context, SpanKind.INTERNAL) as span:
                faults = self.switch.faults
                delay = faults.delay_s(self.name, self.switch.rng)
                if delay:
                    span.set_attribute("demo.injected_delay_ms", delay * 1000)
                    await asyncio.sleep(delay)
                if faults.fails(self.name, self.switch.rng):
                    status = 500
                    self.obs.log.error("injected failure", path=request.path)
                else:
                    status = await work(request)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                self.obs.log.info(
                    "handled", method=request.method, path=request.path, status=status
                )
            route = request.match_info.route.resource.canonical  # type: ignore[union-attr]
            self.requests.labels(route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)
            return web.json_response({"service": self.name, "status": status}, status=status)

        return handler

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def spawn(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.create_task(job())  # runs in a copy of the current (traced) context
        self.background.add(task)
        task.add_done_callback(self.background.discard)


def _worst(*statuses: int) -> int:
    failed = [s for s in statuses if s >= 500]
    return 500 if failed else 200


def build_app(service: DemoService) -> web.Application:
    """The routes of one demo service, by name."""
    app = web.Application()
    route = service.route
    app.router.add_get("/metrics", service.metrics)
    name = service.name

    if name == "web":

        async def checkout(request: web.Request) -> int:
            return _worst(
                await service.call("api", "POST", f"/orders?item={request.query.get('item', '1')}")
            )

        async def browse(request: web.Request) -> int:
            return _worst(await service.call("api", "GET", "/catalog"))

        app.router.add_get("/checkout", route(checkout))
        app.router.add_get("/browse", route(browse))
    elif name == "api":

        async def order(request: web.Request) -> int:
            item = request.query.get("item", "1")
            cached = await service.call("cache", "GET", f"/items/{item}")
            stored = await service.call("db", "POST", "/query")
            if max(cached, stored) >= 500:
                return 500
            queued = await service.call("worker", "POST", "/jobs")
            return 201 if queued < 500 else 500

        async def catalog(request: web.Request) -> int:
            return _worst(await service.call("cache", "GET", "/items/all"))

        app.router.add_post("/orders", route(order))
        app.router.add_get("/catalog", route(catalog))
    elif name == "db":

        async def query(request: web.Request) -> int:
            await asyncio.sleep(service.switch.rng.uniform(0.002, 0.008))
            return 200

        app.router.add_post("/query", route(query))
    elif name == "cache":

        async def item(request: web.Request) -> int:
            return 200

        app.router.add_get("/items/{item}", route(item))
    elif name == "worker":

        async def job(request: web.Request) -> int:
            async def process() -> None:
                with service.obs.tracer.start_as_current_span("process job"):
                    await asyncio.sleep(service.switch.rng.uniform(0.005, 0.02))
                    service.obs.log.info("job done")

            service.spawn(process)
            return 202

        app.router.add_post("/jobs", route(job))
    return app
