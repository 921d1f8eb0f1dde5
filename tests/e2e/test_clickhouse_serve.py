"""A real `meshscope serve` on ClickHouse: its ingest worker processes prepare OTLP/HTTP
protobuf traces (the store's two-phase writes), and the spans read back, over the API and
from the database, exactly as sent."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.model.spans import Span
from meshscope.store.clickhouse import ClickHouseStorage
from tests.conformance import clickhouse_server
from tests.e2e.test_durability import Ports, serve

WORKERS = 2


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def _worker_bodies(port: int) -> dict[str, float]:
    """`meshscope_ingest_worker_bodies_total` by kind, from the server's /metrics."""
    status, body = _get(port, "/metrics")
    assert status == 200
    prefix = 'meshscope_ingest_worker_bodies_total{kind="'
    counts: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].split(" ")
            counts[labels.split('"')[0]] = float(value)
    return counts


def _post_traces(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    response = conn.getresponse()
    response.read()
    return response.status


def _by_trace(spans: list[Span]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = {}
    for span in spans:
        out.setdefault(span.trace_id, []).append(span)
    return out


def test_workers_prepare_traces_for_clickhouse(tmp_path: Path) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    database = clickhouse_server.database_for(tmp_path)
    settings = {
        "MESHSCOPE_STORAGE__KIND": "clickhouse",
        "MESHSCOPE_STORAGE__CLICKHOUSE__DSN": clickhouse_server.dsn(),
        "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": database,
        "MESHSCOPE_PIPELINE__INGEST_WORKERS": str(WORKERS),
    }
    bodies = build_requests(4, 60, services=4, seed=3)
    sent = _by_trace([s for body in bodies for s in decode_otlp("traces", body).batch.spans])
    ports = Ports()
    with serve(tmp_path / "unused.duckdb", ports, settings) as proc:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= WORKERS  # the ingest worker processes
        before = _worker_bodies(ports.ui)["traces"]
        for body in bodies:
            assert _post_traces(ports.otlp_http, body) == 200
        assert _worker_bodies(ports.ui)["traces"] == before + len(bodies)
        for trace_id, spans in sent.items():  # acknowledged = stored: no waiting
            status, raw = _get(ports.ui, f"/api/traces/{trace_id}")
            assert status == 200, raw
            (trace,) = json.loads(raw)["data"]
            got: list[dict[str, Any]] = trace["spans"]
            assert sorted(s["spanID"] for s in got) == sorted(s.span_id for s in spans)
    storage = ClickHouseStorage(clickhouse_server.dsn(), database)
    try:
        stored = storage.traces.get_traces(list(sent))
        for trace_id, spans in sent.items():
            key = lambda span: (span.start_ns, span.span_id)  # noqa: E731
            assert sorted(stored[trace_id], key=key) == sorted(spans, key=key)
    finally:
        storage.drop()
