"""The dense data set of benchmarks/query.py: most spans in the last hour, as when a team
sends what meshscope can take (issue #18).

`--spans` spans over 24 h, 90% of them in the last hour (10M spans: ~2,500 spans/s there),
in traces of 5-50 spans over several of 22 services, every trace id fresh. A trace's spans
arrive as one request per service (as each service's exporter sends them), each some time
after the trace ended, the entry service's (the root) usually last, so a trace's spans land in
several store writes. Requests of ~500 spans are encoded as the ingest workers encode them
(`DuckDBStorage.span_encoder`) and committed 8 at a time (`write_encoded`, the group commit
of the production path), with ~1 log record per 2 spans (trace and span ids, 2% of bodies
saying "timeout"). Span metrics and the service graph are derived as the pipeline does and
flushed every 15 s of simulated time in the last hour, every 5 min before (the UI's views
read them), from one trace in DERIVE_EVERY only: in Python they cost ~150 us/span, and the
reads of the UI's views depend on the number of series and steps, not on the counts in them.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from pathlib import Path

from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord, Severity
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.derive.registry import MetricsRegistry
from meshscope.pipeline.derive.servicegraph import ServiceGraphMetrics, SpanPairer
from meshscope.pipeline.derive.spanmetrics import SpanMetrics
from meshscope.store.base import Operation
from meshscope.store.duckdb import DuckDBStorage
from query_data import DAY_NS, FLUSH_NS, MS, ROUTES, SERVICES, T0, TIERS, S

END_NS = T0 + DAY_NS
HOUR_NS = 3600 * S
DENSE_SHARE = 0.9  # of the spans, in the last hour
REQUEST_SPANS = 500
GROUP_REQUESTS = 8
ENTRIES = SERVICES[:2]
CALLEES = SERVICES[2:]
LOG_WORD = "timeout"
DERIVE_EVERY = 20
SPARSE_FLUSH_NS = 300 * S  # before the last hour (each flush is a commit: 24 h of 15 s is slow)


class DenseTraces:
    """Traces of 5-50 spans (mean ~20): an entry SERVER span, calls (a CLIENT span and the
    callee's SERVER span) and database spans, each under a random earlier server span."""

    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.resources: dict[str, dict[str, AttrValue]] = {
            service: {
                "service.name": service,
                "service.version": "3.4.1",
                "k8s.pod.name": f"{service}-7d8f-{i:04d}",
                "k8s.namespace.name": "shop",
            }
            for i, service in enumerate(SERVICES)
        }

    def trace(self, start_ns: int) -> list[Span]:
        rng = self.rng
        size = 5 + int(45 * rng.random() ** 2)
        trace_id = f"{rng.getrandbits(128):032x}"
        tier = rng.choice(TIERS)
        duration = int(rng.lognormvariate(3.0, 0.7) * MS)
        root = self._span(trace_id, "", rng.choice(ENTRIES), rng.choice(ROUTES),
                          SpanKind.SERVER, start_ns, duration, tier)  # fmt: skip
        spans = [root]
        servers = [root]
        while len(spans) < size:
            parent = rng.choice(servers)
            at = parent.start_ns + int(rng.random() * parent.duration_ns * 0.5)
            length = max(1000, int(parent.duration_ns * rng.random() * 0.45))
            if rng.random() < 0.25:
                db = self._span(trace_id, parent.span_id, parent.service, "SELECT orders",
                                SpanKind.CLIENT, at, length, tier, db=True)  # fmt: skip
                spans.append(db)
                continue
            callee = rng.choice(CALLEES)
            op = f"{rng.choice(('GET', 'POST'))} /{callee}"
            client = self._span(trace_id, parent.span_id, parent.service, op, SpanKind.CLIENT,
                                at, length, tier)  # fmt: skip
            server = self._span(trace_id, client.span_id, callee, op, SpanKind.SERVER,
                                at + 50_000, max(500, length - 100_000), tier)  # fmt: skip
            spans += [client, server]
            servers.append(server)
        return spans

    def _span(
        self,
        trace_id: str,
        parent: str,
        service: str,
        name: str,
        kind: SpanKind,
        start: int,
        duration: int,
        tier: str,
        db: bool = False,
    ) -> Span:
        error = self.rng.random() < 0.01
        method, _, route = name.partition(" ")
        attributes: dict[str, AttrValue] = (
            {"db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = ?"}
            if db
            else {"http.method": method, "http.route": route,
                  "http.status_code": 500 if error else 200, "net.peer.port": 8080}
        )  # fmt: skip
        attributes["customer.tier"] = tier
        return Span(
            trace_id=trace_id,
            span_id=f"{self.rng.getrandbits(64):016x}",
            parent_span_id=parent,
            name=name,
            service=service,
            start_ns=start,
            end_ns=start + duration,
            kind=kind,
            status_code=StatusCode.ERROR if error else StatusCode.UNSET,
            attributes=attributes,
            resource=self.resources[service],
            scope_name="opentelemetry.instrumentation.flask",
        )

    def logs(self, spans: list[Span]) -> list[LogRecord]:
        """About one record per two spans, at the span's start, in its service."""
        rng = self.rng
        out = []
        for span in spans:
            if rng.random() >= 0.5:
                continue
            slow = rng.random() < 0.02
            body = (
                f"upstream {LOG_WORD} after {span.duration_ns // MS} ms calling {span.name}"
                if slow
                else f"{span.name} handled in {span.duration_ns // MS} ms"
                f" order={rng.randrange(10**6)}"
            )
            out.append(
                LogRecord(
                    time_ns=span.start_ns + 1000,
                    body=body,
                    service=span.service,
                    severity=Severity.WARN if slow else Severity.INFO,
                    severity_text="WARN" if slow else "INFO",
                    trace_id=span.trace_id,
                    span_id=span.span_id,
                    attributes={"thread.name": f"worker-{rng.randrange(8)}"},
                    resource=self.resources[span.service],
                )
            )
        return out


def trace_starts(spans_wanted: int, mean_spans: float = 20.0) -> list[int]:
    """Start times in order: DENSE_SHARE of the traces in the last hour, the rest before."""
    traces = int(spans_wanted / mean_spans)
    dense = int(traces * DENSE_SHARE)
    sparse = traces - dense
    before = DAY_NS - HOUR_NS
    return [T0 + i * before // max(1, sparse) for i in range(sparse)] + [
        END_NS - HOUR_NS + i * HOUR_NS // max(1, dense) for i in range(dense)
    ]


def load(path: Path, spans_wanted: int) -> DuckDBStorage:
    """Open `path`, filling it first unless it already holds about `spans_wanted` spans."""
    storage = DuckDBStorage(path)
    have = sum(storage.traces.span_counts().values())
    if have >= spans_wanted * 0.9:
        print(f"reusing {path} ({have:,} spans)")
        return storage
    storage.close()
    path.unlink(missing_ok=True)
    storage = DuckDBStorage(path)
    fill(storage, spans_wanted)
    return storage


def fill(storage: DuckDBStorage, spans_wanted: int) -> None:
    maker = DenseTraces()
    registry = MetricsRegistry()
    span_metrics, graph = SpanMetrics(registry), ServiceGraphMetrics(registry)
    pairer = SpanPairer()
    # (arrival, order, one request's spans, derive metrics from them)
    arrivals: list[tuple[int, int, list[Span], bool]] = []
    order = itertools.count()
    group: list[list[Span]] = []
    request: list[Span] = []
    written = 0
    started = time.perf_counter()
    flush_at = T0 + FLUSH_NS

    def commit() -> None:
        nonlocal written, group
        spans = [span for part in group for span in part]
        ops = dict.fromkeys(Operation(s.service, s.name, s.kind) for s in spans)
        storage.write_encoded(
            [storage.span_encoder(part) for part in group],
            logs=maker.logs(spans),
            operations=list(ops),
        )
        written += len(spans)
        group = []
        rate = written / (time.perf_counter() - started)
        print(f"\r  loaded {written:,} spans ({rate:,.0f}/s)", end="", flush=True)

    def arrive(spans: list[Span], now: int, derive: bool) -> None:
        nonlocal request
        if derive:
            graph.observe(pairer.add(spans, now))
            span_metrics.observe(spans)
        request += spans
        if len(request) >= REQUEST_SPANS:
            group.append(request)
            request = []
            if len(group) >= GROUP_REQUESTS:
                commit()

    for number, start in enumerate(trace_starts(spans_wanted)):
        while arrivals and arrivals[0][0] <= start:
            arrive(*_next(arrivals))
        while start >= flush_at:
            graph.observe(pairer.expire(flush_at))
            storage.metrics.write_points(registry.collect(flush_at))
            flush_at += FLUSH_NS if flush_at >= END_NS - HOUR_NS else SPARSE_FLUSH_NS
        spans = maker.trace(start)
        by_service: dict[str, list[Span]] = {}
        for span in spans:
            by_service.setdefault(span.service, []).append(span)
        for service, part in by_service.items():
            # Each service exports after its last span ended; the root's request comes last.
            end = max(s.end_ns for s in part) + int(maker.rng.random() * 2 * S)
            if service == spans[0].service:
                end = max(end, spans[0].end_ns + 2 * S)
            heapq.heappush(arrivals, (end, next(order), part, number % DERIVE_EVERY == 0))
    while arrivals:
        arrive(*_next(arrivals))
    if request:
        group.append(request)
    if group:
        commit()
    graph.observe(pairer.expire(flush_at))
    storage.metrics.write_points(registry.collect(flush_at))
    print(f"\nloaded {written:,} spans in {time.perf_counter() - started:.0f} s")


def _next(arrivals: list[tuple[int, int, list[Span], bool]]) -> tuple[list[Span], int, bool]:
    when, _, spans, derive = heapq.heappop(arrivals)
    return spans, when, derive
