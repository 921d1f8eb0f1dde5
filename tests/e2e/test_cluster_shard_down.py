"""A real `meshscope serve` cluster node started while the second of its two ClickHouse 18.16
shards is not running (servers of this test's own): it starts, answers reads from the first
shard saying the second is missing, refuses writes holding the second shard's traces (503:
the client keeps them), and once a fresh server answers on the second shard's port makes its
tables there and takes every trace (ADR 0015, "a shard down")."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.test_shard_down import shard_up
from tests.cluster.traces import calls, request
from tests.conformance import clickhouse_server
from tests.conformance.clickhouse_server import ClickHouseServer
from tests.e2e.test_cluster import _get, _post, node_settings
from tests.e2e.test_cluster_membership import _until
from tests.e2e.test_durability import Ports, serve
from tests.ingest.asgi_server import free_port


def _shard_up(ui: int) -> dict[str, float]:
    _, text = _get(ui, "/metrics")
    return shard_up(text)


def test_a_node_starts_with_a_shard_down_and_takes_it_in_when_it_answers(tmp_path: Path) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    ports = (free_port(), free_port())
    servers = [ClickHouseServer(tcp_port=ports[0], shard_ports=ports)]
    shards = [servers[0].dsn, servers[0].dsn.replace(str(ports[0]), str(ports[1]))]
    node = Ports()
    settings = node_settings("n1", {"n1": node}, shards, "m")  # one node: all its own

    def taken_in() -> bool:
        _get(node.ui, "/api/services")  # a read: starts a probe of the shard when due (5 s)
        return _shard_up(node.ui) == {"1": 1.0, "2": 1.0}

    try:
        with serve(tmp_path / "unused.duckdb", node, settings):
            status, body = _get(node.ui, "/api/services")
            assert status == 200 and body["data"] == []
            assert "ClickHouse shard 2 (" in body["errors"][0]["msg"]
            assert _shard_up(node.ui) == {"1": 1.0, "2": 0.0}
            made = calls(20)
            assert _post(node.otlp_http, request(made)) == 503  # rows for both shards

            servers.append(ClickHouseServer(tcp_port=ports[1], shard_ports=ports))
            assert _until(taken_in)
            assert _post(node.otlp_http, request(made)) == 200
            for call in made:
                status, found = _get(node.ui, f"/api/traces/{call.trace_id.hex()}")
                assert status == 200 and len(found["data"][0]["spans"]) == 3
    finally:
        for server in servers:
            server.kill()
            server.stop()
