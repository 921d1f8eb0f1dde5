"""The scraper against real HTTP targets on 127.0.0.1 (uvicorn + prometheus_client), stored
through the real pipeline into MemoryStorage, and read back (also with PromQL)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshscope.app import build
from meshscope.config import Config, StorageConfig
from meshscope.ingest.scrape import Scraper, TargetHealth
from meshscope.ingest.scrape_config import ScrapeConfig, parse_scrape_config
from meshscope.model.metrics import Histogram as ModelHistogram
from meshscope.model.metrics import MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import Vector
from meshscope.store.base import Series
from meshscope.tenancy.config import TenancyConfig
from meshscope.tenancy.context import as_tenants
from tests.ingest.asgi_server import LockedPipelineSink, serving


class Targets:
    """One server, several exposition endpoints; remembers the headers it was sent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "app_requests", "Requests.", ["code", "job"], registry=self.registry
        )
        self.requests.labels("200", "mine").inc(41)
        self.requests.labels("500", "mine").inc(1)
        self.queue = Gauge("app_queue_depth", "Queue depth.", ["queue"], registry=self.registry)
        self.queue.labels("a").set(3)
        self.queue.labels("b").set(-2.5)
        latency = Histogram(
            "app_latency_seconds", "Latency.", buckets=(0.1, 0.5, 2), registry=self.registry
        )
        for value in (0.05, 0.07, 0.3, 1.0, 9.0):
            latency.observe(value)
        size = Summary("app_payload_bytes", "Payload size.", registry=self.registry)
        size.observe(100)
        size.observe(300)
        self.headers: list[dict[str, str]] = []

    def app(self) -> Starlette:
        async def text(request: Request) -> Response:
            self.headers.append(dict(request.headers))
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        async def openmetrics(request: Request) -> Response:
            self.headers.append(dict(request.headers))
            body = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return Response(body, headers={"Content-Type": OPENMETRICS_TYPE})

        async def hang(request: Request) -> Response:
            await asyncio.sleep(30)
            return PlainTextResponse("late")

        async def error(request: Request) -> Response:
            return PlainTextResponse("boom", 500)

        async def garbage(request: Request) -> Response:
            return PlainTextResponse("this is { not an exposition\n")

        async def untyped(request: Request) -> Response:
            body = '# HELP legacy_thing A thing.\nlegacy_thing{a="1"} 7 1700000000123\n'
            return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

        return Starlette(
            routes=[
                Route("/metrics", text),
                Route("/om", openmetrics),
                Route("/hang", hang),
                Route("/error", error),
                Route("/garbage", garbage),
                Route("/untyped", untyped),
            ]
        )


@pytest.fixture
def targets() -> Targets:
    return Targets()


@pytest.fixture
def host(targets: Targets) -> Iterator[str]:
    with serving(targets.app()) as base:
        yield base.removeprefix("http://")


def config(host: str, **paths: str) -> ScrapeConfig:
    return parse_scrape_config(
        {
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": path,
                    "scrape_interval": "500ms",
                    "scrape_timeout": "300ms",
                    "static_configs": [{"targets": [host], "labels": {"env": "test"}}],
                }
                for job, path in paths.items()
            ]
        }
    )


def scrape_all(scraper: Scraper) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as client:
            for health in scraper.targets:
                await scraper.scrape(health, client)

    asyncio.run(go())


def only(series: list[Series], **labels: str) -> MetricPoint:
    found = [s for s in series if all(dict(s.labels).get(k) == v for k, v in labels.items())]
    assert len(found) == 1, [s.labels for s in series]
    (point,) = found[0].samples
    return point


def health(scraper: Scraper, job: str) -> TargetHealth:
    return next(h for h in scraper.targets if h.target.job == job)


@pytest.mark.parametrize("path", ["/metrics", "/om"])
def test_text_and_openmetrics_targets_are_stored_exactly(
    host: str, targets: Targets, path: str
) -> None:
    sink = LockedPipelineSink()
    scraper = Scraper(config(host, app=path), sink)
    before = time.time_ns()
    scrape_all(scraper)
    after = time.time_ns()
    ids = {"job": "app", "instance": host, "env": "test"}

    requests = only(sink.series("app_requests_total"), code="200", **ids)
    assert (requests.type, requests.value, requests.help) == (MetricType.COUNTER, 41.0, "Requests.")
    assert before - 1_000_000 <= requests.time_ns <= after
    assert requests.time_ns % 1_000_000 == 0
    # honor_labels false: the exposed `job` label is kept as `exported_job`
    assert dict(requests.labels)["exported_job"] == "mine"
    assert only(sink.series("app_queue_depth"), queue="b", **ids).value == -2.5

    latency = only(sink.series("app_latency_seconds"), **ids)
    assert latency.type is MetricType.HISTOGRAM
    assert latency.histogram == ModelHistogram((0.1, 0.5, 2.0), (2, 1, 1, 1), 10.42, 5)
    assert sink.series("app_latency_seconds_bucket") == []

    quantiles = sink.series("app_payload_bytes")
    assert quantiles == []  # prometheus_client summaries expose no quantiles
    assert only(sink.series("app_payload_bytes_sum"), **ids).value == 400.0
    assert only(sink.series("app_payload_bytes_count"), **ids).value == 2.0
    created = only(sink.series("app_requests_created"), code="200", **ids)
    assert created.type is MetricType.GAUGE and created.value > 1e9

    up = only(sink.series("up"), **ids)
    assert (up.value, up.time_ns) == (1.0, requests.time_ns)
    # 2 counters x (total, created) + 2 gauges + 3+1 buckets, sum, count, created
    # + summary sum, count, created
    assert only(sink.series("scrape_samples_scraped"), **ids).value == 16.0
    assert 0 < only(sink.series("scrape_duration_seconds"), **ids).value < 5
    assert targets.headers[0]["accept"].startswith("application/openmetrics-text;version=1.0.0")
    assert targets.headers[0]["x-prometheus-scrape-timeout-seconds"] == "0.3"


