"""DuckDB store: ingest rate, bytes on disk per span, trace-by-id and search latency.

Realistic spans: traces of 8 spans across 12 services (each with its own 6-attribute resource),
8 attributes per span (strings, ints, a bool, a float), one event per span, spread over 1 h and
arriving roughly in time order (as from live services).

    .venv/bin/python benchmarks/store.py [--spans 1000000] [--batch 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, SpanEvent, SpanKind, StatusCode
from meshscope.store.base import TraceQuery
from meshscope.store.duckdb import DuckDBStorage

HOUR_NS = 3600 * 10**9
T0 = 1_700_000_000 * 10**9
_NAMES = "frontend cart checkout payment shipping email ad currency quote recommendation catalog"
SERVICES = [f"svc-{name}" for name in [*_NAMES.split(), "auth"]]
ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/health", "/api/user/{id}"]


def make_spans(count: int, seed: int = 1) -> list[Span]:
    rng = random.Random(seed)
    resources: dict[str, dict[str, AttrValue]] = {
        service: {
            "service.name": service,
            "service.version": "1.4.2",
            "host.name": f"node-{i % 3}",
            "k8s.pod.name": f"{service}-7d9f8c-{i:05d}",
            "k8s.namespace.name": "shop",
            "telemetry.sdk.language": "python",
        }
        for i, service in enumerate(SERVICES)
    }
    spans: list[Span] = []
    traces = count // 8 + 1
    while len(spans) < count:
        trace_id = f"{rng.getrandbits(128):032x}"
        # Spans arrive roughly in time order, as they do from live services.
        start = T0 + len(spans) // 8 * HOUR_NS // traces + rng.randrange(2_000_000_000)
        parent = ""
        for depth in range(8):
            service = SERVICES[(depth * 5 + rng.randrange(3)) % len(SERVICES)]
            span_id = f"{rng.getrandbits(64):016x}"
            duration = rng.randrange(200_000, 80_000_000)
            status = rng.random() < 0.02
            route = rng.choice(ROUTES)
            spans.append(
                Span(
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_span_id=parent,
                    name=f"GET {route}",
                    service=service,
                    start_ns=start + depth * 1_000_000,
                    end_ns=start + depth * 1_000_000 + duration,
                    kind=SpanKind.SERVER if depth % 2 == 0 else SpanKind.CLIENT,
                    status_code=StatusCode.ERROR if status else StatusCode.UNSET,
                    attributes={
                        "http.method": "GET",
                        "http.route": route,
                        "http.status_code": 500 if status else 200,
                        "http.url": f"http://{service}:8080{route}?q={rng.randrange(1000)}",
                        "net.peer.port": rng.randrange(30000, 60000),
                        "user_agent.original": "python-requests/2.31",
                        "sampled": True,
                        "load": round(rng.random(), 3),
                    },
                    events=(SpanEvent(start + depth * 1_000_000 + 1000, "message", {"size": 512}),),
                    resource=resources[service],
                    scope_name="opentelemetry.instrumentation.flask",
                    scope_version="0.45b0",
                )
            )
            parent = span_id
    return spans[:count]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()

    started = time.perf_counter()
    spans = make_spans(args.spans)
    print(f"generated {len(spans):,} spans in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.duckdb"
        storage = DuckDBStorage(path)
        started = time.perf_counter()
        for i in range(0, len(spans), args.batch):
            storage.traces.write_spans(spans[i : i + args.batch])
        elapsed = time.perf_counter() - started
        rate = len(spans) / elapsed
        print(f"ingest: {rate:,.0f} spans/s ({args.batch}-span batches, one commit each)")
        print(f"  vs 40k spans/s target: {rate / 40_000:.2f}x")

        rng = random.Random(2)
        ids = [spans[rng.randrange(len(spans))].trace_id for _ in range(300)]
        latencies = []
        for trace_id in ids:
            t = time.perf_counter()
            found = storage.traces.get_trace(trace_id)
            latencies.append((time.perf_counter() - t) * 1000)
            assert found, trace_id
        print(
            f"get_trace: p50 {statistics.median(latencies):.2f} ms,"
            f" p99 {percentile(latencies, 0.99):.2f} ms (target p99 <= 10 ms)"
        )

        queries = {
            "service, 1 h": TraceQuery(service="svc-cart", start_ns=T0, end_ns=T0 + HOUR_NS),
            "service+op+attr, 1 h": TraceQuery(
                service="svc-cart",
                operation="GET /api/cart",
                attributes={"http.status_code": "500"},
                start_ns=T0,
                end_ns=T0 + HOUR_NS,
            ),
            "resource attr, 1 h": TraceQuery(
                attributes={"k8s.pod.name": "svc-cart-7d9f8c-00001"},
                start_ns=T0,
                end_ns=T0 + HOUR_NS,
            ),
            "errors, min 50 ms, 10 min": TraceQuery(
                errors_only=True,
                min_duration_ns=50_000_000,
                start_ns=T0,
                end_ns=T0 + HOUR_NS // 6,
            ),
        }
        for label, query in queries.items():
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                storage.traces.find_trace_ids(query)
                runs.append((time.perf_counter() - t) * 1000)
            print(f"find_trace_ids [{label}]: median {statistics.median(runs):.1f} ms")

        storage.close()  # checkpoints the log into the file
        size = path.stat().st_size
        wal = path.with_suffix(".duckdb.wal")
        size += wal.stat().st_size if wal.exists() else 0
        print(
            f"on disk: {size / len(spans):.1f} bytes/span (target <= 120), {size / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()
