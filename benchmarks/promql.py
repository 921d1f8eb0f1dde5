"""PromQL range-query latency: our engine over a MemoryMetricStore vs. a real Prometheus.

1,000 series x 24 h at 15 s resolution (counters, plus one classic histogram family), the
same samples backfilled into Prometheus with promtool. Prints both latencies and the ratio.

    .venv/bin/python benchmarks/promql.py [--series 1000] [--hours 24] [--step 60]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conformance import prometheus_server

from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import (
    MetricStoreQueryable,
)
from meshscope.store.memory import MemoryMetricStore

INTERVAL_MS = 15_000
BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HISTOGRAM_SERIES = 10  # each expands to len(BOUNDS) + 3 Prometheus series
QUERIES = [
    "rate(bench_requests_total[5m])",
    "sum by (service) (rate(bench_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, x) (rate(bench_latency_seconds_bucket[5m])))",
]


def generate(series: int, samples: int, start_ms: int) -> list[MetricPoint]:
    rng = random.Random(7)
    points: list[MetricPoint] = []
    counters = series - HISTOGRAM_SERIES * (len(BOUNDS) + 3)
    for index in range(counters):
        labels = (("instance", f"i{index % 50}"), ("service", f"svc{index // 50}"))
        value = 0.0
        increments = [rng.expovariate(0.1) for _ in range(64)]
        for i in range(samples):
            value += increments[i % 64]
            t = (start_ms + i * INTERVAL_MS) * 1_000_000
            points.append(
                MetricPoint("bench_requests_total", labels, t, MetricType.COUNTER, value=value)
            )
    for x in range(HISTOGRAM_SERIES):
        counts = [0] * (len(BOUNDS) + 1)
        total = 0.0
        for i in range(samples):
            for bucket in range(len(counts)):
                counts[bucket] += (i * 7 + bucket * 3 + x) % 5
            total += 0.1 * (i % 9)
            t = (start_ms + i * INTERVAL_MS) * 1_000_000
            hist = Histogram(BOUNDS, tuple(counts), total, sum(counts))
            points.append(
                MetricPoint(
                    "bench_latency_seconds",
                    (("x", str(x)),),
                    t,
                    MetricType.HISTOGRAM,
                    histogram=hist,
                )
            )
    return points


def timed(run: object) -> float:
    assert callable(run)
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--step", type=int, default=60, help="query step in seconds")
    args = parser.parse_args()
    samples = int(args.hours * 3600_000 // INTERVAL_MS)
    start_ms = (int(time.time() * 1000) - int(args.hours * 3600_000) - 600_000) // 60_000 * 60_000
    end_ms = start_ms + (samples - 1) * INTERVAL_MS
    began = time.perf_counter()
    points = generate(args.series, samples, start_ms)
    store = MemoryMetricStore()
    store.write_points(points)
    engine = Engine(MetricStoreQueryable(store))
    print(
        f"{len(points):,} points, {args.series} series, written in "
        f"{time.perf_counter() - began:.1f} s"
    )
    reason = prometheus_server.available()
    step_ms = args.step * 1000
    steps = (end_ms - start_ms) // step_ms + 1
    print(f"query_range over {args.hours:g} h, step {args.step} s ({steps} steps)")
    if reason:
        print(f"Prometheus not available ({reason}): measuring ours only")
    with tempfile.TemporaryDirectory() as tmp:
        if reason:
            for query in QUERIES:
                ours = timed(lambda q=query: engine.range(q, start_ms, end_ms, step_ms))
                print(f"  ours {ours:8.3f} s  {query}")
            return
        began = time.perf_counter()
        with prometheus_server.running_prometheus(Path(tmp), points) as url:
            print(f"backfilled and started Prometheus in {time.perf_counter() - began:.1f} s")
            print(f"  {'ours':>8} {'prom':>8} {'ratio':>7}  query")
            for query in QUERIES:
                prometheus_server.query_range(url, query, start_ms, end_ms, step_ms)  # warm up
                theirs = timed(
                    lambda q=query: prometheus_server.query_range(url, q, start_ms, end_ms, step_ms)
                )
                ours = timed(lambda q=query: engine.range(q, start_ms, end_ms, step_ms))
                print(f"  {ours:8.3f} {theirs:8.3f} {ours / theirs:6.0f}x  {query}")


if __name__ == "__main__":
    main()
