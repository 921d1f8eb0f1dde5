"""The vectorised range evaluator gives what the per-step evaluator gives, on data made to
hit the edges: gaps longer than the lookback, staleness markers, counter resets, NaN and
infinite values, jittered and duplicate timestamps, histograms whose buckets come and go.
Dashboard-shaped queries must not fall back to the per-step evaluator."""

from __future__ import annotations

import math
import random

import pytest

from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import STALE_NAN, Matrix, PromQLError
from meshscope.store.memory import MemoryMetricStore
from tests.conformance.promqltest import close

S = 1000  # ms
BOUNDS = (0.1, 0.5, 1.0)

DASHBOARD = [
    "rate(req_total[5m])",
    "irate(req_total[2m])",
    "increase(req_total[10m])",
    "delta(temp[5m])",
    "idelta(temp[3m])",
    "sum by (svc) (rate(req_total[5m]))",
    "sum without (code) (increase(req_total[3m]))",
    "avg by (svc) (temp)",
    "max by (svc) (temp)",
    "min(temp)",
    'max(temp{svc="odd"} or temp)',
    "count by (svc) (req_total)",
    "group by (svc) (temp)",
    "stddev by (svc) (temp)",
    "stdvar(temp)",
    'sum by (svc) (rate(req_total{code=~"5.."}[5m])) / sum by (svc) (rate(req_total[5m]))',
    "sum by (svc) (rate(req_total[5m])) > 0.5",
    "temp > 20",
    "temp > bool 20",
    "temp == temp",
    "1 - temp / 40",
    "-temp",
    "req_total / on(svc, code) group_left sum by (svc, code) (req_total)",
    "sum by (svc) (req_total) / ignoring(code) group_right req_total",
    "temp and on(svc) temp > 22",
    "temp or req_total",
    "temp unless temp < 18",
    "histogram_quantile(0.9, sum by (le, svc) (rate(lat_bucket[5m])))",
    "histogram_quantile(0.5, rate(lat_bucket[5m]))",
    "histogram_quantile(scalar(min(temp)) / 40, rate(lat_bucket[5m]))",
    "rate(lat_sum[5m]) / rate(lat_count[5m])",
    "avg_over_time(temp[5m])",
    "sum_over_time(temp[5m])",
    "count_over_time(temp[5m])",
    "min_over_time(temp[5m])",
    "max_over_time(temp[5m])",
    "last_over_time(temp[5m])",
    "present_over_time(temp[2m])",
    "changes(temp[10m])",
    "resets(req_total[10m])",
    "quantile_over_time(0.9, temp[5m])",
    "stddev_over_time(temp[5m])",
    "deriv(temp[5m])",
    "predict_linear(temp[5m], 60)",
    "abs(temp - 20) + ceil(temp) - floor(temp) + sqrt(abs(temp)) + ln(abs(temp) + 1)",
    "clamp(temp, 15, 25) + clamp_min(temp, 18) + clamp_max(temp, 22) + round(temp, 0.5)",
    "exp(temp / 10) + sgn(temp - 20) + log2(abs(temp)) + log10(abs(temp))",
    'label_replace(temp, "s", "$1", "svc", "(.)*")',
    'label_join(temp, "x", "-", "svc", "code")',
    "timestamp(temp)",
    "timestamp(sum(temp))",
    "scalar(sum(temp)) * 2 + time()",
    "vector(1) + sum(temp)",
    "absent(nothing)",
    'absent_over_time(temp{svc="gap"}[1m])',
    "temp offset 5m",
    "rate(req_total[5m] @ end())",
    "temp @ start() - temp offset 10m",
    "max_over_time(rate(req_total[1m])[10m:1m])",
    "sort_desc(sum by (svc) (temp))",
    "topk(2, temp)",
    "bottomk(1, rate(req_total[5m]))",
    "quantile by (svc) (0.5, temp)",
    'count_values("v", round(temp))',
    "sum(temp) % 7 ^ 2 + atan2(sum(temp), 3)",
    "day_of_month(temp) + hour(temp)",
    '{__name__=~"lat_.*"}',
    "nothing",
    "sum(nothing)",
]


