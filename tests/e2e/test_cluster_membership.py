"""Membership on real processes: three `meshscope serve` nodes (memory stores) check each
other's health every 0.5 s. A node killed with SIGKILL leaves the others' rings, and its
traces are then taken by the next owners (2xx again); restarted, it gets them back."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from meshscope.cluster.ring import Ring
from tests.cluster.traces import calls, request
from tests.e2e.test_cluster import _get, _post
from tests.e2e.test_durability import Ports, serve

NODES = ("n1", "n2", "n3")


def _settings(node: str, ports: dict[str, Ports]) -> dict[str, str]:
    peers = [{"id": n, "url": f"http://127.0.0.1:{p.ui}"} for n, p in ports.items()]
    return {
        "MESHSCOPE_STORAGE__KIND": "memory",
        "MESHSCOPE_CLUSTER__NODE_ID": node,
        "MESHSCOPE_CLUSTER__PEERS": json.dumps(peers),
        "MESHSCOPE_CLUSTER__HEALTH_INTERVAL_SECONDS": "0.5",
        "MESHSCOPE_CLUSTER__FORWARD_TIMEOUT_SECONDS": "2",
    }


def _until(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _ring(port: int) -> dict[str, Any]:
    status, ring = _get(port, "/internal/cluster/v1/ring")
    assert status == 200
    return dict(ring)


def _has_version(port: int, version: str) -> Callable[[], bool]:
    return lambda: _ring(port)["version"] == version


def _stored_on(port: int, trace_id: bytes) -> bool:
    status, found = _get(port, f"/api/traces/{trace_id.hex()}")
    return status == 200 and len(found["data"][0]["spans"]) == 3


def test_a_dead_peer_leaves_the_ring_and_comes_back(tmp_path: Path) -> None:
    ports = {node: Ports() for node in NODES}
    full = Ring.of(NODES)
    without = full.without(["n3"])
    with ExitStack() as stack:
        procs = {}
        for node in NODES:
            (tmp_path / node).mkdir()
            procs[node] = stack.enter_context(
                serve(tmp_path / node / "unused.duckdb", ports[node], _settings(node, ports))
            )
        assert _until(lambda: all(_ring(ports[n].ui)["version"] == full.version for n in NODES))
        os.kill(procs["n3"].pid, signal.SIGKILL)
        procs["n3"].wait(30)
        for node in ("n1", "n2"):
            assert _until(_has_version(ports[node].ui, without.version)), node
        fresh = calls(30, seed=5)
        theirs = [c for c in fresh if full.owner(int.from_bytes(c.trace_id[8:], "big")) == "n3"]
        assert theirs
        assert _post(ports["n1"].otlp_http, request(theirs)) == 200
        for call in theirs:
            owner = without.owner(int.from_bytes(call.trace_id[8:], "big"))
            assert _stored_on(ports[owner].ui, call.trace_id)
        _, metrics = _get(ports["n1"].ui, "/metrics")
        assert 'meshscope_cluster_peer_up{peer="n3"} 0.0' in metrics
        assert "meshscope_cluster_moved_slots_total" in metrics
        # Back on the same ports: it gets its slots back.
        (tmp_path / "n3b").mkdir()
        stack.enter_context(
            serve(tmp_path / "n3b" / "unused.duckdb", ports["n3"], _settings("n3", ports))
        )
        for node in NODES:
            assert _until(_has_version(ports[node].ui, full.version)), node
        again = calls(30, seed=6)
        theirs = [c for c in again if full.owner(int.from_bytes(c.trace_id[8:], "big")) == "n3"]
        assert _post(ports["n2"].otlp_http, request(theirs)) == 200
        assert all(_stored_on(ports["n3"].ui, call.trace_id) for call in theirs)
