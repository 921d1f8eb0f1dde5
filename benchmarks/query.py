"""Query latency on 10M spans over 24 h from 22 services (benchmarks/query_data.py), each
question beside the raw-scan answer to the same question, in one run.

- trace by id: first reads right after opening the file (blocks still on disk); the warm-up
  `meshscope serve` runs after a restart (timed); then first reads of 300 other ids from the
  store and 300 more through the whole `/api/traces/{id}` route, and the route's ids again
  from the store; raw: a scan of `spans` by trace id without the index. Routes are timed
  over HTTP (uvicorn on 127.0.0.1, one keep-alive client), as Jaeger UI or Grafana call them;
- search service+operation+tag over 1 h (`find_trace_ids`, and the `/api/traces` route with
  limit 20); raw: the same filters without the start-range pruning;
- `/api/dependencies` over 24 h from the service-graph counters; raw: a parent/child self-join;
- RED of all services over 24 h from the span-metric histograms; raw: GROUP BY over spans.

    .venv/bin/python benchmarks/query.py [--spans 10000000] [--file /tmp/...duckdb]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import uvicorn
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).parent))
from meshscope.api.jaeger import jaeger_routes
from meshscope.api.meshscope import meshscope_routes
from meshscope.config import DuckDBConfig
from meshscope.query.red import red
from meshscope.store.base import TraceQuery
from meshscope.store.duckdb import DuckDBStorage
from query_data import DAY_NS, T0, load

HOUR_NS = 3600 * 10**9


@contextmanager
def served(app: Starlette) -> Iterator[httpx.Client]:
    """The app behind uvicorn on 127.0.0.1 (a thread of this process: the raw scans need the
    same open file), and a keep-alive client: routes are timed as a real client sees them."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_dependencies(ui: httpx.Client, runs: int = 10) -> list[float]:
    """`GET /api/dependencies` over the data set's 24 h, as Jaeger UI asks."""
    params = {"endTs": (T0 + DAY_NS) // 10**6, "lookback": 86_400_000}
    return timed(lambda: ui.get("/api/dependencies", params=params).raise_for_status(), runs)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def report(label: str, ms: list[float], target: float, raw: list[float]) -> None:
    worst = p99(ms)
    met = "met" if worst <= target else "NOT met"
    print(
        f"{label}: p50 {statistics.median(ms):.2f} ms, p99 {worst:.2f} ms (target <= {target:g},"
        f" {met}); raw scan median {statistics.median(raw):.1f} ms"
        f" ({statistics.median(raw) / statistics.median(ms):.0f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--file", type=Path, default=Path("/tmp/meshscope-query-bench.duckdb"))
    args = parser.parse_args()
    load(args.file, args.spans).close()
    cold = first_reads_without_warm_up(args.file)
    print(
        f"trace by id (store, first reads right after opening, no warm-up): p50"
        f" {statistics.median(cold):.2f} ms, p99 {p99(cold):.2f} ms"
    )
    # As `meshscope serve` does after a restart (storage.duckdb.warm_up: newest spans first).
    storage = DuckDBStorage(args.file, memory_limit=DuckDBConfig().memory_limit)
    began = time.perf_counter()
    warmed = storage.warm_up()
    print(
        f"warm-up: {warmed.spans:,} spans, {warmed.buffer_bytes / 2**20:,.0f} MiB of buffer pool"
        f" in {time.perf_counter() - began:.1f} s (complete: {warmed.complete})"
    )
    db = storage.traces._db  # the raw scans use the same connection
    con = db.read()
    print(f"spans: {sum(storage.traces.span_counts().values()):,}")
    app = Starlette(routes=[*jaeger_routes(storage), *meshscope_routes(storage)])
    with served(app) as ui:
        run(storage, con, ui)
    storage.close()


def first_reads_without_warm_up(path: Path) -> list[float]:
    """The store opened and 300 random traces read at once: the worst case, every row
    group's blocks still on disk (loaded as the reads touch them)."""
    storage = DuckDBStorage(path)
    rows = (
        storage.traces._db.read()
        .execute("SELECT trace_hi, trace_lo FROM trace_index USING SAMPLE 300")
        .fetchall()
    )
    it = iter(f"{hi:016x}{lo:016x}" for hi, lo in rows)
    ms = timed(lambda: storage.traces.get_trace(next(it)), len(rows))
    storage.close()
    return ms


def run(storage: DuckDBStorage, con: duckdb.DuckDBPyConnection, ui: httpx.Client) -> None:

    rng = random.Random(5)
    rows = con.execute("SELECT trace_hi, trace_lo FROM trace_index USING SAMPLE 600").fetchall()
    ids = [f"{hi:016x}{lo:016x}" for hi, lo in rows]
    rng.shuffle(ids)
    # After the warm-up (see main), the store reads 300 traces and the route 300 others, each
    # id once (first reads); then the store reads the route's 300 again.
    first, second = ids[:300], ids[300:]
    it = iter(first + second + second)
    by_id = timed(lambda: storage.traces.get_trace(next(it)), len(first))
    route = timed(lambda: ui.get(f"/api/traces/{next(it)}").raise_for_status(), len(second))
    again = timed(lambda: storage.traces.get_trace(next(it)), len(second))
    hi, lo = rows[0]
    raw = timed(
        lambda: con.execute(
            "SELECT * FROM spans WHERE trace_hi = ? AND trace_lo = ?", [hi, lo]
        ).fetchall(),
        3,
    )
    report("trace by id (store, first reads after warm-up)", by_id, 10, raw)
    report("trace by id (GET /api/traces/{id}, first reads after warm-up)", route, 10, raw)
    report("trace by id (store, read again)", again, 10, raw)

    start = T0 + 12 * HOUR_NS
    query = TraceQuery(service="cart", operation="GET /cart",
                       attributes={"customer.tier": "enterprise"},
                       start_ns=start, end_ns=start + HOUR_NS, limit=20)  # fmt: skip
    windows = [start + i * 7 * 60 * 10**9 for i in range(20)]
    wi = iter(windows * 3)

    def search() -> None:
        s = next(wi)
        storage.traces.find_trace_ids(
            TraceQuery(service=query.service, operation=query.operation,
                       attributes=query.attributes, start_ns=s, end_ns=s + HOUR_NS, limit=20)
        )  # fmt: skip

    found = timed(search, len(windows))
    params = {"service": "cart", "operation": "GET /cart", "limit": "20",
              "tags": '{"customer.tier":"enterprise"}', "lookback": "1h"}  # fmt: skip

    def search_route() -> None:
        s = next(wi)
        span = {"start": str(s // 1000), "end": str((s + HOUR_NS) // 1000)}
        ui.get("/api/traces", params={**params, **span}).raise_for_status()

    routed = timed(search_route, len(windows))
    raw = timed(
        lambda: con.execute(
            "SELECT DISTINCT trace_hi, trace_lo FROM spans WHERE service = 'cart'"
            " AND name = 'GET /cart'"
            " AND contains(attrs, 'customer.tier' || chr(30) || 'enterprise' || chr(30))"
            " AND start_ns + 0 BETWEEN ? AND ?",
            [start, start + HOUR_NS],
        ).fetchall(),
        3,
    )
    report("search service+op+tag 1 h (find_trace_ids)", found, 100, raw)
    report("search service+op+tag 1 h (GET /api/traces, limit 20)", routed, 100, raw)

    deps = time_dependencies(ui)
    raw = timed(
        lambda: con.execute(
            "SELECT p.service, c.service, count(*) FROM spans c JOIN spans p"
            " ON c.trace_hi = p.trace_hi AND c.trace_lo = p.trace_lo AND c.parent_id = p.span_id"
            " WHERE p.service <> c.service GROUP BY ALL"
        ).fetchall(),
        1,
    )
    report("dependencies 24 h (GET /api/dependencies)", deps, 100, raw)

    red_ms = timed(lambda: red(storage.metrics, T0, T0 + DAY_NS + 60 * 10**9), 10)
    raw = timed(
        lambda: con.execute(
            "SELECT service, count(*), count(*) FILTER (status_code = 2),"
            " quantile_cont(duration_ns, [0.5, 0.95, 0.99]) FROM spans WHERE kind = 2"
            " GROUP BY service"
        ).fetchall(),
        1,
    )
    report("RED all services 24 h (query.red)", red_ms, 100, raw)


if __name__ == "__main__":
    main()
