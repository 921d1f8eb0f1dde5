"""Reads of a cluster node while one of its two ClickHouse 18.16 shards is down (ADR 0015,
"a shard down"): every read API still answers, from the shard that is up, and says in each
API's own place (Jaeger's `errors`, Prometheus' and Loki's `warnings`, a `Warning` header)
which shard is missing; a trace on the missing shard is a 503; once the shard is back the
answers are whole again. The shards are servers of this test's own (killed with SIGKILL)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from meshscope.app import App, build
from meshscope.clock import ManualClock
from meshscope.cluster.config import ClusterConfig
from meshscope.config import ClickHouseConfig, Config, StorageConfig
from meshscope.ingest.otlp import decode_otlp
from meshscope.pipeline.chain import Pipeline
from meshscope.query.budget import Budget, QueryLimits, running
from meshscope.store.base import StoreUnavailableError, TraceQuery
from meshscope.store.clickhouse import shard_reads
from meshscope.store.clickhouse.shard_reads import ShardReads
from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage
from tests.cluster.traces import Call, calls, logs_request, request
from tests.conformance import clickhouse_server
from tests.conformance.clickhouse_server import CLUSTER, ClickHouseServer
from tests.ingest.asgi_server import free_port

NOW_NS = time.time_ns() - 60 * 10**9
WINDOW = {"start": (NOW_NS - 600 * 10**9) // 1000, "end": (NOW_NS + 600 * 10**9) // 1000}


@pytest.fixture
def shards() -> Iterator[list[ClickHouseServer]]:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    ports = (free_port(), free_port())
    servers: list[ClickHouseServer] = []
    try:
        for port in ports:
            servers.append(ClickHouseServer(tcp_port=port, shard_ports=ports))
        yield servers
    finally:
        for server in servers:
            server.kill()
            server.stop()


@pytest.fixture
def node(shards: list[ClickHouseServer], tmp_path: Path) -> Iterator[tuple[App, list[Call]]]:
    config = Config(
        storage=StorageConfig(kind="clickhouse", clickhouse=ClickHouseConfig(database="m")),
        cluster=ClusterConfig(
            node_id="n1", shards=tuple(s.dsn for s in shards), clickhouse_cluster=CLUSTER
        ),
    )
    app = build(config)
    try:
        made = calls(30, now_ns=NOW_NS)
        assert isinstance(app.storage, ShardedClickHouseStorage)
        pipeline = Pipeline(app.storage, ManualClock(NOW_NS + 10**9))
        pipeline.consume(decode_otlp("traces", request(made)).batch)
        pipeline.consume(decode_otlp("logs", logs_request([c.trace_id for c in made])).batch)
        pipeline.flush()
        yield app, made
    finally:
        app.storage.close()


def _shard(call: Call) -> int:
    return int.from_bytes(call.trace_id[:8], "big") % 2


def _local_services(shard: ClickHouseServer) -> set[str]:
    from clickhouse_driver import Client

    client = Client("127.0.0.1", port=shard.tcp_port)
    try:
        return {service for (service,) in client.execute("SELECT service FROM m.catalog")}
    finally:
        client.disconnect()


def _get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    return response.status_code, response.headers.get("warning"), response.json()


def _searched(client: TestClient) -> tuple[set[str], Any]:
    status, warning, body = _get(client, "/api/traces", service="frontend", limit=100, **WINDOW)
    assert status == 200, body
    assert (warning is None) == (body["errors"] is None)
    return {trace["traceID"] for trace in body["data"]}, body["errors"]


def shard_up(metrics: str) -> dict[str, float]:
    """`meshscope_clickhouse_shard_up` by shard, from the text of /metrics."""
    prefix = 'meshscope_clickhouse_shard_up{shard="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix)
    }


def _shard_up(client: TestClient) -> dict[str, float]:
    return shard_up(client.get("/metrics").text)


def _whole(client: TestClient) -> set[str]:
    """Search until no shard is missing (a returning shard is probed in the background)."""
    deadline = time.monotonic() + 30
    while True:
        found, errors = _searched(client)
        if errors is None or time.monotonic() > deadline:
            assert errors is None, errors
            return found
        time.sleep(0.1)


def test_reads_answer_from_the_shards_that_are_up_and_say_which_are_not(
    shards: list[ClickHouseServer],
    node: tuple[App, list[Call]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, made = node
    by_shard = {i: {c.trace_id.hex() for c in made if _shard(c) == i} for i in (0, 1)}
    assert by_shard[0] and by_shard[1]
    services = {i: _local_services(shards[i]) for i in (0, 1)}
    with TestClient(app.ui) as client:
        found, errors = _searched(client)
        assert found == by_shard[0] | by_shard[1] and errors is None
        status, warning, body = _get(client, "/api/services")
        assert (status, warning) == (200, None) and set(body["data"]) == {"frontend", "backend"}

        assert _shard_up(client) == {"1": 1.0, "2": 1.0}
        shards[1].kill()
        # Scrapes alone (no read) probe the shards: /metrics follows them.
        monkeypatch.setattr(shard_reads, "PROBE_INTERVAL_S", 0.0)
        deadline = time.monotonic() + 30
        while _shard_up(client)["2"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _shard_up(client) == {"1": 1.0, "2": 0.0}
        found, errors = _searched(client)
        assert found == by_shard[0]
        assert [e["code"] for e in errors] == [503] and "shard 2 (" in errors[0]["msg"]
        assert _shard_up(client) == {"1": 1.0, "2": 0.0}
        status, warning, body = _get(client, "/api/services")
        assert status == 200 and set(body["data"]) == services[0]
        assert warning.startswith('199 meshscope "ClickHouse shard 2 (clickhouse://')
        # A trace on the missing shard cannot be read; one on the shard that is up can, whole.
        lost, kept = sorted(by_shard[1])[0], sorted(by_shard[0])[0]
        status, _, body = _get(client, f"/api/traces/{lost}")
        assert status == 503 and "clickhouse" in body["errors"][0]["msg"]
        status, warning, body = _get(client, f"/api/traces/{kept}")
        assert (status, warning, len(body["data"][0]["spans"])) == (200, None, 3)
        # Prometheus, Loki and meshscope's own API: 200 with the warning in `warnings`.
        at = NOW_NS / 1e9 + 2
        status, warning, body = _get(client, "/api/v1/query", query="sum(calls_total)", time=at)
        assert status == 200 and body["status"] == "success" and body["data"]["result"]
        assert len(body["warnings"]) == 1 and "shard 2 (" in body["warnings"][0]
        now = time.time_ns()  # the logs' time: when they were made (tests/cluster/traces.py)
        loki = {"query": '{service_name="backend"} |= "traced"', "start": NOW_NS - 10**11,
                "end": now + 10**11, "limit": 1000}  # fmt: skip
        status, _, body = _get(client, "/loki/api/v1/query_range", **loki)
        assert status == 200 and "shard 2 (" in body["warnings"][0]
        logged = {s["stream"].get("trace_id") for s in body["data"]["result"]}
        assert logged == by_shard[0]  # a trace's logs live on its shard
        ms = {key: value // 1000 for key, value in WINDOW.items()}
        status, _, body = _get(client, "/api/meshscope/red", groupBy="service", **ms)
        assert status == 200 and body["data"] and "shard 2 (" in body["warnings"][0]

        # Back: once probed again (after every read, here), the answers are whole again.
        shards[1].restart()
        assert _whole(client) == by_shard[0] | by_shard[1]
        assert _shard_up(client) == {"1": 1.0, "2": 1.0}

        # The first shard down: reads go through the second one's Distributed tables.
        shards[0].kill()
        found, errors = _searched(client)
        assert found == by_shard[1] and "shard 1 (" in errors[0]["msg"]
        status, warning, body = _get(client, "/api/services")
        assert status == 200 and set(body["data"]) == services[1]

        # It comes back before its next probe and the other goes down: the read goes
        # through it, and the warning names only the one that is down.
        monkeypatch.setattr(shard_reads, "PROBE_INTERVAL_S", 3600.0)
        shards[0].restart()
        shards[1].kill()
        found, errors = _searched(client)
        assert found == by_shard[0] and [e["msg"][:19] for e in errors] == ["ClickHouse shard 2 "]


def test_a_node_starts_with_a_shard_down_and_makes_its_tables_when_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(shard_reads, "PROBE_INTERVAL_S", 0.0)
    ports = (free_port(), free_port())
    servers = [ClickHouseServer(tcp_port=ports[0], shard_ports=ports)]
    try:
        dsns = (servers[0].dsn, servers[0].dsn.replace(str(ports[0]), str(ports[1])))
        storage = ShardedClickHouseStorage(dsns, "m", CLUSTER)  # the second one not running
        try:
            made = calls(20, now_ns=NOW_NS)
            first = [c for c in made if _shard(c) == 0]
            pipeline = Pipeline(storage, ManualClock(NOW_NS + 10**9))
            with pytest.raises(StoreUnavailableError):  # every write holding its rows
                storage.write_batch(decode_otlp("traces", request(made)).batch.spans)
            with running(Budget(QueryLimits())) as partial:
                assert storage.catalog.services() == []
            assert "shard 2 (" in partial.warnings[0]

            servers.append(ClickHouseServer(tcp_port=ports[1], shard_ports=ports))
            deadline = time.monotonic() + 30
            while True:  # a read or the probe it starts makes its tables; then it is read
                with running(Budget(QueryLimits())) as whole:
                    assert storage.catalog.services() == []
                if not whole.warnings or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert whole.warnings == []
            pipeline.consume(decode_otlp("traces", request(made)).batch)
            pipeline.flush()
            query = TraceQuery(service="frontend", start_ns=0, end_ns=2**62, limit=100)
            found = set(storage.traces.find_trace_ids(query))
            assert found == {c.trace_id.hex() for c in made} and len(first) < len(found)
        finally:
            storage.drop()
    finally:
        for server in servers:
            server.kill()
            server.stop()


def test_no_read_waits_for_a_probe(
    shards: list[ClickHouseServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard whose host takes the connection and never answers (a hung server): its probe
    runs in the background while reads go on through the shard that is up."""
    monkeypatch.setattr(shard_reads, "PROBE_INTERVAL_S", 0.0)
    probe = None
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the kernel's backlog; nothing answers
        port = silent.getsockname()[1]
        reads = ShardReads(
            [shards[0].dsn, f"clickhouse://default@127.0.0.1:{port}/default"], "default",
            down=[1],
        )  # fmt: skip
        try:
            with running(Budget(QueryLimits())) as budget:
                assert reads.rows("SELECT 1") == [(1,)]  # starts the probe: due at once
            probe = reads.probing
            assert probe is not None and probe.is_alive()  # still waiting for an answer
            assert reads.down() == [1] and "shard 2 (" in budget.warnings[0]
        finally:
            silent.close()  # the probe's connection ends: it is still down
            if probe is not None:
                probe.join(30)
            reads.close()
        assert reads.down() == [1] and reads.probing is None


def test_retention_goes_on_on_the_shards_that_are_up(shards: list[ClickHouseServer]) -> None:
    """One shard down (here the first) does not keep the others from expiring; the failure
    is still raised (the writer logs it and tries again at its next retention pass)."""
    storage = ShardedClickHouseStorage(tuple(s.dsn for s in shards), "r", CLUSTER)
    try:
        old = calls(20, now_ns=NOW_NS - 3 * 86_400 * 10**9)
        storage.write_batch(decode_otlp("traces", request(old)).batch.spans)
        second = storage.shards[1].traces
        assert sum(second.span_counts().values()) > 0
        shards[0].kill()
        with pytest.raises(StoreUnavailableError):
            storage.expire(NOW_NS - 86_400 * 10**9)
        assert second.span_counts() == {}
    finally:
        storage.close()
