"""Our PromQL engine and a real Prometheus agree on the same samples.

Deterministic counters (with resets and gaps), gauges and classic histograms are backfilled
into Prometheus with promtool and written into each storage backend (memory, a DuckDB file, a
real ClickHouse server: tests/conformance/backends.py); every query below is run as a range
query against Prometheus and against our engine over each backend, and the results must
match: same series, same timestamps, values within 1e-9 relative (NaN equals NaN).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.prometheus import prometheus_routes
from meshscope.api.prometheus_json import matrix_json
from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.store.memory import MemoryStorage
from tests.conformance import prometheus_server
from tests.conformance.backends import BACKENDS, Backend

pytestmark = pytest.mark.slow

STEP_MS = 15_000
SAMPLES = 480  # 2 hours
BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

QUERIES = [
    "agree_requests_total",
    "rate(agree_requests_total[1m])",
    "rate(agree_requests_total[5m])",
    "irate(agree_requests_total[2m])",
    "increase(agree_requests_total[10m])",
    "resets(agree_requests_total[30m])",
    "sum by (service) (rate(agree_requests_total[5m]))",
    "sum without (code) (increase(agree_requests_total[3m]))",
    'sum by (service) (rate(agree_requests_total{code=~"5.."}[5m]))'
    " / sum by (service) (rate(agree_requests_total[5m]))",
    "agree_requests_total / on(service) group_left sum by (service) (agree_requests_total)",
    "topk(3, rate(agree_requests_total[5m]))",
    "bottomk(2, agree_temperature)",
    "agree_temperature",
    "agree_temperature offset 10m",
    "delta(agree_temperature[10m])",
    "idelta(agree_temperature[5m])",
    "deriv(agree_temperature[10m])",
    "predict_linear(agree_temperature[10m], 600)",
    "avg_over_time(agree_temperature[10m])",
    "min_over_time(agree_temperature[7m])",
    "max_over_time(agree_temperature[7m])",
    "sum_over_time(agree_temperature[4m])",
    "count_over_time(agree_temperature[4m])",
    "last_over_time(agree_temperature[2m])",
    "quantile_over_time(0.9, agree_temperature[10m])",
    "stddev_over_time(agree_temperature[10m])",
    "stdvar_over_time(agree_temperature[10m])",
    "present_over_time(agree_temperature[1m])",
    "changes(agree_temperature[15m])",
    'absent_over_time(agree_temperature{room="gap"}[1m])',
    'absent(agree_nothing{job="x"})',
    "quantile by (floor) (0.75, agree_temperature)",
    "stddev(agree_temperature)",
    "avg by (floor) (agree_temperature) - min by (floor) (agree_temperature)",
    'count_values("v", floor(agree_temperature))',
    "agree_temperature > 20",
    "agree_temperature > bool 20",
    "agree_temperature and on(room) agree_temperature > 22",
    'agree_temperature{floor="1"} or agree_temperature',
    "agree_temperature unless agree_temperature < 18",
    "clamp(agree_temperature, 15, 25) + abs(agree_temperature - 20) * 2",
    "round(agree_temperature, 0.5) % 3 ^ 2",
    "ln(agree_temperature) + sqrt(agree_temperature) - exp(agree_temperature / 10)",
    'label_replace(agree_temperature, "r", "$1", "room", "room-(.*)")',
    "timestamp(agree_temperature)",
    "rate(agree_requests_total[5m] @ start())",
    "agree_temperature @ start() - agree_temperature offset 1h",
    "histogram_quantile(0.99, sum by (le, service) (rate(agree_latency_seconds_bucket[5m])))",
    "histogram_quantile(0.5, rate(agree_latency_seconds_bucket[5m]))",
    "rate(agree_latency_seconds_sum[5m]) / rate(agree_latency_seconds_count[5m])",
    '{__name__=~"agree_lat.*_count"}',
    "max_over_time(rate(agree_requests_total[1m])[10m:1m])",
    "scalar(sum(agree_temperature)) * 2 + time()",
    "vector(1) + sum(agree_temperature)",
    # Date functions of values far from now: Go's calendar, truncation toward zero.
    "year(vector(-1e11)) + year(vector(1e15))",
    "month(vector(1e15)) * 100 + day_of_month(vector(-1e11))",
    "day_of_week(vector(-0.5)) + hour(vector(-3601)) * 10 + minute(vector(-3601)) * 1000",
    "day_of_year(vector(-62135596801)) + days_in_month(vector(951782400)) * 1000",
    "days_in_month(vector(-2208988800 - 86400 * 300))",
]


def generate(start_ms: int) -> list[MetricPoint]:
    rng = random.Random(20240607)
    points: list[MetricPoint] = []

    def t_ns(i: int, jitter: bool = True) -> int:
        offset = rng.randint(-2000, 2000) if jitter else 0
        return (start_ms + i * STEP_MS + offset) * 1_000_000

    for service in ("api", "web", "db"):
        for code in ("200", "404", "500", "503"):
            labels = (("code", code), ("service", service))
            value = rng.uniform(0, 50)
            for i in range(SAMPLES):
                if rng.random() < 0.03:
                    continue  # a missed scrape
                value += rng.expovariate(0.2)
                if rng.random() < 0.01:
                    value = rng.uniform(0, 5)  # a counter reset
                points.append(
                    MetricPoint(
                        "agree_requests_total", labels, t_ns(i), MetricType.COUNTER, value=value
                    )
                )
    for index, room in enumerate(("kitchen", "hall", "attic", "cellar", "gap", "room-7")):
        labels = (("floor", str(index % 2)), ("room", room))
        value = 20.0
        for i in range(SAMPLES):
            if room == "gap" and 200 <= i < 240:
                continue  # a 10-minute gap: the series goes stale after 5 minutes
            value += rng.gauss(0, 0.5)
            points.append(MetricPoint("agree_temperature", labels, t_ns(i), value=round(value, 3)))
    for service in ("api", "web", "db"):
        counts = [0] * (len(BOUNDS) + 1)
        total = 0.0
        for i in range(SAMPLES):
            for _ in range(rng.randint(0, 20)):
                latency = rng.lognormvariate(-2, 1)
                bucket = next(
                    (b for b, bound in enumerate(BOUNDS) if latency <= bound), len(BOUNDS)
                )
                counts[bucket] += 1
                total += latency
            hist = Histogram(BOUNDS, tuple(counts), total, sum(counts))
            points.append(
                MetricPoint(
                    "agree_latency_seconds",
                    (("service", service),),
                    t_ns(i, jitter=False),
                    MetricType.HISTOGRAM,
                    histogram=hist,
                )
            )
    return points


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Callable[[str, int, int, int], dict[str, Any]], list[MetricPoint], int, str]]:
    """A Prometheus holding the points; its answers are kept, each asked once per run."""
    reason = prometheus_server.available()
    if reason:
        pytest.skip(reason)
    start_ms = (int(time.time()) - 4 * 3600) // 60 * 60 * 1000
    points = generate(start_ms)
    answers: dict[tuple[str, int, int, int], dict[str, Any]] = {}
    with prometheus_server.running_prometheus(tmp_path_factory.mktemp("prom"), points) as url:

        def query_range(query: str, start: int, end: int, step: int) -> dict[str, Any]:
            key = (query, start, end, step)
            if key not in answers:
                answers[key] = prometheus_server.query_range(url, query, start, end, step)
            return answers[key]

        yield query_range, points, start_ms, url


@pytest.fixture(scope="module", params=BACKENDS, ids=str)
def engine(
    request: pytest.FixtureRequest,
    prometheus: tuple[Any, list[MetricPoint], int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    """Our engine over the same points in one backend's metric store."""
    backend: Backend = request.param
    reason = backend.available()
    if reason:
        pytest.skip(f"{backend.name}: {reason}")
    storage = backend.open(tmp_path_factory.mktemp(f"agree-{backend.name}"))
    try:
        storage.metrics.write_points(prometheus[1])
        yield Engine(MetricStoreQueryable(storage.metrics))
    finally:
        storage.close()


