"""The data set of benchmarks/query.py (a DuckDB file) and clickhouse_query.py: traces of 20+
services over 24 h.

Every 15 s of simulated time the traces started in it go through the real derivers (span
metrics, service-graph pairing) as the pipeline runs them, the registry is collected into the
metric store (as the writer's flush does), and spans are written through the store's write
path in big batches (one Arrow insert each). The file is reused when it already holds the
requested number of spans, so only the first run pays for loading.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.registry import MetricsRegistry
from meshscope.pipeline.derive.servicegraph import ServiceGraphMetrics, SpanPairer
from meshscope.pipeline.derive.spanmetrics import SpanMetrics
from meshscope.store.base import Operation, Storage
from meshscope.store.duckdb import DuckDBStorage

S = 10**9
MS = 10**6
T0 = 1_700_000_000 * S
DAY_NS = 24 * 3600 * S
FLUSH_NS = 15 * S
ENTRY = "frontend"
SERVICES = [
    ENTRY, "gateway", "cart", "checkout", "payment", "shipping", "email", "ad", "currency",
    "quote", "recommendation", "catalog", "auth", "user", "inventory", "pricing", "search",
    "review", "notification", "fraud", "ledger", "tax",
]  # fmt: skip
ROUTES = ["GET /api/cart", "POST /api/checkout", "GET /api/products/{id}", "GET /api/search"]
TIERS = ["free", "pro", "enterprise"]


class TraceMaker:
    """Traces of 9 spans: an entry SERVER span calling two services, each calling a third."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.resources: dict[str, dict[str, AttrValue]] = {
            service: {
                "service.name": service,
                "service.version": "2.1.0",
                "k8s.pod.name": f"{service}-6c9f-{i:04d}",
                "k8s.namespace.name": "shop",
            }
            for i, service in enumerate(SERVICES)
        }

    def trace(self, start_ns: int) -> list[Span]:
        rng = self.rng
        trace_id = f"{rng.getrandbits(128):032x}"
        route = rng.choice(ROUTES)
        tier = rng.choice(TIERS)
        spans: list[Span] = []
        root_id = f"{rng.getrandbits(64):016x}"
        at = start_ns + 200_000
        failed = False
        for _ in range(2):
            middle = rng.choice(SERVICES[1:11])
            leaf = rng.choice(SERVICES[11:])
            end, error = self._call(spans, trace_id, root_id, ENTRY, middle, leaf, at, tier)
            at = end + 100_000
            failed = failed or error
        spans.insert(0, self._span(trace_id, root_id, "", ENTRY, route, SpanKind.SERVER,
                                   start_ns, at + 300_000, failed, tier))  # fmt: skip
        return spans

    def _call(
        self,
        spans: list[Span],
        trace_id: str,
        parent: str,
        caller: str,
        middle: str,
        leaf: str,
        start: int,
        tier: str,
    ) -> tuple[int, bool]:
        rng = self.rng
        ids = [f"{rng.getrandbits(64):016x}" for _ in range(4)]
        leaf_error = rng.random() < 0.02
        leaf_start = start + 600_000
        leaf_end = leaf_start + int(rng.lognormvariate(2.0, 0.8) * MS)
        middle_end = leaf_end + 500_000 + rng.randrange(5 * MS)
        middle_op, leaf_op = f"GET /{middle}", f"GET /{leaf}"
        spans += [
            self._span(trace_id, ids[0], parent, caller, middle_op, SpanKind.CLIENT,
                       start, middle_end + 200_000, leaf_error, tier),
            self._span(trace_id, ids[1], ids[0], middle, middle_op, SpanKind.SERVER,
                       start + 100_000, middle_end, leaf_error, tier),
            self._span(trace_id, ids[2], ids[1], middle, leaf_op, SpanKind.CLIENT,
                       leaf_start - 100_000, leaf_end + 100_000, leaf_error, tier),
            self._span(trace_id, ids[3], ids[2], leaf, leaf_op, SpanKind.SERVER,
                       leaf_start, leaf_end, leaf_error, tier),
        ]  # fmt: skip
        return middle_end + 200_000, leaf_error

    def _span(
        self,
        trace_id: str,
        span_id: str,
        parent: str,
        service: str,
        name: str,
        kind: SpanKind,
        start: int,
        end: int,
        error: bool,
        tier: str,
    ) -> Span:
        return Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            service=service,
            start_ns=start,
            end_ns=end,
            kind=kind,
            status_code=StatusCode.ERROR if error else StatusCode.UNSET,
            attributes={
                "http.method": name.split(" ")[0],
                "http.route": name.split(" ")[1],
                "http.status_code": 500 if error else 200,
                "customer.tier": tier,
                "net.peer.port": 8080,
            },
            resource=self.resources[service],
            scope_name="opentelemetry.instrumentation.flask",
        )


def load(path: Path, spans_wanted: int, batch_spans: int = 100_000) -> DuckDBStorage:
    """Open `path`, loading `spans_wanted` spans over 24 h first unless it already has them."""
    storage = DuckDBStorage(path)
    have = sum(storage.traces.span_counts().values())
    if have >= spans_wanted // 9 * 9:  # whole traces of 9 spans
        print(f"reusing {path} ({have:,} spans)")
        return storage
    if have:
        storage.close()
        path.unlink()
        storage = DuckDBStorage(path)
    fill(storage, spans_wanted, batch_spans)
    return storage


def fill(storage: Storage, spans_wanted: int, batch_spans: int = 100_000) -> None:
    """Write `spans_wanted` spans over 24 h, with their span metrics and service graph."""
    maker = TraceMaker()
    registry = MetricsRegistry()
    span_metrics, graph = SpanMetrics(registry), ServiceGraphMetrics(registry)
    pairer = SpanPairer()
    traces = spans_wanted // 9
    pending: list[Span] = []
    written = 0
    started = time.perf_counter()
    flush_at = T0 + FLUSH_NS
    for i in range(traces):
        start = T0 + i * DAY_NS // traces
        while start >= flush_at:
            _flush(storage, registry, graph, pairer, flush_at)
            flush_at += FLUSH_NS
        spans = maker.trace(start)
        graph.observe(pairer.add(spans, start))
        span_metrics.observe(spans)
        pending += spans
        if len(pending) >= batch_spans:
            written += _write(storage, pending)
            pending = []
            rate = written / (time.perf_counter() - started)
            print(f"\r  loaded {written:,} spans ({rate:,.0f}/s)", end="", flush=True)
    written += _write(storage, pending)
    _flush(storage, registry, graph, pairer, flush_at)
    print(f"\nloaded {written:,} spans in {time.perf_counter() - started:.0f} s")


def _write(storage: Storage, spans: list[Span]) -> int:
    ops = dict.fromkeys(Operation(s.service, s.name, s.kind) for s in spans)
    storage.write_batch(spans=spans, operations=list(ops))
    return len(spans)


def _flush(
    storage: Storage,
    registry: MetricsRegistry,
    graph: ServiceGraphMetrics,
    pairer: SpanPairer,
    now_ns: int,
) -> None:
    graph.observe(pairer.expire(now_ns))
    storage.metrics.write_points(registry.collect(now_ns))
