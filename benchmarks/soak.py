"""Soak: `meshscope serve` on a DuckDB file under mixed traffic for --minutes, at a share of
its capacity, watching that memory stays flat and latency steady.

Traffic, all open-loop (paced, whatever the answers), on loopback only:
- traces: pre-encoded OTLP/HTTP requests of 500 spans re-sent with fresh trace ids and
  current times (the fixed-size id and time fields patched in place), --spans-per-second;
- logs: OTLP/HTTP log requests of 100 records with trace ids, --logs-per-second;
- metrics: one OTLP/HTTP request per second, 200 counter and gauge series;
- queries: Jaeger search, trace by id, PromQL range queries, LogQL and RED over the last
  minutes, --queries-per-second, round robin.

Every --window seconds it prints: acknowledged spans/logs per second, ingest and query latency
(p50, p99), refusals (429/503) and errors, the RSS of the server and its workers, of the owner
alone, what DuckDB accounts for in memory, the trace locator's bytes in memory and the
metric sample cache's (from /metrics). At the end: RSS and latency of the first fifth against
the last fifth of the run, and their ratios.

Usage: .venv/bin/python benchmarks/soak.py [--minutes 30] [--spans-per-second 30000]
"""

from __future__ import annotations

import argparse
import http.client
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlencode

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from ingest import SPANS_PER_REQUEST, Server, process_rss_mib
from meshscope.ingest.loadgen import FreshTraces, build_requests

PROTOBUF = {"Content-Type": "application/x-protobuf"}
LOGS_PER_REQUEST = 100
SERIES = 200


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def log_request(rng: random.Random) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", f"service-{rng.randrange(12)}"))
    records = rl.scope_logs.add().log_records
    now = time.time_ns()
    for i in range(LOGS_PER_REQUEST):
        records.add(
            time_unix_nano=now - i * 1000,
            severity_number=rng.choice((9, 9, 9, 13, 17)),
            body=AnyValue(string_value=f"request {rng.getrandbits(32):08x} handled in {i} ms"),
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
        )
    return request.SerializeToString()


