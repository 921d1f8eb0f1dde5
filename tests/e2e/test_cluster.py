"""A real cluster on loopback: two ClickHouse 18.16 shards (the `mesh` cluster of
tests/conformance/clickhouse_server.py) and three `meshscope serve` processes, plus one
single node (memory store) given the same data for the single-node answers.

The spans of each trace are sent to different nodes (the frontend's to n1 over OTLP/HTTP,
the backend's to n2 over OTLP/HTTP and to n3 over OTLP/gRPC); over the shared shards each
node stores the spans it receives and sends the trace's owner their pairing records, so each
call is paired into exactly one service-graph edge, and each trace is stored on one shard.
Every node then answers every read, and RED from any node equals the single node's; the real
OTel SDK (HTTP and gRPC exporters) is a client too. The tests run in file order (the
comparisons before the SDK's traffic); last, an owner is killed (SIGKILL): requests with
its traces get 503."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from meshscope.cluster.ring import Ring
from tests.cluster.traces import Call, calls, logs_request, request
from tests.conformance import clickhouse_server
from tests.e2e.test_durability import Ports, serve
from tests.serving import wait_for

NODES = ("n1", "n2", "n3")
CALLS = 60
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class Nodes:
    """Three cluster nodes over the two shards and one single node (memory store), running."""

    ports: dict[str, Ports]
    single: Ports
    processes: dict[str, Any]
    shards: list[str]
    database: str


@dataclass
class Cluster(Nodes):
    made: list[Call]


def _get(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    return response.status, json.loads(body) if body[:1] in (b"{", b"[") else body.decode()


def _post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    response.read()
    return response.status


def node_settings(
    node: str, ports: dict[str, Ports], shards: list[str], db: str, **more: str
) -> dict[str, str]:
    """A cluster node's settings over the ClickHouse shards (`more`: other MESHSCOPE_* ones)."""
    peers = [{"id": n, "url": f"http://127.0.0.1:{p.ui}"} for n, p in ports.items()]
    return {
        "MESHSCOPE_STORAGE__KIND": "clickhouse",
        "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": db,
        "MESHSCOPE_PIPELINE__INGEST_WORKERS": "1",
        "MESHSCOPE_PIPELINE__FLUSH_INTERVAL_SECONDS": "1",
        "MESHSCOPE_CLUSTER__NODE_ID": node,
        "MESHSCOPE_CLUSTER__PEERS": json.dumps(peers),
        "MESHSCOPE_CLUSTER__SHARDS": json.dumps(shards),
        "MESHSCOPE_CLUSTER__CLICKHOUSE_CLUSTER": clickhouse_server.CLUSTER,
        "MESHSCOPE_CLUSTER__FORWARD_TIMEOUT_SECONDS": "5",
        **more,
    }


@contextmanager
def running_nodes(directory: Path, config: Path | None = None) -> Iterator[Nodes]:
    """Start `Nodes` in `directory` (all with the config file `config`, if any), each
    cluster node with `node_settings`; skips the test where no ClickHouse server can run.
    Afterwards the nodes are stopped and the test's databases dropped from the shards."""
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    shards = clickhouse_server.shard_dsns()
    database = clickhouse_server.database_for(directory)
    ports = {node: Ports() for node in NODES}
    single = Ports()
    try:
        with ExitStack() as stack:
            processes = {}
            for node in NODES:
                home = directory / node
                home.mkdir()
                settings = node_settings(node, ports, shards, database)
                processes[node] = stack.enter_context(
                    serve(home / "unused.duckdb", ports[node], settings, config)
                )
            home = directory / "single"
            home.mkdir()
            memory = {
                "MESHSCOPE_STORAGE__KIND": "memory",
                "MESHSCOPE_PIPELINE__FLUSH_INTERVAL_SECONDS": "1",
            }
            stack.enter_context(serve(home / "unused.duckdb", single, memory, config))
            yield Nodes(ports, single, processes, shards, database)
    finally:
        clickhouse_server.drop_cluster_database(shards, database)