def _points(seed: int) -> list[MetricPoint]:
    rng = random.Random(seed)
    points: list[MetricPoint] = []

    def t(i: int) -> int:
        return (i * 15 * S + rng.randint(-3000, 3000)) * 1_000_000

    for svc in ("a", "b", "c"):
        for code in ("200", "500"):
            value = rng.uniform(0, 10)
            labels = (("code", code), ("svc", svc))
            for i in range(240):
                if rng.random() < 0.05:
                    continue
                value += rng.expovariate(0.5)
                if rng.random() < 0.03:
                    value = rng.uniform(0, 3)  # reset
                stale = rng.random() < 0.01
                points.append(
                    MetricPoint(
                        "req_total", labels, t(i), MetricType.COUNTER, STALE_NAN if stale else value
                    )
                )
    for svc in ("a", "b", "gap", "odd"):
        value = 20.0
        for i in range(240):
            if svc == "gap" and 80 <= i < 120:
                continue
            value += rng.gauss(0, 1)
            shown = value
            if svc == "odd" and rng.random() < 0.1:
                shown = rng.choice([math.nan, math.inf, -math.inf, 0.0])
            points.append(MetricPoint("temp", (("svc", svc),), t(i), value=round(shown, 2)))
            if rng.random() < 0.02:  # a second sample at the same time
                points.append(MetricPoint("temp", (("svc", svc),), t(i) // S * S, value=shown))
    for svc in ("a", "b"):
        counts = [0] * (len(BOUNDS) + 1)
        for i in range(240):
            if svc == "b" and 100 <= i < 130:
                continue
            for _ in range(rng.randint(0, 5)):
                counts[rng.randrange(len(counts))] += 1
            hist = Histogram(BOUNDS, tuple(counts), sum(counts) * 0.3, sum(counts))
            points.append(
                MetricPoint("lat", (("svc", svc),), t(i), MetricType.HISTOGRAM, histogram=hist)
            )
    return points


@pytest.fixture(scope="module")
def queryable() -> MetricStoreQueryable:
    store = MemoryMetricStore()
    store.write_points(_points(11))
    return MetricStoreQueryable(store)


def _run(engine: Engine, query: str, start: int, end: int, step: int) -> Matrix | str:
    try:
        return engine.range(query, start, end, step)
    except PromQLError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize("query", DASHBOARD)
@pytest.mark.parametrize(
    "grid", [(0, 3600 * S, 60 * S), (301 * S, 3000 * S, 37 * S), (1800 * S, 1800 * S, 1)]
)
def test_vectorised_agrees_with_per_step(
    queryable: MetricStoreQueryable, query: str, grid: tuple[int, int, int]
) -> None:
    vectorised = Engine(queryable)
    got = _run(vectorised, query, *grid)
    want = _run(Engine(queryable, vectorised=False), query, *grid)
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert isinstance(got, Matrix)
    expected = {s.labels: s.points for s in want.series}
    found = {s.labels: s.points for s in got.series}
    assert list(found) == sorted(found)
    assert sorted(found) == sorted(expected)
    for labels, points in expected.items():
        assert [t for t, _ in found[labels]] == [t for t, _ in points], labels
        for (t, a), (_, b) in zip(found[labels], points, strict=True):
            assert close(a, b), f"{labels} at {t}: vectorised {a}, per-step {b}"
    assert vectorised.last_fallbacks == 0


def test_the_data_has_what_the_edges_need(queryable: MetricStoreQueryable) -> None:
    engine = Engine(queryable)
    resets = engine.range("sum(resets(req_total[1h]))", 3600 * S, 3600 * S, 1)
    assert resets.series[0].points[0][1] > 5
    odd = engine.range('count_over_time(temp{svc="odd"}[1h])', 3600 * S, 3600 * S, 1)
    query = 'count_over_time((temp{svc="odd"} != temp{svc="odd"})[1h:15s])'
    nan = engine.range(query, 3600 * S, 3600 * S, 1)
    assert odd.series[0].points[0][1] > nan.series[0].points[0][1] > 0  # some NaN samples
    gap = engine.range('temp{svc="gap"}', 0, 3600 * S, 60 * S)
    assert len(gap.series[0].points) < 55  # absent for part of the hour
