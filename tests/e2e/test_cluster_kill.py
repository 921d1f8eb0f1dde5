"""Kill -9 of a node under load, clients retrying: nothing acknowledged is lost.

Two ClickHouse 18.16 shards and three `meshscope serve` nodes with health checks every
0.5 s. Four clients, the real OpenTelemetry SDK's OTLP/HTTP exporter (which retries 429/503
and dropped connections), keep sending traces of 3 spans to n1 and n2 while n3, the owner
of about a third of the traces, is killed with SIGKILL. Afterwards every acknowledged trace
is in ClickHouse with all its spans (retries may have stored some twice: at-least-once),
and the survivors counted the traces in flight at the change that they routed to n3's
slots' new owners."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import pytest
from clickhouse_driver import Client
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conformance import clickhouse_server
from tests.e2e.sdk_calls import call_traces
from tests.e2e.test_cluster import node_settings
from tests.e2e.test_durability import Ports, serve

NODES = ("n1", "n2", "n3")


def _counter(port: int, name: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


class Sender:
    """One client: the real OpenTelemetry SDK exporter (OTLP/HTTP), which retries 429/503
    and dropped connections with backoff; a batch is acknowledged when `export` succeeds."""

    def __init__(self, index: int, port: int, stop: threading.Event) -> None:
        self.index, self.stop = index, stop
        self.exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=30)
        self.acked: dict[int, int] = {}  # trace id -> spans acknowledged
        self.failed = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            spans = call_traces(10)
            if self.exporter.export(spans) is SpanExportResult.SUCCESS:
                for span in spans:
                    trace_id = span.context.trace_id
                    self.acked[trace_id] = self.acked.get(trace_id, 0) + 1
            else:
                self.failed += 1
        self.exporter.shutdown()  # type: ignore[no-untyped-call]


def test_kill_9_of_a_node_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    shards = clickhouse_server.shard_dsns()
    database = clickhouse_server.database_for(tmp_path)
    ports = {node: Ports() for node in NODES}
    with ExitStack() as stack:
        procs = {}
        for node in NODES:
            (tmp_path / node).mkdir()
            procs[node] = stack.enter_context(
                serve(
                    tmp_path / node / "unused.duckdb",
                    ports[node],
                    node_settings(
                        node,
                        ports,
                        shards,
                        database,
                        MESHSCOPE_CLUSTER__FORWARD_TIMEOUT_SECONDS="3",
                        MESHSCOPE_CLUSTER__HEALTH_INTERVAL_SECONDS="0.5",
                    ),
                )
            )
        stop = threading.Event()
        clients = [Sender(i, ports[NODES[i % 2]].otlp_http, stop) for i in range(4)]
        for client in clients:
            client.thread.start()
        time.sleep(3)
        os.kill(procs["n3"].pid, signal.SIGKILL)
        procs["n3"].wait(30)
        time.sleep(4)
        stop.set()
        for client in clients:
            client.thread.join(60)
        # n3's death was felt: forwards to it failed (and the SDK retried those requests).
        failed = sum(_counter(ports[node].ui, "meshscope_cluster_forward_failed_items_total")
                     for node in ("n1", "n2"))  # fmt: skip
        assert failed > 0
        # The clients' traces start ~5 s before they are sent: those routed into n3's slots
        # after the survivors dropped it were in flight at the change, and are counted.
        split = sum(_counter(ports[node].ui, "meshscope_cluster_split_traces_total")
                    for node in ("n1", "n2"))  # fmt: skip
        assert split > 0
    acked: dict[int, int] = {}
    for client in clients:
        acked.update(client.acked)
    assert len(acked) > 100
    spans: dict[int, set[int]] = defaultdict(set)
    for dsn in shards:
        db = Client.from_url(dsn)
        try:
            rows = db.execute(f"SELECT trace_hi, trace_lo, span_id FROM {database}.spans")
            for hi, lo, span_id in rows:
                spans[(hi << 64) | lo].add(span_id)
        finally:
            db.execute(f"DROP DATABASE IF EXISTS {database}_dist")
            db.execute(f"DROP DATABASE IF EXISTS {database}")
            db.disconnect()
    missing = [t for t, count in acked.items() if len(spans.get(t, ())) != count]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces incomplete"