def test_histograms_answer_promql_as_classic_buckets(host: str) -> None:
    sink = LockedPipelineSink()
    scrape_all(Scraper(config(host, app="/metrics"), sink))
    (up,) = sink.series("up")
    engine = Engine(MetricStoreQueryable(sink.storage.metrics))
    at_ms = up.samples[0].time_ns // 1_000_000
    value = engine.instant('app_latency_seconds_bucket{le="0.5"}', at_ms)
    assert isinstance(value, Vector)
    assert [s.v for s in value.samples] == [3.0]
    median = engine.instant("histogram_quantile(0.5, app_latency_seconds_bucket)", at_ms)
    assert isinstance(median, Vector)
    # rank 2.5 of 5 falls in (0.1, 0.5], cumulative 2 -> 3: 0.1 + 0.4 * (2.5 - 2) / (3 - 2)
    assert [s.v for s in median.samples] == [pytest.approx(0.3)]


def test_failing_targets_are_down_with_nothing_else(host: str) -> None:
    sink = LockedPipelineSink()
    scraper = Scraper(config(host, hang="/hang", error="/error", garbage="/garbage"), sink)
    started = time.monotonic()
    scrape_all(scraper)
    assert time.monotonic() - started < 5  # the hanging target was cut at its timeout
    for job in ("hang", "error", "garbage"):
        ids = {"job": job, "instance": host}
        assert only(sink.series("up"), **ids).value == 0.0
        assert only(sink.series("scrape_samples_scraped"), **ids).value == 0.0
        assert not health(scraper, job).up
    assert "timed out after 0.3 s" in health(scraper, "hang").last_error
    assert "HTTP status 500" in health(scraper, "error").last_error
    assert "invalid Prometheus text format" in health(scraper, "garbage").last_error
    names = sink.read(lambda s: [f.name for f in s.metrics.families()])
    assert sorted(names) == sorted(
        [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
        ]
    )


def test_untyped_is_a_gauge_and_exposed_timestamps_are_kept(host: str) -> None:
    sink = LockedPipelineSink()
    scrape_all(Scraper(config(host, legacy="/untyped"), sink))
    point = only(sink.series("legacy_thing"), a="1")
    assert (point.type, point.value, point.time_ns) == (
        MetricType.GAUGE,
        7.0,
        1_700_000_000_123_000_000,
    )


def test_vanished_series_and_failed_targets_get_staleness_markers(
    host: str, targets: Targets
) -> None:
    sink = LockedPipelineSink()
    scraper = Scraper(config(host, app="/metrics"), sink)
    scrape_all(scraper)
    targets.queue.remove("a")
    scrape_all(scraper)
    (series,) = [s for s in sink.series("app_queue_depth") if dict(s.labels)["queue"] == "a"]
    first, second = series.samples
    assert first.value == 3.0
    assert math.isnan(second.value)
    still = only_values(sink.series("app_queue_depth"), queue="b")
    assert still == [-2.5, -2.5]


def only_values(series: list[Series], **labels: str) -> list[float]:
    found = [s for s in series if all(dict(s.labels).get(k) == v for k, v in labels.items())]
    assert len(found) == 1
    return [p.value for p in found[0].samples]


def test_run_scrapes_on_the_interval_and_a_hanging_target_blocks_nobody(host: str) -> None:
    sink = LockedPipelineSink()
    scraper = Scraper(config(host, app="/metrics", hang="/hang"), sink)

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(scraper.run(stop))
        deadline = time.monotonic() + 10
        while health(scraper, "app").scrapes < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(go())
    app, hang = health(scraper, "app"), health(scraper, "hang")
    assert app.scrapes >= 4 and app.failures == 0
    assert hang.scrapes >= 2 and hang.failures == hang.scrapes
    ups = only_values(sink.series("up"), job="app")
    assert ups == [1.0] * len(ups) and len(ups) >= 4
    times = [
        p.time_ns for p in next(s for s in sink.series("up") if ("job", "app") in s.labels).samples
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 400_000_000, gaps  # never more often than the 500 ms interval


def test_with_tenancy_a_jobs_samples_go_to_its_tenant(host: str) -> None:
    """`tenant:` on a job: its samples land in that tenant's store, and the default tenant's
    reads do not see them."""
    scrape = parse_scrape_config(
        {"scrape_configs": [{"job_name": "app", "targets": [host], "tenant": "team-a"}]}
    )
    app = build(
        Config(
            storage=StorageConfig(kind="memory"),
            scrape=scrape,
            tenancy=TenancyConfig(enabled=True),
        )
    )
    app.start()
    try:
        scrape_all(app.scraper)
        with as_tenants("team-a"):
            assert app.storage.metrics.select("up", [], 0, 2**62)
        with as_tenants("default"):
            assert app.storage.metrics.select("up", [], 0, 2**62) == []
    finally:
        app.stop()