def metric_request(seq: int) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "soak-metrics"))
    metrics = rm.scope_metrics.add().metrics
    now = time.time_ns()
    counter = metrics.add(name="soak_requests")
    counter.sum.is_monotonic = True
    counter.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    gauge = metrics.add(name="soak_queue_depth")
    for i in range(SERIES // 2):
        labels = [_kv("route", f"/r{i}")]
        counter.sum.data_points.add(time_unix_nano=now, as_double=float(seq * (i + 1)),
                                    attributes=labels)  # fmt: skip
        gauge.gauge.data_points.add(time_unix_nano=now, as_double=float(seq % 17),
                                    attributes=labels)  # fmt: skip
    return request.SerializeToString()


def queries(last_trace: list[str]) -> list[str]:
    now_s = time.time()
    minutes = {"start": int((now_s - 300) * 1e6), "end": int(now_s * 1e6)}
    promql = {"start": now_s - 900, "end": now_s, "step": 15}
    logql = {"start": int((now_s - 300) * 1e9), "end": int(now_s * 1e9), "limit": 100}
    out = [
        "/api/traces?" + urlencode({"service": "service-3", "limit": 20, **minutes}),
        "/api/traces?"
        + urlencode({"service": "service-5", "tags": '{"error":"true"}', "limit": 20, **minutes}),
        "/api/v1/query_range?"
        + urlencode({"query": "sum by (service_name) (rate(calls_total[1m]))", **promql}),
        "/api/v1/query_range?"
        + urlencode(
            {
                "query": "histogram_quantile(0.99, sum by (le, "
                "service_name) (rate(duration_milliseconds_bucket[1m])))",
                **promql,
            }
        ),
        "/loki/api/v1/query_range?"
        + urlencode({"query": '{service_name="service-2"} |= "handled"', **logql}),
        "/api/meshscope/red?groupBy=service",
    ]
    if last_trace:
        out.append(f"/api/traces/{last_trace[-1]}")
    return out


class Row(NamedTuple):
    t: float
    spans_s: float
    logs_s: float
    ingest_p50: float
    ingest_p99: float
    query_p50: float
    query_p99: float
    rss_mib: float
    refused: int
    errors: int
    owner_mib: float  # the owner process alone
    duckdb_mib: float  # what DuckDB accounts for (`meshscope_store_duckdb_memory_bytes`)
    locator_mib: float  # what the trace locator holds in memory
    cache_mib: float  # the metric sample cache (`meshscope_store_sample_cache_bytes`)


@dataclass
class Window:
    spans: int = 0
    logs: int = 0
    refused: int = 0
    errors: int = 0
    ingest_ms: list[float] = field(default_factory=list)
    query_ms: list[float] = field(default_factory=list)


@dataclass
class Soak:
    ports: tuple[int, int]  # (otlp http, ui)
    stop_at: float
    window: Window = field(default_factory=Window)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_trace: list[str] = field(default_factory=list)

    def post(self, conn: http.client.HTTPConnection, path: str, body: bytes) -> int:
        began = time.perf_counter()
        try:
            conn.request("POST", path, body, PROTOBUF)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()  # the next request opens a new connection
            status = 0
        took = (time.perf_counter() - began) * 1e3
        with self.lock:
            self.window.ingest_ms.append(took)
            if status in (429, 503):
                self.window.refused += 1
            elif status != 200:
                self.window.errors += 1
        return status

    def paced(self, pace_s: float, offset_s: float, send: object) -> None:
        assert callable(send)
        time.sleep(offset_s)
        next_at = time.monotonic()
        while time.monotonic() < self.stop_at:
            send()
            next_at += pace_s
            time.sleep(max(0.0, next_at - time.monotonic()))


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="meshscope-soak-"))
    print(f"building {args.pool} requests x {SPANS_PER_REQUEST} spans ...", flush=True)
    built = time.time_ns()
    pool = FreshTraces(build_requests(args.pool, SPANS_PER_REQUEST, services=12, seed=3,
                                      base_ns=built - 17 * 60 * 10**9), built)  # fmt: skip
    server = Server(workdir)
    server.start()
    soak = Soak((server.http_port, server.ui_port), time.monotonic() + args.minutes * 60)
    threads: list[threading.Thread] = []

    def trace_sender(number: int, senders: int) -> object:
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
        state = {"index": number}

        def send() -> None:
            index = state["index"]
            state["index"] += senders
            cycle, n = divmod(index, args.pool)
            if soak.post(conn, "/v1/traces", pool.request(n, cycle)) == 200:
                with soak.lock:
                    soak.window.spans += SPANS_PER_REQUEST
                    soak.last_trace[:] = [pool.first_trace_id(n, cycle)]

        return send

    senders = max(1, round(args.spans_per_second / SPANS_PER_REQUEST / 8))
    pace = senders * SPANS_PER_REQUEST / args.spans_per_second
    for i in range(senders):
        threads.append(threading.Thread(target=soak.paced, args=(
            pace, pace * i / senders, trace_sender(i, senders)), daemon=True))  # fmt: skip

    rng = random.Random(5)
    log_conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)

    def send_logs() -> None:
        if soak.post(log_conn, "/v1/logs", log_request(rng)) == 200:
            with soak.lock:
                soak.window.logs += LOGS_PER_REQUEST

    metric_conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    seq = [0]

    def send_metrics() -> None:
        seq[0] += 1
        soak.post(metric_conn, "/v1/metrics", metric_request(seq[0]))

    query_conn = http.client.HTTPConnection("127.0.0.1", server.ui_port, timeout=120)
    turn = [0]

    def send_query() -> None:
        todo = queries(soak.last_trace)
        path = todo[turn[0] % len(todo)]
        turn[0] += 1
        began = time.perf_counter()
        try:
            query_conn.request("GET", path)
            response = query_conn.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            query_conn.close()
            ok = False
        with soak.lock:
            soak.window.query_ms.append((time.perf_counter() - began) * 1e3)
            soak.window.errors += not ok

    threads += [
        threading.Thread(
            target=soak.paced,
            args=(LOGS_PER_REQUEST / args.logs_per_second, 0.1, send_logs),
            daemon=True,
        ),
        threading.Thread(target=soak.paced, args=(1.0, 0.2, send_metrics), daemon=True),
        threading.Thread(
            target=soak.paced, args=(1 / args.queries_per_second, 0.3, send_query), daemon=True
        ),
    ]
    rows: list[Row] = []
    print(f"{'t':>6} {'spans/s':>9} {'logs/s':>7} {'ingest p50/p99 ms':>18} "
          f"{'query p50/p99 ms':>17} {'RSS MiB':>8} {'owner':>6} {'DuckDB':>6} {'locator':>7}"
          f" {'cache':>5} {'429/503':>8} {'errors':>7}")  # fmt: skip
    began = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        while time.monotonic() < soak.stop_at:
            time.sleep(min(args.window, max(0.0, soak.stop_at - time.monotonic())))
            with soak.lock:
                window, soak.window = soak.window, Window()
            rss, owner = server.rss_mib(), process_rss_mib(server.pids()[0])
            duckdb_mib, locator_mib, cache_mib = (
                value / 2**20
                for value in server.gauges(
                    "meshscope_store_duckdb_memory_bytes",
                    "meshscope_store_trace_locator_memory_bytes",
                    "meshscope_store_sample_cache_bytes",
                )
            )
            ingest = _percentiles(window.ingest_ms)
            query = _percentiles(window.query_ms)
            t = time.monotonic() - began
            row = Row(t, window.spans / args.window, window.logs / args.window, *ingest, *query,
                      rss, window.refused, window.errors, owner, duckdb_mib,
                      locator_mib, cache_mib)  # fmt: skip
            rows.append(row)
            print(f"{t:6.0f} {row.spans_s:9,.0f} {row.logs_s:7,.0f} {ingest[0]:8.1f}/"
                  f"{ingest[1]:<9.1f} {query[0]:7.1f}/{query[1]:<9.1f} {rss:8.0f} {owner:6.0f} "
                  f"{duckdb_mib:6.0f} {locator_mib:7.0f} {cache_mib:5.0f} {window.refused:8d}"
                  f" {window.errors:7d}",
                  flush=True)  # fmt: skip
        for thread in threads:
            thread.join(120)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    _summary(rows)


