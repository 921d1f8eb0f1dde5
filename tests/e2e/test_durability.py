"""Acknowledged = committed, at the server level: a real `meshscope serve` (its ingest worker
processes included) on a DuckDB file is killed with SIGKILL while several clients send spans,
logs and metric points; restarted on the same file, it holds every acknowledged item exactly
once, and an unacknowledged request at most once (a client would retry those)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from meshscope.store.base import LogQuery, Storage
from meshscope.store.duckdb import DuckDBStorage
from tests.ingest.asgi_server import free_port

SPANS_PER_REQUEST = 40
LOGS_PER_REQUEST = 20
POINTS_PER_REQUEST = 5
TRAFFIC_S = 3.0
T0 = time.time_ns() - 60 * 10**9


@dataclass
class Ports:
    otlp_http: int = field(default_factory=free_port)
    otlp_grpc: int = field(default_factory=free_port)
    zipkin: int = field(default_factory=free_port)
    ui: int = field(default_factory=free_port)


def server_env(db: Path, ports: Ports, settings: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus the settings that put a server on `ports` and `db`."""
    env = dict(os.environ)
    env.update(
        MESHSCOPE_SERVER__OTLP_HTTP_PORT=str(ports.otlp_http),
        MESHSCOPE_SERVER__OTLP_GRPC_PORT=str(ports.otlp_grpc),
        MESHSCOPE_SERVER__ZIPKIN_PORT=str(ports.zipkin),
        MESHSCOPE_SERVER__UI_PORT=str(ports.ui),
        MESHSCOPE_STORAGE__PATH=str(db),
        **(settings or {}),
    )
    return env