def spans_by_shard(nodes: Nodes) -> dict[int, list[tuple[int, int]]]:
    """Per trace (its id's high 64 bits): the shards holding spans of it, with how many."""
    from clickhouse_driver import Client

    placed: dict[int, list[tuple[int, int]]] = {}
    for index, dsn in enumerate(nodes.shards):
        client = Client.from_url(dsn)
        rows = client.execute(
            f"SELECT trace_hi, count() FROM {nodes.database}.trace_spans GROUP BY trace_hi"
        )
        client.disconnect()
        for hi, count in rows:
            placed.setdefault(hi, []).append((index, count))
    return placed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The nodes, with the same calls sent whole to the single node and sprayed over the
    cluster (each test can run alone): the frontend's spans to n1, the backend's half to n2
    over OTLP/HTTP and half to n3 over OTLP/gRPC."""
    with running_nodes(tmp_path_factory.mktemp("cluster")) as nodes:
        made = calls(CALLS)
        assert _post(nodes.single.otlp_http, request(made)) == 200
        ports, half = nodes.ports, CALLS // 2
        assert _post(ports["n1"].otlp_http, request(made, ("frontend",))) == 200
        assert _post(ports["n2"].otlp_http, request(made[:half], ("backend",))) == 200
        with grpc.insecure_channel(f"127.0.0.1:{ports['n3'].otlp_grpc}") as channel:
            export = channel.unary_unary(TRACE_EXPORT)
            export(request(made[half:], ("backend",)), timeout=30)
        yield Cluster(nodes.ports, nodes.single, nodes.processes, nodes.shards, nodes.database,
                      made)  # fmt: skip


def _edges(port: int) -> list[dict[str, Any]]:
    status, graph = _get(port, "/api/meshscope/graph")
    assert status == 200
    return list(graph["data"]["edges"])


def test_spans_sent_to_different_nodes_pair_into_one_edge_and_live_on_one_shard(
    cluster: Cluster,
) -> None:
    ports = cluster.ports  # the fixture sprayed the calls' spans over the three nodes
    for node in NODES:
        edges = wait_for(lambda n=node: [e for e in _edges(ports[n].ui) if e["calls"] == CALLS])
        assert len(_edges(ports[node].ui)) == 1, node
        assert edges and edges[0]["source"] == "frontend" and edges[0]["target"] == "backend"
        assert edges[0]["errors"] == CALLS // 5
    # Each trace on one shard, whole: shard trace_hi % 2.
    placed = spans_by_shard(cluster)
    assert len(placed) == CALLS
    assert all(where == [(hi % 2, 3)] for hi, where in placed.items())
    # Pairing records were forwarded between the nodes, and only they: the spans were
    # stored by the nodes that received them (ADR 0015, revision 2026-12-07).
    _, metrics = _get(ports["n1"].ui, "/metrics")
    assert "meshscope_cluster_split_requests_total" in metrics
    forwarded = [
        line
        for node in NODES
        for line in _get(ports[node].ui, "/metrics")[1].splitlines()
        if line.startswith("meshscope_cluster_forwarded_items_total{")
    ]
    assert forwarded and all('kind="sides"' in line for line in forwarded), forwarded


def test_every_acknowledged_span_is_readable_from_every_node(cluster: Cluster) -> None:
    for call in cluster.made[:: CALLS // 10]:
        for node in NODES:
            status, found = _get(cluster.ports[node].ui, f"/api/traces/{call.trace_id.hex()}")
            assert status == 200, node
            [trace] = found["data"]
            assert len(trace["spans"]) == 3


def test_red_from_any_node_equals_the_single_node(cluster: Cluster) -> None:
    def red(port: int) -> list[tuple[str, float, float]]:
        status, found = _get(port, "/api/meshscope/red")
        rows = found["data"]
        assert status == 200
        return sorted((r["service"], r["calls"], r["errors"]) for r in rows)

    want = wait_for(lambda: red(cluster.single.ui) if len(red(cluster.single.ui)) == 2 else None)
    assert want == [("backend", CALLS, CALLS // 5), ("frontend", CALLS, 0)]
    for node in NODES:
        assert wait_for(lambda n=node: red(cluster.ports[n].ui) == want), node


def test_other_apis_answer_like_the_single_node(cluster: Cluster) -> None:
    """Jaeger services, operations, dependencies and trace search, PromQL over the derived
    counters, and Tempo search give the single node's answers from every node."""
    queries: dict[str, Callable[[Any], list[Any]]] = {
        "/api/services": lambda d: sorted(d["data"]),
        "/api/services/backend/operations": lambda d: sorted(d["data"]),
        "/api/dependencies": lambda d: sorted(
            (x["parent"], x["child"], x["callCount"]) for x in d["data"]
        ),
        "/api/traces?service=backend&limit=1000": lambda d: sorted(
            (t["traceID"], len(t["spans"])) for t in d["data"]
        ),
        "/api/v1/query?query=sum%20by%20(service_name)%20(calls_total)": lambda d: sorted(
            (r["metric"]["service_name"], r["value"][1]) for r in d["data"]["result"]
        ),
        "/api/v1/query?query=sum(traces_service_graph_request_failed_total)": lambda d: [
            r["value"][1] for r in d["data"]["result"]
        ],
    }
    # Derived series are flushed every second on each node: wait for every node's flush.
    assert wait_for(lambda: all(_calls_seen(cluster.ports[n].ui) == CALLS for n in NODES))
    for path, shape in queries.items():
        status, want = _get(cluster.single.ui, path)
        assert status == 200, path
        expected = shape(want)
        assert expected, path
        for node in NODES:
            status, got = _get(cluster.ports[node].ui, path)
            assert status == 200, (node, path)
            assert shape(got) == expected, (node, path)


