"""`scripts/cluster-demo.sh`, the one-command local cluster (ADR 0015), run as a user runs it
(its ports shifted to free ones): two ClickHouse shards and three nodes start, the demo mesh's
spans sent to node 1 are readable from every node, and stopping the script stops every
process it started and removes its data."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance import clickhouse_server
from tests.ports import is_free

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "cluster-demo.sh"
# Every port the script uses, before its offset (shards' native and HTTP ports, the nodes'
# UI, OTLP HTTP and gRPC, and Zipkin ports).
PORTS = (9110, 9120, 8130, 8131, *range(16686, 16689), *(p + 10 * n for p in (4317, 4318, 9411)
         for n in range(3)))  # fmt: skip


def _offset() -> int:
    """An offset that puts every port of the script on a free one."""
    for _ in range(200):
        offset = random.randrange(20_000, 40_000, 10)
        if all(is_free(port + offset) for port in PORTS):
            return offset
    raise RuntimeError("no free port range found")


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def demo() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    offset = _offset()
    env = {**os.environ, "MESHSCOPE_DEMO_PORT_OFFSET": str(offset)}
    process = subprocess.Popen(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield process, offset
    finally:
        if process.poll() is None:  # the test failed before stopping it
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def test_the_cluster_demo_serves_the_demo_mesh_from_every_node_and_stops_cleanly(
    demo: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, offset = demo
    assert process.stdout is not None
    line = process.stdout.readline().decode()  # printed once every node answers /health
    assert line.startswith("cluster-demo: nodes"), line
    data_dir = Path(line.rsplit("logs in ", 1)[1].strip())
    assert data_dir.is_dir()
    uis = [f"http://127.0.0.1:{16686 + offset + n}" for n in range(3)]
    deadline = time.monotonic() + 120
    services: list[list[str]] = []
    while time.monotonic() < deadline:
        services = [sorted(_get(f"{ui}/api/services")["data"]) for ui in uis]  # type: ignore[index]
        if len(services[0]) >= 3 and services[0] == services[1] == services[2]:
            break
        time.sleep(1)
    # The demo sends to node 1 only; each trace is stored by its owner, and any node answers.
    assert len(services[0]) >= 3 and services[0] == services[1] == services[2], services
    process.send_signal(signal.SIGTERM)  # as Ctrl-C
    assert process.wait(60) == 0
    assert not data_dir.exists()
    for port in (9110, 9120, 16686, 16687, 16688, 4318):  # every process gone with its port
        with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", port + offset))