@contextmanager
def serve(
    db: Path, ports: Ports, settings: dict[str, str] | None = None, config: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`meshscope serve` on `db`, with more settings as MESHSCOPE_* environment variables and
    the config file `config`; its output goes to `server.log` beside `db`."""
    env = server_env(db, ports, settings)
    log_path = db.parent / "server.log"
    log = log_path.open("ab")
    command = [sys.executable, "-m", "meshscope.cli", "serve"]
    if config is not None:
        command += ["--config", str(config)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 90  # a busy machine starts the worker processes slowly
        while not _healthy(ports.otlp_http):
            assert proc.poll() is None, f"meshscope exited: {log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "meshscope did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        log.close()


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_request(client: int, seq: int) -> bytes:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", f"svc-{seq % 3}"))
    spans = rs.scope_spans.add().spans
    trace_id = trace_id_of(client, seq)
    for i in range(SPANS_PER_REQUEST):
        spans.add(
            trace_id=trace_id,
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=b"" if i == 0 else i.to_bytes(8, "big"),
            name=f"op-{i % 4}",
            kind=2 if i % 2 == 0 else 3,
            start_time_unix_nano=T0 + seq * 1000 + i,
            end_time_unix_nano=T0 + seq * 1000 + i + 500_000,
            attributes=[_kv("http.route", "/x"), _kv("peer.service", f"svc-{i % 3}")],
        )
    return request.SerializeToString()


def trace_id_of(client: int, seq: int) -> bytes:
    return bytes([0xAB, client]) + seq.to_bytes(14, "big")


def log_request(client: int, seq: int) -> bytes:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", "durable-logs"))
    records = rl.scope_logs.add().log_records
    for i in range(LOGS_PER_REQUEST):
        records.add(
            time_unix_nano=T0 + seq,
            severity_number=9,
            body=AnyValue(string_value=f"log {client}-{seq}-{i}"),
        )
    return request.SerializeToString()


def metric_request(client: int, seq: int) -> bytes:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "durable-metrics"))
    metric = rm.scope_metrics.add().metrics.add(name="durability_gauge")
    for i in range(POINTS_PER_REQUEST):
        metric.gauge.data_points.add(
            time_unix_nano=T0 + seq, as_double=float(seq), attributes=[_kv("req", f"{seq}-{i}")]
        )
    return request.SerializeToString()


BUILDERS = {"traces": trace_request, "logs": log_request, "metrics": metric_request}


@dataclass
class Client:
    signal: str
    number: int
    acked: list[int] = field(default_factory=list)
    unacked: list[int] = field(default_factory=list)  # sent, no 2xx (no answer, 429, 503)

    def run(self, port: int, stop: threading.Event) -> None:
        seq = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            body = BUILDERS[self.signal](self.number, seq)
            try:
                conn.request(
                    "POST",
                    f"/v1/{self.signal}",
                    body,
                    {"Content-Type": "application/x-protobuf"},
                )
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                self.unacked.append(seq)
                return  # the server is gone
            (self.acked if 200 <= status < 300 else self.unacked).append(seq)
            seq += 1


def kill_mid_traffic(
    proc: subprocess.Popen[bytes],
    clients: list[Client],
    port: int,
    stop: threading.Event,
    wait: Callable[[], None],
) -> None:
    """The clients send to `port` until `wait` returns, then meshscope is killed with SIGKILL
    (no shutdown, no final commit) while requests are in flight; each client must have had
    something acknowledged and a request cut off."""
    threads = [
        threading.Thread(target=client.run, args=(port, stop), daemon=True) for client in clients
    ]
    for thread in threads:
        thread.start()
    wait()
    proc.kill()
    proc.wait(10)
    for thread in threads:
        thread.join(30)
    stop.set()
    for client in clients:
        assert client.acked, f"{client.signal} client {client.number} got nothing acknowledged"
        assert client.unacked, "the kill did not interrupt a request in flight"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def test_every_acknowledged_item_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "durable.duckdb"
    ports = Ports()
    clients = [Client("traces", n) for n in range(3)] + [Client("logs", 0), Client("metrics", 0)]
    stop = threading.Event()
    with serve(db, ports) as proc:
        workers = _children(proc.pid)
        kill_mid_traffic(proc, clients, ports.otlp_http, stop, lambda: time.sleep(TRAFFIC_S))
    deadline = time.monotonic() + 10  # the worker processes notice their owner is gone
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "workers outlived"

    with serve(db, ports):  # restarted on the same file: replays the log, serves reads
        trace = clients[0].acked[-1]
        conn = http.client.HTTPConnection("127.0.0.1", ports.ui, timeout=10)
        conn.request("GET", "/api/meshscope/stats")
        assert conn.getresponse().status == 200
    storage = DuckDBStorage(db)
    try:
        for client in clients[:3]:
            _check_traces(storage, client)
        _check_logs(storage, clients[3])
        _check_metrics(storage, clients[4])
        assert storage.traces.get_trace(trace_id_of(0, trace).hex())
    finally:
        storage.close()


def _check_traces(storage: Storage, client: Client) -> None:
    for seq in client.acked:
        spans = storage.traces.get_trace(trace_id_of(client.number, seq).hex())
        assert len(spans) == SPANS_PER_REQUEST, (client.number, seq, len(spans))
        assert len({span.span_id for span in spans}) == SPANS_PER_REQUEST
    for seq in client.unacked:
        spans = storage.traces.get_trace(trace_id_of(client.number, seq).hex())
        assert len(spans) in (0, SPANS_PER_REQUEST), (client.number, seq, len(spans))


def _check_logs(storage: Storage, client: Client) -> None:
    records = storage.logs.find_logs(LogQuery(service="durable-logs"))
    counts = Counter(record.body for record in records)
    for seq in client.acked:
        for i in range(LOGS_PER_REQUEST):
            assert counts[f"log {client.number}-{seq}-{i}"] == 1, (seq, i)
    for seq in client.unacked:
        assert counts[f"log {client.number}-{seq}-0"] <= 1
    assert sum(counts.values()) <= LOGS_PER_REQUEST * (len(client.acked) + len(client.unacked))


def _check_metrics(storage: Storage, client: Client) -> None:
    series = storage.metrics.select("durability_gauge", [], 0, 2**63 - 1)
    samples = Counter(s.label("req") for one in series for s in one.samples)
    for seq in client.acked:
        for i in range(POINTS_PER_REQUEST):
            assert samples[f"{seq}-{i}"] == 1, (seq, i)
    for seq in client.unacked:
        assert samples[f"{seq}-0"] <= 1
