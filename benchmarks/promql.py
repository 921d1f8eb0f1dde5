"""PromQL range-query latency: meshscope vs. a real Prometheus on the same samples.

1,000 series x 24 h at 15 s resolution (counters, plus one classic histogram family), the
same samples backfilled into Prometheus with promtool. Each query runs as
`GET /api/v1/query_range` against Prometheus and against our HTTP API (uvicorn on
127.0.0.1, a thread of this process) over a MemoryMetricStore and over a DuckDB file (the
product default; written in time order, as ingest writes, so its sample cache holds them),
plus our engine alone (no HTTP); with --clickhouse also over a real ClickHouse server (started
on free loopback ports in a temp dir, as the tests start theirs, stopped at the end). After
that, the DuckDB file is reopened for two more
engine figures: with the sample cache off (every read scans DuckDB) and the first read after
a restart (one run, a fresh store: the read loads the series into the cache).
Every figure is the best of --runs after one warm-up; ratios are ours / Prometheus.
The generated points and the memory store's 5M `MetricPoint` objects are moved out of the
garbage collector's reach (`gc.freeze()`) once loaded: otherwise every full collection
during a query walks them all (up to ~1 s per query, in every figure of this process).

    .venv/bin/python benchmarks/promql.py [--series 1000] [--hours 24] [--step 60] [--runs 3]
        [--clickhouse]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette
from tests.conformance import prometheus_server
from tests.conformance.clickhouse_server import ClickHouseServer
from tests.serving import serving

from meshscope.api.prometheus import prometheus_routes
from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.store.base import MetricStore
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.metrics import DuckDBMetricStore
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


def fetch(base: str, query: str, start_ms: int, end_ms: int, step_ms: int) -> bytes:
    params = urllib.parse.urlencode(
        {"query": query, "start": start_ms / 1000, "end": end_ms / 1000, "step": step_ms / 1000}
    )
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{params}", timeout=300) as response:
        body: bytes = response.read()
    if b'"status":"success"' not in body[:64]:
        raise RuntimeError(f"{base}: {body[:300]!r}")
    return body


def best(run: Callable[[], object], runs: int) -> float:
    """Best wall time of `runs` runs, after one warm-up run."""
    run()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return min(times)


def _app(store: MetricStore) -> Starlette:
    return Starlette(routes=prometheus_routes(MetricStoreQueryable(store)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--step", type=int, default=60, help="query step in seconds")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (best)")
    parser.add_argument("--clickhouse", action="store_true", help="also on a ClickHouse server")
    args = parser.parse_args()
    samples = int(args.hours * 3600_000 // INTERVAL_MS)
    start_ms = (int(time.time() * 1000) - int(args.hours * 3600_000) - 600_000) // 60_000 * 60_000
    end_ms = start_ms + (samples - 1) * INTERVAL_MS
    step_ms = args.step * 1000
    steps = (end_ms - start_ms) // step_ms + 1
    began = time.perf_counter()
    points = generate(args.series, samples, start_ms)
    memory = MemoryMetricStore()
    memory.write_points(points)
    print(
        f"{len(points):,} points, {args.series} series, "
        f"in memory in {time.perf_counter() - began:.1f} s"
    )
    reason = prometheus_server.available()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        began = time.perf_counter()
        duckdb = DuckDBStorage(Path(tmp) / "bench.duckdb")
        stack.callback(duckdb.close)
        in_time_order = sorted(points, key=lambda p: p.time_ns)
        for chunk in range(0, len(in_time_order), 100_000):
            duckdb.metrics.write_points(in_time_order[chunk : chunk + 100_000])
        print(f"written to a DuckDB file in {time.perf_counter() - began:.1f} s")
        cached = duckdb.metrics.cache.nbytes
        print(f"sample cache: {cached / 2**20:.0f} MiB, {cached / len(points):.1f} B/point")
        stores: dict[str, MetricStore] = {"memory": memory, "duckdb": duckdb.metrics}
        if args.clickhouse:
            stores["clickhouse"] = _clickhouse(stack, in_time_order)
        gc.freeze()
        stack.callback(gc.unfreeze)  # before the stores close, so nothing stays frozen
        targets = {
            f"http {name}": stack.enter_context(serving(_app(store)))
            for name, store in stores.items()
        }
        if reason:
            print(f"Prometheus not available ({reason}): measuring ours only")
        else:
            began = time.perf_counter()
            prom = stack.enter_context(prometheus_server.running_prometheus(Path(tmp), points))
            print(f"backfilled and started Prometheus in {time.perf_counter() - began:.1f} s")
        engines = {
            f"engine {name}": Engine(MetricStoreQueryable(store)) for name, store in stores.items()
        }
        print(
            f"query_range over {args.hours:g} h, step {args.step} s ({steps} steps), "
            f"best of {args.runs}"
        )
        prometheus: dict[str, float] = {}
        for query in QUERIES:
            print(f"  {query}")
            theirs = 0.0
            if not reason:
                size = len(fetch(prom, query, start_ms, end_ms, step_ms))
                theirs = best(_http(prom, query, start_ms, end_ms, step_ms), args.runs)
                print(f"    {'prometheus http':>16} {theirs:8.3f} s  ({size / 1e6:.1f} MB)")
                prometheus[query] = theirs
            figures: dict[str, float] = {}
            for name, base in targets.items():
                figures[name] = best(_http(base, query, start_ms, end_ms, step_ms), args.runs)
            for name, engine in engines.items():
                figures[name] = best(_engine(engine, query, start_ms, end_ms, step_ms), args.runs)
            _print(figures, theirs)
        stack.close()
        _after_restart(Path(tmp) / "bench.duckdb", prometheus, args.runs, start_ms, end_ms, step_ms)


def _clickhouse(stack: ExitStack, points: list[MetricPoint]) -> MetricStore:
    """The points in a fresh ClickHouse server's store (stopped when `stack` closes)."""
    began = time.perf_counter()
    server = ClickHouseServer()
    stack.callback(server.stop)
    storage = ClickHouseStorage(server.dsn, "bench")
    stack.callback(storage.close)
    for chunk in range(0, len(points), 100_000):
        storage.metrics.write_points(points[chunk : chunk + 100_000])
    print(f"written to ClickHouse {storage.server_version} in {time.perf_counter() - began:.1f} s")
    return storage.metrics


def _after_restart(
    path: Path, prometheus: dict[str, float], runs: int, start: int, end: int, step: int
) -> None:
    db = Database(path)
    try:
        print("reopened DuckDB file, engine only")
        for query in QUERIES:
            print(f"  {query}")
            uncached = Engine(MetricStoreQueryable(DuckDBMetricStore(db, cache_bytes=0)))
            cold = Engine(MetricStoreQueryable(DuckDBMetricStore(db)))
            began = time.perf_counter()
            cold.range_arrays(query, start, end, step)
            figures = {"first read": time.perf_counter() - began}
            figures["no cache"] = best(_engine(uncached, query, start, end, step), runs)
            _print(figures, prometheus.get(query, 0.0))
    finally:
        db.close()


def _print(figures: dict[str, float], theirs: float) -> None:
    for name, seconds in figures.items():
        ratio = f"  ours/prom {seconds / theirs:5.2f}" if theirs else ""
        print(f"    {name:>16} {seconds:8.3f} s{ratio}")


def _http(base: str, query: str, start: int, end: int, step: int) -> Callable[[], object]:
    return lambda: fetch(base, query, start, end, step)


def _engine(engine: Engine, query: str, start: int, end: int, step: int) -> Callable[[], object]:
    return lambda: engine.range_arrays(query, start, end, step)


if __name__ == "__main__":
    main()