def _calls_seen(port: int) -> float:
    """The calls the service graph has counted, cluster-wide, as a node answers it."""
    query = "/api/v1/query?query=sum(traces_service_graph_request_total)"
    _, body = _get(port, query)
    result = body["data"]["result"] if isinstance(body, dict) else []
    return float(result[0]["value"][1]) if result else 0.0


def test_logs_tempo_and_exemplars_answer_like_the_single_node(cluster: Cluster) -> None:
    """The same logs (each with one of the calls' trace ids, and some without) sent to the
    single node and to n2 (which routes each to its trace's owner): LogQL, the trace logs
    view, Tempo search and exemplars answer the same from every node."""
    body = logs_request([call.trace_id for call in cluster.made], untraced=3)
    for port in (cluster.single.otlp_http, cluster.ports["n2"].otlp_http):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf"})
        assert conn.getresponse().status == 200
    now_s = int(time.time())
    window = f"start={(now_s - 3600) * 10**9}&end={(now_s + 60) * 10**9}"
    traced = cluster.made[0].trace_id.hex()
    queries: dict[str, Callable[[Any], Any]] = {
        f"/loki/api/v1/query_range?query=%7Bservice_name%3D%22backend%22%7D&limit=1000&{window}":
            lambda d: sorted(v[1] for s in d["data"]["result"] for v in s["values"]),
        f"/loki/api/v1/query?query=sum(count_over_time(%7Bservice_name%3D%22backend%22%7D"
        f"%5B1h%5D))&time={now_s + 60}": lambda d: [r["value"][1] for r in d["data"]["result"]],
        f"/api/meshscope/traces/{traced}/logs": lambda d: sorted(x["body"] for x in d["logs"]),
        f"/tempo/api/search?tags=service.name%3Dbackend&limit=1000&start={now_s - 3600}"
        f"&end={now_s + 60}": lambda d: sorted(t["traceID"] for t in d["traces"]),
        f"/api/v1/query_exemplars?query=duration_milliseconds_bucket&start={now_s - 3600}"
        f"&end={now_s + 60}": lambda d: sorted(
            (s["seriesLabels"].get("service_name", ""), e["labels"]["trace_id"])
            for s in d["data"] for e in s["exemplars"]
        ),
    }  # fmt: skip
    for path, shape in queries.items():
        status, want = _get(cluster.single.ui, path)
        assert status == 200, (path, want)
        expected = wait_for(lambda p=path, sh=shape: sh(_get(cluster.single.ui, p)[1]) or None)
        for node in NODES:
            got = wait_for(
                lambda n=node, p=path, sh=shape, e=expected: (
                    sh(_get(cluster.ports[n].ui, p)[1]) == e
                )
            )
            assert got, (node, path)