def _series(body: dict[str, Any]) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    out = {}
    for item in body["result"]:
        labels = tuple(sorted(item["metric"].items()))
        out[labels] = [(float(t), float(v)) for t, v in item["values"]]
    return out


def relative_error(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("window", ["aligned", "odd"])
def test_agrees_with_prometheus(
    prometheus: tuple[Callable[[str, int, int, int], dict[str, Any]], Any, int, str],
    engine: Engine,
    query: str,
    window: str,
) -> None:
    query_range, _, data_start, _ = prometheus
    if window == "aligned":
        start, end, step = data_start + 20 * 60_000, data_start + 140 * 60_000, 60_000
    else:
        start, end, step = data_start + 47 * 60_000 + 123, data_start + 130 * 60_000, 37_000
    theirs = query_range(query, start, end, step)
    assert theirs["status"] == "success", theirs
    ours = orjson.loads(matrix_json(engine.range_arrays(query, start, end, step)))
    assert engine.last_fallbacks == 0  # the vectorised evaluator ran every node
    want, got = _series(theirs["data"]), _series(ours["data"])
    assert sorted(got) == sorted(want)
    assert want or query.startswith("absent"), "the query should select something"
    for labels, points in want.items():
        assert [t for t, _ in got[labels]] == [t for t, _ in points], labels
        for (t, a), (_, b) in zip(got[labels], points, strict=True):
            assert relative_error(a, b) <= 1e-9, f"{labels} at {t}: ours {a}, Prometheus {b}"


FORMAT_QUERIES = [
    "up",
    'sum by(job)(rate(http_requests_total{job="api",code=~"5.."}[5m]))/on(job) group_left'
    " sum by(job)(rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, service) (rate(duration_seconds_bucket[5m])))",
    "-foo offset 5m @ 1700000000 + sum_over_time(bar[10m:1m]) * 2",
    "topk(3, sum without(instance)(rate(agree_requests_total[5m]))) > bool 1 or vector(0)",
    "label_replace(up, 'x', '$1', 'job', '(.*)')",
    'sum(rate(a_very_long_metric_name_for_the_width_of_a_line_total{service="checkout",'
    ' endpoint="/api/v1/orders"}[5m])) / sum(rate(another_rather_long_metric_name_total[5m]))',
]


@pytest.mark.parametrize("query", FORMAT_QUERIES)
def test_format_query_agrees_with_prometheus(
    prometheus: tuple[Any, Any, int, str], query: str
) -> None:
    """`/api/v1/format_query` (Grafana's "Format query") prints what Prometheus prints."""
    theirs = httpx.get(f"{prometheus[3]}/api/v1/format_query", params={"query": query}).json()
    app = Starlette(routes=prometheus_routes(MetricStoreQueryable(MemoryStorage().metrics)))
    with TestClient(app) as client:
        ours = client.get("/api/v1/format_query", params={"query": query}).json()
    assert theirs["status"] == "success", theirs
    assert ours == theirs


def test_format_query_refuses_what_does_not_parse() -> None:
    app = Starlette(routes=prometheus_routes(MetricStoreQueryable(MemoryStorage().metrics)))
    with TestClient(app) as client:
        answer = client.get("/api/v1/format_query", params={"query": "sum(up"})
    assert answer.status_code == 400 and answer.json()["errorType"] == "bad_data"
