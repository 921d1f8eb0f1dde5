"""SIGTERM under load: a real `meshscope serve` (ingest workers, tail sampling holding traces
for a decision wait far longer than the test) stops within 10 s, exits 0, and has committed
everything it acknowledged, the traces still waiting for a tail-sampling decision included
(decided at shutdown, here by an always-sample policy)."""

from __future__ import annotations

import signal
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
