"""`/metrics` on a real server: request latencies per route, the DuckDB file size, and the
scraper's targets (the scraper scrapes this very server); the trace locators' entries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from meshscope.api.http_metrics import HttpMetrics
from meshscope.api.selfmetrics import metrics_route
from meshscope.app import build
from meshscope.clock import SystemClock
from meshscope.config import load_config
from meshscope.ingest.scrape import Scraper
from meshscope.ingest.scrape_config import parse_scrape_config
from meshscope.model.batch import Batch
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter
from meshscope.store.base import Storage
from meshscope.store.factory import open_storage
from meshscope.tenancy.context import as_tenants
from tests.ingest.asgi_server import LockedPipelineSink, serving


async def item(request: Request) -> Response:
    return PlainTextResponse(request.path_params["item_id"])


async def boom(request: Request) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage("duckdb", str(tmp_path / "store.duckdb"))
    store.metrics.write_points([MetricPoint("m", (("a", "b"),), 10**18, value=1.0)])
    yield store
    store.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_metrics_expose_latency_store_size_and_scrape_state(
    storage: Storage, tmp_path: Path
) -> None:
    http = HttpMetrics()
    path = str(tmp_path / "store.duckdb")

    def app(scraper: Scraper) -> Starlette:
        writer = BatchWriter(Pipeline(storage, SystemClock()))
        route = metrics_route(
            lambda: [writer], http=http, scraper=scraper, store_paths=lambda: [path]
        )
        routes = [Route("/api/items/{item_id}", item), Route("/boom", boom), route]
        return Starlette(routes=routes, middleware=[http.middleware()])

    # The scraper's target is this server itself: build the app with a placeholder first.
    sink = LockedPipelineSink()
    placeholder = Scraper(parse_scrape_config(None), sink)
    with serving(app(placeholder)) as base:
        host = base.removeprefix("http://")
        scraper = Scraper(parse_scrape_config([{"job_name": "self", "targets": [host]}]), sink)
        placeholder.targets = scraper.targets  # the app reports the real scraper's targets
        with httpx.Client(base_url=base) as client:
            assert client.get("/api/items/1").text == "1"
            assert client.get("/api/items/2").status_code == 200
            assert client.get("/nope").status_code == 404
            assert client.get("/boom").status_code == 500

            async def scrape() -> None:
                async with httpx.AsyncClient() as scrape_client:
                    await scraper.scrape(scraper.targets[0], scrape_client)

            asyncio.run(scrape())
            text = client.get("/metrics").text

    got = samples(text)

    def count(handler: str, code: str) -> float:
        labels = frozenset({("handler", handler), ("method", "GET"), ("code", code)})
        return got[("meshscope_http_request_duration_seconds_count", labels)]

    assert count("/api/items/{item_id}", "200") == 2.0
    assert count("other", "404") == 1.0
    assert count("/boom", "500") == 1.0
    assert count("/metrics", "200") == 1.0  # the scraper's own request
    on_disk = sum(os.stat(p).st_size for p in (path, path + ".wal") if os.path.exists(p))
    assert on_disk > 0
    assert got[("meshscope_store_size_bytes", frozenset())] == on_disk
    assert got[("meshscope_store_backlog_rows", frozenset())] == 0.0
    assert got[("meshscope_store_backlog_dropped_rows_total", frozenset())] == 0.0
    target = frozenset({("job", "self"), ("instance", host)})
    assert got[("meshscope_scrape_target_up", target)] == 1.0
    assert got[("meshscope_scrapes_total", target)] == 1.0
    assert got[("meshscope_scrape_failures_total", target)] == 0.0
    assert got[("meshscope_scrape_last_samples", target)] > 10
    # and what the scraper stored is meshscope's own exposition, exactly as served then
    (up,) = sink.series("up")
    assert up.samples[0].value == 1.0
    (stored,) = sink.series("meshscope_store_size_bytes")
    assert stored.samples[0].value == on_disk


def test_metrics_count_the_trace_locator_entries_of_every_tenants_store(tmp_path: Path) -> None:
    """`meshscope_store_trace_locator_entries`: the DuckDB stores' trace locators (ADR 0019),
    summed over the tenants' stores: one entry per trace and write; the bytes they hold in
    memory (24 an entry below the spill size); the metric sample caches' bytes; and the memory
    DuckDB accounts for, `meshscope_store_duckdb_memory_bytes`."""
    env = {
        "MESHSCOPE_STORAGE__PATH": str(tmp_path / "m.duckdb"),
        "MESHSCOPE_TENANCY__ENABLED": "true",
        "MESHSCOPE_PIPELINE__INGEST_WORKERS": "0",
    }
    app = build(load_config(env=env))
    app.start()
    try:
        for tenant, traces in (("a", 3), ("b", 2)):
            spans = [
                Span(f"{t + 1:032x}", f"{i + 1:016x}", "op", "svc", 10**18, 10**18 + 5)
                for t in range(traces)
                for i in range(2)
            ]
            points = [MetricPoint("queue_depth", (("q", tenant),), 10**18, value=1.0)]
            with as_tenants(tenant):
                asyncio.run(app.sink.submit(Batch(spans=spans, metrics=points)))
        with TestClient(app.ui) as client:
            got = samples(client.get("/metrics").text)
        assert got[("meshscope_store_trace_locator_entries", frozenset())] == 3 + 2
        assert got[("meshscope_store_trace_locator_memory_bytes", frozenset())] == 24 * (3 + 2)
        assert got[("meshscope_store_sample_cache_bytes", frozenset())] > 0  # both tenants' points
        # Both tenants' databases hold blocks (their tables), and DuckDB accounts for them.
        assert got[("meshscope_store_duckdb_memory_bytes", frozenset())] > 0
    finally:
        app.stop()
