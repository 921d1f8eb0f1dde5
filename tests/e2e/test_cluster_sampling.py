"""Spans of every trace sprayed at random over a real cluster by the real OpenTelemetry SDK,
with tail sampling on: the cluster gives the single node's answers.

Two ClickHouse 18.16 shards and three `meshscope serve` nodes, all with the same tail-sampling
policies (keep traces with an error, keep traces slower than 500 ms, drop the rest), and one
single node (memory store) with the same policies. Three services, each its own SDK
`TracerProvider`, make 5-span call chains (frontend -> backend -> db); each ended span goes to
one of the nodes at random, over OTLP/HTTP or OTLP/gRPC (the SDK's batch processors and
exporters; only the choice of node is the test's), as behind a load balancer that knows
nothing of traces, and every span also goes to the single node. Then: every error and slow
trace is kept whole (all 5 spans, on one shard) and every other trace dropped, read from any
node; the service graph's edge counts, `calls_total` per service and the tail-sampling
decisions equal the single node's; no trace was split (`meshscope_cluster_split_traces`)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_cluster import (
    NODES,
    Nodes,
    _get,
    running_nodes,
    spans_by_shard,
)
from tests.e2e.test_durability import Ports
from tests.serving import wait_for

TRACES = 60
SERVICES = ("sdk-frontend", "sdk-backend", "sdk-db")
SAMPLING = """
sampling:
  tail:
    enabled: true
    decision_wait_seconds: 4
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: 500}
"""


def failed(index: int) -> bool:
    return index % 5 == 0


def slow(index: int) -> bool:
    return index % 7 == 3


def _kept(index: int) -> bool:
    return failed(index) or slow(index)


KEPT = sum(map(_kept, range(TRACES)))  # 19: 12 failed, 9 slow, 2 both


class Spray(SpanProcessor):
    """Hands each ended span to one of `processors` at random: a trace's spans reach
    different nodes."""

    def __init__(self, processors: Sequence[SpanProcessor], rng: random.Random) -> None:
        self.processors = processors
        self.rng = rng

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.rng.choice(self.processors).on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.processors)


@dataclass
class Sprayed(Nodes):
    trace_ids: list[str]  # by index: failed(i) and slow(i) say which are kept


def _exporters(ports: Ports) -> list[SpanExporter]:
    return [
        HttpSpanExporter(f"http://127.0.0.1:{ports.otlp_http}/v1/traces", timeout=30),
        GrpcSpanExporter(f"http://127.0.0.1:{ports.otlp_grpc}", insecure=True, timeout=30),
    ]


def _send(ports: dict[str, Ports], single: Ports) -> list[str]:
    """The call chains, through the SDK: their trace ids."""
    rng = random.Random(7)
    providers = {}
    for service in SERVICES:
        provider = TracerProvider(resource=Resource({"service.name": service}))
        nodes = [BatchSpanProcessor(e) for node in NODES for e in _exporters(ports[node])]
        provider.add_span_processor(Spray(nodes, rng))
        provider.add_span_processor(BatchSpanProcessor(_exporters(single)[0]))
        providers[service] = provider
    front, back, db = (providers[s].get_tracer("tests.e2e.sampling") for s in SERVICES)
    ms = 1_000_000
    base = time.time_ns() - 120 * 10**9
    trace_ids = []
    for index in range(TRACES):
        start = base + index * 1000 * ms
        took = 600 * ms if slow(index) else 5 * ms
        root = front.start_span("GET /checkout", kind=SpanKind.SERVER, start_time=start)
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        spans = [root]
        parent: Any = root
        for tracer, name, kind in [
            (front, "POST /pay", SpanKind.CLIENT),
            (back, "POST /pay", SpanKind.SERVER),
            (back, "SELECT orders", SpanKind.CLIENT),
            (db, "SELECT orders", SpanKind.SERVER),
        ]:
            context = trace.set_span_in_context(parent)
            start += ms
            parent = tracer.start_span(name, context=context, kind=kind, start_time=start)
            spans.append(parent)
        if failed(index):
            spans[2].set_status(Status(StatusCode.ERROR, "payment declined"))
        end = start + took
        for span in reversed(spans):
            end += ms
            span.end(end_time=end)
    for provider in providers.values():
        assert provider.force_flush(60_000)
        provider.shutdown()
    return trace_ids


@pytest.fixture(scope="module")
def sprayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sprayed]:
    directory = tmp_path_factory.mktemp("sprayed")
    config = directory / "sampling.yaml"
    config.write_text(SAMPLING)
    with running_nodes(directory, config) as nodes:
        trace_ids = _send(nodes.ports, nodes.single)
        yield Sprayed(nodes.ports, nodes.single, nodes.processes, nodes.shards, nodes.database,
                      trace_ids)  # fmt: skip


def _spans(port: int, trace_id: str) -> int:
    status, found = _get(port, f"/api/traces/{trace_id}")
    if status == 404:
        return 0
    assert status == 200, found
    return sum(len(t["spans"]) for t in found["data"])


def test_error_and_slow_traces_are_kept_whole_and_the_rest_dropped(sprayed: Sprayed) -> None:
    kept = [t for i, t in enumerate(sprayed.trace_ids) if _kept(i)]
    dropped = [t for i, t in enumerate(sprayed.trace_ids) if not _kept(i)]
    assert (len(kept), len(dropped)) == (KEPT, TRACES - KEPT)
    ports = [sprayed.single.ui] + [sprayed.ports[n].ui for n in NODES]
    for port in ports:  # each trace is decided 4 s after its owner saw its first span
        assert wait_for(lambda p=port: all(_spans(p, t) == 5 for t in kept)), port
    for port in ports:
        assert [t for t in dropped if _spans(port, t)] == [], port
    # Each kept trace on one shard (shard trace_hi % 2), whole.
    placed = spans_by_shard(sprayed)
    assert sorted(placed) == sorted(int(t[:16], 16) for t in kept)
    assert all(where == [(hi % 2, 5)] for hi, where in placed.items())


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = _get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _decisions(port: int) -> dict[str, float]:
    found = _metrics(port)
    return {
        dict(labels)["decision"]: value
        for (name, labels), value in found.items()
        if name == "meshscope_tail_sampling_traces_total"
    }


def test_sampling_decisions_and_split_traces(sprayed: Sprayed) -> None:
    """Every trace decided once, on its owner: the nodes' decisions add up to the single
    node's; no trace split."""
    want = {"sampled": KEPT, "not_sampled": TRACES - KEPT}
    assert wait_for(lambda: _decisions(sprayed.single.ui) == want), _decisions(sprayed.single.ui)
    single = _decisions(sprayed.single.ui)

    def cluster_total() -> dict[str, float]:
        total: dict[str, float] = {}
        for node in NODES:
            for decision, value in _decisions(sprayed.ports[node].ui).items():
                total[decision] = total.get(decision, 0) + value
        return total

    assert wait_for(lambda: cluster_total() == single), cluster_total()
    for node in NODES:
        found = _metrics(sprayed.ports[node].ui)
        assert found["meshscope_cluster_split_traces_total", ()] == 0, node
    assert sum(_metrics(sprayed.ports[n].ui)[
        "meshscope_cluster_split_requests_total", ()] for n in NODES) > 0  # fmt: skip


