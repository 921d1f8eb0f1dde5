"""A sidecar in front of an application instrumented with the real OpenTelemetry SDK: both
make a SERVER span per request under one service name, and meshscope counts each request
once, in RED (span metrics, the RED API, the UI) and in the service graph."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web
from starlette.testclient import TestClient

from meshscope.app import App
from meshscope.instrument import Instrumentation, instrument
from meshscope.model.spans import SpanKind
from meshscope.sidecar.settings import ExportSettings
from tests.demo.mesh import in_process_meshscope
from tests.serving import serving
from tests.sidecar.harness import LoopThread, running_sidecars, sidecar, start_app
from tests.ui.browser import ARGS, CHROMIUM

REQUESTS = 23
FAILING = 5  # of them answered 500 by the application
OPERATION = "GET /orders/{order_id}"  # the application's own name for its route


def sdk_app(obs: Instrumentation) -> web.Application:
    """An application that traces itself with the OpenTelemetry SDK: a SERVER span per
    request, continuing the W3C context the request carries (as its HTTP instrumentations
    do), named after its route template."""
    from opentelemetry.trace import SpanKind as OtelKind
    from opentelemetry.trace import Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()

    async def order(request: web.Request) -> web.Response:
        context = propagator.extract(dict(request.headers))
        with obs.tracer.start_as_current_span(OPERATION, context, kind=OtelKind.SERVER) as span:
            failed = int(request.match_info["order_id"]) < FAILING
            span.set_attribute("http.response.status_code", 500 if failed else 200)
            if failed:
                span.set_status(Status(StatusCode.ERROR))
            trace_id = format(span.get_span_context().trace_id, "032x")
            return web.json_response({"trace_id": trace_id}, status=500 if failed else 200)

    app = web.Application()
    app.router.add_get("/orders/{order_id}", order)
    return app


@dataclass
class Sent:
    app: App
    trace_ids: list[str]


def _complete(app: App, trace_ids: list[str], spans: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if all(len(app.storage.traces.get_trace(t)) >= spans for t in trace_ids):
                time.sleep(1.5)  # the app flushes derived metrics every 0.5 s
                return
        except RuntimeError:  # the writer thread changed the memory store under us
            pass
        time.sleep(0.1)
    raise AssertionError("not every trace arrived complete")


@pytest.fixture(scope="module")
def sent() -> Iterator[Sent]:
    loop = LoopThread()
    try:
        with in_process_meshscope() as (app, endpoint):
            obs = instrument("api", endpoint, set_global=False, stream=io.StringIO(),
                             export_delay_ms=100)  # fmt: skip
            runner, upstream = loop.run(start_app(sdk_app(obs)))
            export = ExportSettings(endpoint=endpoint, flush_interval_s=0.05)
            try:
                with running_sidecars(loop, [sidecar("api", upstream)], export) as api:
                    routes = {"api": f"http://127.0.0.1:{api.ports['api/inbound']}"}
                    web_sidecar = sidecar("web", "http://127.0.0.1:9", routes)
                    with running_sidecars(loop, [web_sidecar], export) as caller:
                        egress = f"http://127.0.0.1:{caller.ports['web/egress']}"
                        # web's application calls api through its egress, for each order:
                        trace_ids = [
                            httpx.get(f"{egress}/api/orders/{n}").json()["trace_id"]
                            for n in range(REQUESTS)
                        ]
                        obs.flush()
                        # web's CLIENT span, api's sidecar SERVER span, api's SDK SERVER span
                        _complete(app, trace_ids, 3)
                        yield Sent(app, trace_ids)
            finally:
                obs.shutdown()
                loop.run(runner.cleanup())
    finally:
        loop.close()


def test_both_server_spans_are_stored_and_linked(sent: Sent) -> None:
    spans = sent.app.storage.traces.get_trace(sent.trace_ids[-1])
    (proxy,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name != OPERATION]
    (own,) = [s for s in spans if s.name == OPERATION]
    assert own.kind is SpanKind.SERVER and own.service == proxy.service == "api"
    assert own.parent_span_id == proxy.span_id
    assert proxy.attributes["meshscope.sidecar"] is True
    assert own.trace_state == f"meshscope={proxy.span_id}"  # the SDK copied the entry


def _red(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/meshscope/red", params={"service": "api", **params})
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_red_counts_each_request_once(sent: Sent) -> None:
    client = TestClient(sent.app.ui)
    (api,) = _red(client)
    assert (api["calls"], api["errors"]) == (REQUESTS, FAILING)
    operations = {o["operation"]: o["calls"] for o in _red(client, groupBy="operation")}
    assert operations == {"GET /orders/{id}": REQUESTS}  # the sidecar's span names it
    internal = {o["operation"]: o["calls"] for o in
                _red(client, groupBy="operation", spanKind="internal")}  # fmt: skip
    assert internal == {OPERATION: REQUESTS}  # the application's span, by its own name


def test_the_graph_has_one_edge_counted_once(sent: Sent) -> None:
    client = TestClient(sent.app.ui)
    graph = client.get("/api/meshscope/graph").json()["data"]
    edges = {(e["source"], e["target"]): (e["calls"], e["errors"]) for e in graph["edges"]}
    assert edges == {("web", "api"): (REQUESTS, FAILING)}  # and no api -> api


def test_the_ui_shows_each_request_once(sent: Sent) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with serving(sent.app.ui) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/#/service/api?range=15m")
            page.wait_for_selector('body[data-ready="service"]')
            calls = page.locator('[data-kpi="calls"] .kpi-value')
            sync_api.expect(calls).to_have_text(str(REQUESTS))
            page.goto(f"{url}/#/services?range=15m")
            page.wait_for_selector('body[data-ready="services"]')
            api = page.locator('tr[data-service="api"] [data-col="errorRatio"]')
            sync_api.expect(api).to_contain_text(f"{100 * FAILING / REQUESTS:.1f}%")
        finally:
            browser.close()
