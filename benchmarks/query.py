"""Query latency on two data sets, in one run, each question beside the raw-scan answer:

- sparse: 10M spans over 24 h from 22 services (benchmarks/query_data.py, ~116 spans/s);
- dense: 10M spans, 90% of them in the last hour (benchmarks/query_dense.py, ~2,500 spans/s
  there: issue #18), traces of 5-50 spans written as the ingest workers and the group commit
  write them, ~1 log per 2 spans.

Questions, each a p50/p99 over `--runs` (windows ending a few seconds apart), through the store
and through the public HTTP API (uvicorn on 127.0.0.1, one keep-alive client, as Jaeger UI or
Grafana call it), with `limit=20`:
- trace search over the last 15 min and the last hour: by service, service+operation,
  service+tag, service+status=error, service+minDuration; raw: a plain scan of `spans` with
  the same filters over the window (no start-range pruning, `start_ns + 0`);
- trace by id, first reads after opening the file (no warm-up: every block on disk), then after
  the warm-up `meshscope serve` runs after a restart, from the store and through
  `/api/traces/{id}` (each id read once); raw: a scan of `spans` by trace id;
- the UI's views over the last hour: services, operations, RED, service graph, a trace's stats
  and logs, the logs view of a service;
- Loki `{service_name="S"} |= "word"` limit 100 over the last hour (`/loki/api/v1/query_range`
  and `find_logs`); raw: the same filters on `logs` without time pruning;
- `/api/dependencies` and RED over 24 h (sparse only: the questions of the first version).

    .venv/bin/python benchmarks/query.py [--profile both|dense|sparse] [--spans 10000000]
        [--sparse-spans 10000000] [--runs 30]

Files are reused when they hold the requested spans (/tmp/meshscope-query-{profile}.duckdb).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import httpx
import uvicorn
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).parent))
import query_data
import query_dense
from meshscope.api.jaeger import jaeger_routes
from meshscope.api.loki import loki_query_routes
from meshscope.api.meshscope import meshscope_routes
from meshscope.config import DuckDBConfig
from meshscope.query.red import red
from meshscope.server import freeze_startup_heap
from meshscope.store.base import LogQuery, TraceQuery
from meshscope.store.duckdb import DuckDBStorage
from meshscope.ui.routes import ui_routes
from query_data import DAY_NS, T0

S = 10**9
HOUR_NS = 3600 * S
END_NS = T0 + DAY_NS
SERVICE = "cart"
TAG = ("customer.tier", "enterprise")
MIN_DURATION_MS = 30
FILES = {"sparse": Path("/tmp/meshscope-query-bench.duckdb"),
         "dense": Path("/tmp/meshscope-query-dense.duckdb")}  # fmt: skip


@dataclass(frozen=True)
class Search:
    label: str
    query: TraceQuery  # times set per run
    params: dict[str, str]  # of GET /api/traces
    raw: str  # SQL conditions on `spans`


SEARCHES = [
    Search("service", TraceQuery(service=SERVICE), {"service": SERVICE}, f"service = '{SERVICE}'"),
    Search(
        "service+operation",
        TraceQuery(service=SERVICE, operation=f"GET /{SERVICE}"),
        {"service": SERVICE, "operation": f"GET /{SERVICE}"},
        f"service = '{SERVICE}' AND name = 'GET /{SERVICE}'",
    ),
    Search(
        "service+tag",
        TraceQuery(service=SERVICE, attributes={TAG[0]: TAG[1]}),
        {"service": SERVICE, "tags": json.dumps({TAG[0]: TAG[1]})},
        f"service = '{SERVICE}' AND contains(attrs, '{TAG[0]}' || chr(30) || '{TAG[1]}')",
    ),
    Search(
        "service+error",
        TraceQuery(service=SERVICE, errors_only=True),
        {"service": SERVICE, "tags": '{"error":"true"}'},
        f"service = '{SERVICE}' AND status_code = 2",
    ),
    Search(
        f"service+minDuration {MIN_DURATION_MS}ms",
        TraceQuery(service=SERVICE, min_duration_ns=MIN_DURATION_MS * 10**6),
        {"service": SERVICE, "minDuration": f"{MIN_DURATION_MS}ms"},
        f"service = '{SERVICE}' AND duration_ns >= {MIN_DURATION_MS * 10**6}",
    ),
]


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
    """Milliseconds of each of `runs` calls of `fn`."""
    return timed_runs(lambda _: fn(), runs)


def timed_runs(fn: Callable[[int], Any], runs: int) -> list[float]:
    """Milliseconds of `fn(run)` for each run."""
    out = []
    for run in range(runs):
        t = time.perf_counter()
        fn(run)
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_dependencies(ui: httpx.Client, runs: int = 10) -> list[float]:
    """`GET /api/dependencies` over the data set's 24 h, as Jaeger UI asks."""
    params = {"endTs": (T0 + DAY_NS) // 10**6, "lookback": 86_400_000}
    return timed(lambda: ui.get("/api/dependencies", params=params).raise_for_status(), runs)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Report:
    """Figures by question and profile, printed as they come and as one table at the end."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}

    def add(
        self, profile: str, label: str, ms: list[float], target: float, raw: list[float] | None
    ) -> None:
        worst = p99(ms)
        text = f"p50 {statistics.median(ms):.1f}, p99 {worst:.1f}"
        if target:
            text += " (met)" if worst <= target else f" (NOT met: <= {target:g})"
        if raw:
            text += f"; raw {statistics.median(raw):.0f}"
        self.rows.setdefault(label, {})[profile] = text
        print(f"[{profile}] {label}: {text} ms", flush=True)

    def table(self, profiles: list[str]) -> None:
        print("\n| question (ms) | " + " | ".join(profiles) + " |")
        print("|---|" + "---|" * len(profiles))
        for label, by_profile in self.rows.items():
            cells = " | ".join(by_profile.get(p, "") for p in profiles)
            print(f"| {label} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=["both", "dense", "sparse"], default="both")
    parser.add_argument("--spans", type=int, default=10_000_000, help="dense profile")
    parser.add_argument("--sparse-spans", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--dense-file", type=Path, default=FILES["dense"])
    parser.add_argument("--sparse-file", type=Path, default=FILES["sparse"])
    args = parser.parse_args()
    profiles = ["sparse", "dense"] if args.profile == "both" else [args.profile]
    report = Report()
    for profile in profiles:
        if profile == "dense":
            path = args.dense_file
            query_dense.load(path, args.spans).close()
        else:
            path = args.sparse_file
            query_data.load(path, args.sparse_spans).close()
        bench(profile, path, args.runs, report)
    report.table(profiles)


def bench(profile: str, path: Path, runs: int, report: Report) -> None:
    cold = first_reads_without_warm_up(path)
    report.add(
        profile, "trace by id, store, first reads after opening (no warm-up)", cold, 10, None
    )
    # As `meshscope serve` does after a restart (storage.duckdb.warm_up: newest spans first).
    storage = DuckDBStorage(path, memory_limit=DuckDBConfig().memory_limit)
    began = time.perf_counter()
    warmed = storage.warm_up()
    freeze_startup_heap()  # as `meshscope serve` does once started
    print(
        f"[{profile}] warm-up: {warmed.spans:,} spans, {warmed.buffer_bytes / 2**20:,.0f} MiB"
        f" in {time.perf_counter() - began:.1f} s (complete: {warmed.complete})"
    )
    con = storage.traces._db.read()  # the raw scans use the same connection
    counts = storage.traces.span_counts()
    recent = sum(storage.traces.span_counts(END_NS - HOUR_NS, END_NS).values())
    print(f"[{profile}] spans: {sum(counts.values()):,}, {recent:,} in the last hour")
    app = Starlette(
        routes=[*jaeger_routes(storage, lambda: END_NS), *meshscope_routes(storage),
                *loki_query_routes(storage), *ui_routes(storage)]
    )  # fmt: skip
    with served(app) as api:
        by_id(profile, storage, con, api, report)
        searches(profile, storage, con, api, runs, report)
        views(profile, storage, con, api, runs, report)
        if profile == "sparse":
            day_questions(profile, storage, con, api, report)
    storage.close()


def first_reads_without_warm_up(path: Path) -> list[float]:
    """The store opened and 300 random traces of the last hour read at once: the worst case,
    every row group's blocks still on disk (loaded as the reads touch them)."""
    con = duckdb.connect(str(path), read_only=True)
    ids = sample_ids(con, 300, seed=1)
    con.close()  # so that the store opens with nothing loaded
    began = time.perf_counter()
    storage = DuckDBStorage(path)  # reads `trace_index` whole into the trace locator
    print(f"store opened in {time.perf_counter() - began:.2f} s"
          f" (trace locator: {len(storage.traces.locator):,} entries)")  # fmt: skip
    it = iter(ids)
    ms = timed(lambda: storage.traces.get_trace(next(it)), len(ids))
    storage.close()
    return ms


def sample_ids(con: duckdb.DuckDBPyConnection, count: int, seed: int) -> list[str]:
    """`count` ids of traces with spans in the last hour, chosen by a hash (repeatable)."""
    rows = con.execute(
        "SELECT DISTINCT trace_hi, trace_lo, hash(trace_lo, ?) AS h FROM spans"
        " WHERE start_ns >= ? ORDER BY h LIMIT ?",
        [seed, END_NS - HOUR_NS, count],
    ).fetchall()
    return [f"{hi:016x}{lo:016x}" for hi, lo, _ in rows]


def by_id(
    profile: str,
    storage: DuckDBStorage,
    con: duckdb.DuckDBPyConnection,
    api: httpx.Client,
    report: Report,
) -> None:
    ids = sample_ids(con, 600, seed=2)
    random.Random(5).shuffle(ids)
    first, second = ids[:300], ids[300:]
    it = iter(first + second + second)
    store = timed(lambda: storage.traces.get_trace(next(it)), len(first))
    route = timed(lambda: api.get(f"/api/traces/{next(it)}").raise_for_status(), len(second))
    again = timed(lambda: storage.traces.get_trace(next(it)), len(second))
    hi, lo = int(first[0][:16], 16), int(first[0][16:], 16)
    raw = timed(
        lambda: con.execute(
            "SELECT * FROM spans WHERE trace_hi = ? AND trace_lo = ?", [hi, lo]
        ).fetchall(),
        3,
    )
    report.add(profile, "trace by id, store, first reads after warm-up", store, 10, raw)
    report.add(profile, "trace by id, GET /api/traces/{id}, first reads after warm-up", route,
               10, raw)  # fmt: skip
    report.add(profile, "trace by id, store, read again", again, 10, raw)


def searches(
    profile: str,
    storage: DuckDBStorage,
    con: duckdb.DuckDBPyConnection,
    api: httpx.Client,
    runs: int,
    report: Report,
) -> None:
    for window_ns, window in ((15 * 60 * S, "15 min"), (HOUR_NS, "1 h")):
        for search in SEARCHES:

            def store(run: int, search: Search = search, window_ns: int = window_ns) -> None:
                end = END_NS - run * 5 * S
                query = replace(search.query, start_ns=end - window_ns, end_ns=end, limit=20)
                storage.traces.find_trace_ids(query)

            def route(run: int, search: Search = search, window_ns: int = window_ns) -> None:
                end = END_NS - run * 5 * S - 2 * S
                times = {"start": str((end - window_ns) // 1000), "end": str(end // 1000)}
                params = {**search.params, **times, "limit": "20"}
                api.get("/api/traces", params=params).raise_for_status()

            def scan(search: Search = search, window_ns: int = window_ns) -> None:
                con.execute(
                    f"SELECT DISTINCT trace_hi, trace_lo FROM spans WHERE {search.raw}"
                    " AND start_ns + 0 BETWEEN ? AND ?",
                    [END_NS - window_ns, END_NS],
                ).fetchall()

            raw = timed(scan, 2)
            label = f"search {search.label}, {window}"
            report.add(profile, f"{label} (store)", timed_runs(store, runs), 100, raw)
            report.add(profile, f"{label} (GET /api/traces)", timed_runs(route, runs), 100, raw)


def views(
    profile: str,
    storage: DuckDBStorage,
    con: duckdb.DuckDBPyConnection,
    api: httpx.Client,
    runs: int,
    report: Report,
) -> None:
    """The UI's views over the last hour (what src/meshscope/ui/static/js/views/ call), and
    Loki over the same hour."""
    ms = {"start": str((END_NS - HOUR_NS) // 10**6), "end": str(END_NS // 10**6)}
    ids = sample_ids(con, runs, seed=3)
    calls: list[tuple[str, Callable[[int], str], dict[str, str]]] = [
        ("services (GET /api/services)", lambda _: "/api/services", {}),
        ("operations", lambda _: f"/api/services/{SERVICE}/operations", {}),
        ("RED by service, 1 h", lambda _: "/api/meshscope/red", ms),
        ("RED of a service by operation, 1 h", lambda _: "/api/meshscope/red",
         {**ms, "service": SERVICE, "groupBy": "operation"}),
        ("service graph, 1 h", lambda _: "/api/meshscope/graph", ms),
        ("trace view: stats", lambda run: f"/api/meshscope/traces/{ids[run]}/stats", {}),
        ("trace view: logs", lambda run: f"/api/meshscope/traces/{ids[run]}/logs", {}),
        ("logs view of a service, 1 h", lambda _: "/api/meshscope/logs",
         {**ms, "service": SERVICE}),
    ]  # fmt: skip
    for label, path, params in calls:

        def call(
            run: int, path: Callable[[int], str] = path, params: dict[str, str] = params
        ) -> None:
            api.get(path(run), params=params).raise_for_status()

        report.add(profile, f"UI: {label}", timed_runs(call, runs), 100, None)
    word = query_dense.LOG_WORD

    def loki(run: int) -> None:
        end = END_NS - run * 5 * S
        params = {"query": f'{{service_name="{SERVICE}"}} |= "{word}"', "limit": "100",
                  "start": str(end - HOUR_NS), "end": str(end)}  # fmt: skip
        api.get("/loki/api/v1/query_range", params=params).raise_for_status()

    def logs(run: int) -> None:
        end = END_NS - run * 5 * S
        storage.logs.find_logs(
            LogQuery(service=SERVICE, body_contains=(word,), start_ns=end - HOUR_NS,
                     end_ns=end, limit=100, newest_first=True)
        )  # fmt: skip

    raw = timed(
        lambda: con.execute(
            f"SELECT * FROM logs WHERE service = '{SERVICE}' AND contains(body, '{word}')"
            " AND time_ns + 0 BETWEEN ? AND ? ORDER BY time_ns DESC LIMIT 100",
            [END_NS - HOUR_NS, END_NS],
        ).fetchall(),
        2,
    )
    label = f'LogQL {{service_name="{SERVICE}"}} |= "{word}" limit 100, 1 h'
    report.add(profile, f"{label} (find_logs)", timed_runs(logs, runs), 200, raw)
    report.add(profile, f"{label} (GET /loki/api/v1/query_range)", timed_runs(loki, runs), 200, raw)


def day_questions(
    profile: str,
    storage: DuckDBStorage,
    con: duckdb.DuckDBPyConnection,
    api: httpx.Client,
    report: Report,
) -> None:
    deps = time_dependencies(api)
    raw = timed(
        lambda: con.execute(
            "SELECT p.service, c.service, count(*) FROM spans c JOIN spans p"
            " ON c.trace_hi = p.trace_hi AND c.trace_lo = p.trace_lo AND c.parent_id = p.span_id"
            " WHERE p.service <> c.service GROUP BY ALL"
        ).fetchall(),
        1,
    )
    report.add(profile, "dependencies 24 h (GET /api/dependencies)", deps, 100, raw)
    red_ms = timed(lambda: red(storage.metrics, T0, END_NS + 60 * S), 10)
    raw = timed(
        lambda: con.execute(
            "SELECT service, count(*), count(*) FILTER (status_code = 2),"
            " quantile_cont(duration_ns, [0.5, 0.95, 0.99]) FROM spans WHERE kind = 2"
            " GROUP BY service"
        ).fetchall(),
        1,
    )
    report.add(profile, "RED all services 24 h (query.red)", red_ms, 100, raw)


if __name__ == "__main__":
    main()