def _percentiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (0.0, 0.0)
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


def _summary(rows: list[Row]) -> None:
    fifth = max(1, len(rows) // 5)
    first, last = rows[:fifth], rows[-fifth:]
    print(f"summary over {rows[-1].t / 60:.1f} min: spans/s "
          f"{statistics.fmean(r.spans_s for r in rows):,.0f}, logs/s "
          f"{statistics.fmean(r.logs_s for r in rows):,.0f}; refused "
          f"{sum(r.refused for r in rows)}, errors {sum(r.errors for r in rows)}")  # fmt: skip
    columns = (("RSS MiB", 7), ("owner RSS MiB", 10), ("DuckDB MiB", 11), ("locator MiB", 12),
               ("sample cache MiB", 13),
               ("ingest p99 ms", 4), ("query p99 ms", 6))  # fmt: skip
    for name, column in columns:
        a = statistics.fmean(r[column] for r in first)
        b = statistics.fmean(r[column] for r in last)
        print(f"  {name}: first fifth {a:,.1f}, last fifth {b:,.1f}, ratio {b / max(a, 1e-9):.2f}"
              f"; max {max(r[column] for r in rows):,.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--spans-per-second", type=float, default=30_000.0)
    parser.add_argument("--logs-per-second", type=float, default=2_000.0)
    parser.add_argument("--queries-per-second", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per printed row")
    parser.add_argument("--pool", type=int, default=400, help="distinct requests to cycle")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
