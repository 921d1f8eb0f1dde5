"""Derived metrics across nodes: two nodes each deriving from the traces they own give the
single node's answers (RED, service graph, SLOs, PromQL sums), rate per node then summed."""

from __future__ import annotations

import pytest

from meshscope.clock import ManualClock
from meshscope.cluster.config import NODE_LABEL
from meshscope.cluster.ring import Ring
from meshscope.ingest.otlp import decode_otlp
from meshscope.model.spans import SpanKind
from meshscope.pipeline.chain import Pipeline, PipelineSettings
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import Vector
from meshscope.query.red import red
from meshscope.query.servicegraph import service_graph
from meshscope.query.slo import evaluate
from meshscope.query.slo_config import parse_slos
from meshscope.store.memory import MemoryStorage
from tests.cluster.traces import Call, calls, request

START = 1_700_000_000_000_000_000
RING = Ring.of(["a", "b"])


def _owner(call: Call) -> str:
    return RING.owner(int.from_bytes(call.trace_id[8:], "big"))


def _run(pipelines: dict[str, Pipeline], clock: ManualClock, rounds: list[list[Call]]) -> None:
    """Each round: every pipeline consumes the calls it owns (all of them if alone), then 15 s
    pass and every pipeline flushes, like the server's flush interval."""
    for made in rounds:
        for node, pipeline in pipelines.items():
            mine = [c for c in made if len(pipelines) == 1 or _owner(c) == node]
            if mine:
                pipeline.consume(decode_otlp("traces", request(mine)).batch)
        clock.advance(15)
        for pipeline in pipelines.values():
            pipeline.flush()


@pytest.fixture(scope="module")
def stores() -> tuple[MemoryStorage, MemoryStorage]:
    rounds = [calls(30 + 10 * i, seed=i, now_ns=START + i * 15 * 10**9) for i in range(8)]
    single, cluster = MemoryStorage(), MemoryStorage()
    clock = ManualClock(START)
    _run({"one": Pipeline(single, clock)}, clock, rounds)
    clock = ManualClock(START)
    pipelines = {
        node: Pipeline(cluster, clock, PipelineSettings(series_labels=((NODE_LABEL, node),)))
        for node in ("a", "b")
    }
    _run(pipelines, clock, rounds)
    return single, cluster


END = START + 8 * 15 * 10**9


def test_series_carry_the_node_label(stores: tuple[MemoryStorage, MemoryStorage]) -> None:
    _, cluster = stores
    nodes = {
        dict(s.labels).get(NODE_LABEL) for s in cluster.metrics.select("calls_total", [], 0, END)
    }
    assert nodes == {"a", "b"}


def test_red_is_the_same(stores: tuple[MemoryStorage, MemoryStorage]) -> None:
    single, cluster = stores
    for by_operation in (False, True):
        want = red(single.metrics, START, END, by_operation=by_operation)
        got = red(cluster.metrics, START, END, by_operation=by_operation)
        assert [(r.service, r.operation) for r in got] == [(r.service, r.operation) for r in want]
        for a, b in zip(got, want, strict=True):
            assert a.calls == pytest.approx(b.calls) and a.errors == pytest.approx(b.errors)
            assert a.rate == pytest.approx(b.rate)
            assert a.p50_ms == pytest.approx(b.p50_ms, rel=0.05)
            assert a.p99_ms == pytest.approx(b.p99_ms, rel=0.05)
    client = red(cluster.metrics, START, END, kind=SpanKind.CLIENT)
    assert [r.calls for r in client] == [
        r.calls for r in red(single.metrics, START, END, kind=SpanKind.CLIENT)
    ]


def test_the_service_graph_is_the_same(stores: tuple[MemoryStorage, MemoryStorage]) -> None:
    single, cluster = stores
    assert service_graph(cluster, START, END) == service_graph(single, START, END)
    assert [e.request_count for e in service_graph(cluster, START, END).edges] == [
        sum(30 + 10 * i for i in range(8))
    ]


def test_promql_sums_are_the_same(stores: tuple[MemoryStorage, MemoryStorage]) -> None:
    single, cluster = stores
    end_ms = END // 10**6
    for query in (
        "sum(rate(calls_total[2m]))",
        'sum by (service_name) (increase(calls_total{status_code="STATUS_CODE_ERROR"}[2m]))',
        "histogram_quantile(0.9, sum by (le) (rate(duration_milliseconds_bucket[2m])))",
        "sum(rate(traces_service_graph_request_total[2m]))",
    ):
        want = Engine(MetricStoreQueryable(single.metrics)).instant(query, end_ms)
        got = Engine(MetricStoreQueryable(cluster.metrics)).instant(query, end_ms)
        assert isinstance(got, Vector) and isinstance(want, Vector)
        assert got.samples, query
        assert [s.labels for s in got.samples] == [s.labels for s in want.samples], query
        for a, b in zip(got.samples, want.samples, strict=True):
            assert a.v == pytest.approx(b.v), query


def test_slos_are_the_same(stores: tuple[MemoryStorage, MemoryStorage]) -> None:
    single, cluster = stores
    [slo] = parse_slos([{"service": "backend", "objective": 0.9}])
    want, got = evaluate(single.metrics, slo, END), evaluate(cluster.metrics, slo, END)
    assert got == want