def test_edges_and_calls_per_service_equal_the_single_node(sprayed: Sprayed) -> None:
    def edges(port: int) -> list[tuple[str, str, int, int]]:
        status, graph = _get(port, "/api/meshscope/graph")
        assert status == 200
        return sorted(
            (e["source"], e["target"], e["calls"], e["errors"]) for e in graph["data"]["edges"]
        )

    def calls(port: int) -> list[tuple[str, str]]:
        query = "/api/v1/query?query=sum%20by%20(service_name)%20(calls_total)"
        status, found = _get(port, query)
        assert status == 200
        return sorted((r["metric"]["service_name"], r["value"][1]) for r in found["data"]["result"])

    want_edges = [
        ("sdk-backend", "sdk-db", TRACES, 0),
        ("sdk-frontend", "sdk-backend", TRACES, TRACES // 5),
    ]
    single = sprayed.single.ui
    assert wait_for(lambda: edges(single) == want_edges), edges(single)
    want_calls = [("sdk-backend", "120"), ("sdk-db", "60"), ("sdk-frontend", "120")]
    assert wait_for(lambda: calls(single) == want_calls), calls(single)
    for node in NODES:
        port = sprayed.ports[node].ui
        assert wait_for(lambda p=port: edges(p) == want_edges), (node, edges(port))
        assert wait_for(lambda p=port: calls(p) == want_calls), (node, calls(port))
