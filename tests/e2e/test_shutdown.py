"""SIGTERM under load: a real `meshscope serve` (ingest workers, tail sampling holding traces
for a decision wait far longer than the test) stops within 10 s, exits 0, and has committed
everything it acknowledged, the traces still waiting for a tail-sampling decision included
(decided at shutdown, here by an always-sample policy)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

from meshscope.store.duckdb import DuckDBStorage
from tests.e2e.test_durability import (
    Client,
    Ports,
    _check_logs,
    _check_traces,
    _children,
    serve,
)

TAIL_SETTINGS = {
    "MESHSCOPE_SAMPLING__TAIL__ENABLED": "true",
    "MESHSCOPE_SAMPLING__TAIL__DECISION_WAIT_SECONDS": "600",
    "MESHSCOPE_SAMPLING__TAIL__POLICIES": "[{name: all, type: always_sample}]",
}


def test_sigterm_under_load_commits_what_was_acknowledged_and_stops(tmp_path: Path) -> None:
    db = tmp_path / "shutdown.duckdb"
    ports = Ports()
    clients = [Client("traces", n) for n in range(3)] + [Client("logs", 0)]
    stop = threading.Event()
    with serve(db, ports, TAIL_SETTINGS) as proc:
        assert _children(proc.pid), "no ingest worker processes with tail sampling on"
        threads = [
            threading.Thread(target=client.run, args=(ports.otlp_http, stop), daemon=True)
            for client in clients
        ]
        for thread in threads:
            thread.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = proc.wait(30)
        took = time.monotonic() - began
        stop.set()
        for thread in threads:
            thread.join(30)
    assert code == 0
    assert took < 10, f"SIGTERM took {took:.1f} s"
    storage = DuckDBStorage(db)
    try:
        for client in clients[:3]:
            assert client.acked, f"traces client {client.number} got nothing acknowledged"
            _check_traces(storage, client)  # every acknowledged trace, whole
        _check_logs(storage, clients[3])
    finally:
        storage.close()


def test_sigterm_with_clients_stalled_mid_request_stops_within_10_s(tmp_path: Path) -> None:
    """Clients that sent headers and part of a body, then nothing (a stalled upload), on
    every HTTP listener: SIGTERM still stops the server within 10 s (their requests are
    cancelled after SHUTDOWN_GRACE_S, never acknowledged), and what was acknowledged before
    is stored."""
    db = tmp_path / "stalled.duckdb"
    ports = Ports()
    client = Client("traces", 0)
    stop = threading.Event()
    stalled: list[socket.socket] = []
    with serve(db, ports) as proc:
        sender = threading.Thread(target=client.run, args=(ports.otlp_http, stop), daemon=True)
        sender.start()
        time.sleep(0.5)
        stop.set()
        sender.join(30)
        for port, path in (
            (ports.otlp_http, "/v1/traces"),
            (ports.zipkin, "/api/v2/spans"),
            (ports.ui, "/api/v1/query_range"),
            (ports.ui, "/loki/api/v1/push"),
        ):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: meshscope\r\nContent-Length: 100000\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n\r\nquery=".encode()
            )
            stalled.append(sock)
        time.sleep(1.0)  # the requests are in their handlers, waiting for the rest
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        code = proc.wait(30)
        took = time.monotonic() - began
    for sock in stalled:
        sock.close()
    assert code == 0
    assert took < 10, f"SIGTERM took {took:.1f} s with stalled clients"
    assert client.acked, "nothing was acknowledged before the stop"
    storage = DuckDBStorage(db)
    try:
        _check_traces(storage, client)
    finally:
        storage.close()