def test_the_real_otel_sdk_as_clients_of_two_nodes(cluster: Cluster) -> None:
    """A frontend exporting over OTLP/HTTP to n1 and a backend over OTLP/gRPC to n2, with the
    trace context passed between them: every trace is whole on its owner, read from n3."""
    ports = cluster.ports
    providers, tracers = [], []
    http_url = f"http://127.0.0.1:{ports['n1'].otlp_http}/v1/traces"
    grpc_url = f"http://127.0.0.1:{ports['n2'].otlp_grpc}"
    exporters = (
        ("sdk-frontend", HttpSpanExporter(http_url)),
        ("sdk-backend", GrpcSpanExporter(grpc_url, insecure=True)),
    )
    for service, exporter in exporters:
        provider = TracerProvider(resource=Resource({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        providers.append(provider)
        tracers.append(provider.get_tracer("tests.e2e.cluster"))
    front, back = tracers
    trace_ids = []
    for _ in range(10):
        with front.start_as_current_span("GET /shop", kind=SpanKind.SERVER) as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            with front.start_as_current_span("GET /stock", kind=SpanKind.CLIENT) as call:
                context = trace.set_span_in_context(call)
                with back.start_as_current_span(
                    "GET /stock", context=context, kind=SpanKind.SERVER
                ):
                    pass
    for provider in providers:
        assert provider.force_flush(30_000)
        provider.shutdown()
    for trace_id in trace_ids:
        status, found = _get(ports["n3"].ui, f"/api/traces/{trace_id}")
        assert status == 200
        assert len(found["data"][0]["spans"]) == 3
    edge = wait_for(
        lambda: [
            e for e in _edges(ports["n3"].ui) if e["source"] == "sdk-frontend" and e["calls"] == 10
        ]
    )
    assert edge and edge[0]["target"] == "sdk-backend"


def test_zipkin_spans_of_a_call_sent_to_two_nodes_pair_into_one_edge(cluster: Cluster) -> None:
    """Each call's client span to n1 and server span to n2 over Zipkin (as two proxies report
    it): the nodes store their spans and the owners pair them, once."""
    now_us, count = time.time_ns() // 1000 - 2_000_000, 12
    client, server = [], []
    for i in range(count):
        trace_id = f"{i + 1:016x}" * 2
        common = {"traceId": trace_id, "name": "get /api", "duration": 2000}
        client.append({**common, "id": f"{i + 1:016x}", "kind": "CLIENT", "timestamp": now_us + i,
                       "localEndpoint": {"serviceName": "zipkin-web"}})  # fmt: skip
        server.append({**common, "id": f"{i + 101:016x}", "parentId": f"{i + 1:016x}",
                       "kind": "SERVER", "timestamp": now_us + i + 10,
                       "localEndpoint": {"serviceName": "zipkin-api"}})  # fmt: skip
    for node, spans in (("n1", client), ("n2", server)):
        conn = http.client.HTTPConnection("127.0.0.1", cluster.ports[node].zipkin, timeout=30)
        conn.request(
            "POST", "/api/v2/spans", json.dumps(spans), {"Content-Type": "application/json"}
        )
        assert conn.getresponse().status == 202
    for node in NODES:

        def zipkin_edges(n: str = node) -> list[tuple[str, float]]:
            found = _edges(cluster.ports[n].ui)
            return [(e["target"], e["calls"]) for e in found if e["source"] == "zipkin-web"]

        wait_for(lambda: zipkin_edges() == [("zipkin-api", count)])
        assert zipkin_edges() == [("zipkin-api", count)], node
    status, found = _get(cluster.ports["n3"].ui, f"/api/traces/{client[0]['traceId']}")
    assert status == 200 and len(found["data"][0]["spans"]) == 2


def test_a_dead_owner_gives_503_and_its_traces_are_not_acknowledged(cluster: Cluster) -> None:
    ring = Ring.of(NODES)
    victim = cluster.processes["n3"]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(30)
    fresh = calls(40, seed=99)
    owned = {n: [c for c in fresh if ring.owner(int.from_bytes(c.trace_id[8:], "big")) == n]
             for n in NODES}  # fmt: skip
    assert owned["n3"] and owned["n1"]
    assert _post(cluster.ports["n1"].otlp_http, request(owned["n3"])) == 503
    assert _post(cluster.ports["n1"].otlp_http, request(owned["n1"] + owned["n2"])) == 200
    status, metrics = _get(cluster.ports["n1"].ui, "/metrics")
    # Over the shared store n1 sends n3 its traces' pairing records (and stores the spans once
    # every owner took its records).
    assert 'meshscope_cluster_forward_failed_items_total{kind="sides",peer="n3"}' in metrics
    # The records went first: n1 stored none of the refused request's spans (a retry stores
    # and counts them once).
    refused = owned["n3"][0].trace_id.hex()
    assert _get(cluster.ports["n1"].ui, f"/api/traces/{refused}")[0] == 404
    # What was acknowledged before is still readable (it is in ClickHouse, not in n3).
    call = next(
        c for c in cluster.made if ring.owner(int.from_bytes(c.trace_id[8:], "big")) == "n3"
    )
    status, found = _get(cluster.ports["n1"].ui, f"/api/traces/{call.trace_id.hex()}")
    assert status == 200 and len(found["data"][0]["spans"]) == 3
