"""`meshscope serve` that cannot start says why in one line: a busy port (each of the four
listeners) or a data file another meshscope holds. Exit status 1, no traceback, nothing
announced as listening and nothing left running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_durability import Ports, serve, server_env
from tests.ports import is_free

LISTENERS = {
    "ui": "ui+query",
    "otlp_http": "otlp-http",
    "otlp_grpc": "otlp-grpc",
    "zipkin": "zipkin",
}


def _run(db: Path, ports: Ports) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "serve"],
        env=server_env(db, ports),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("busy", sorted(LISTENERS))
def test_a_busy_port_is_one_line_naming_it_and_its_holder(tmp_path: Path, busy: str) -> None:
    ports = Ports()
    port = getattr(ports, busy)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = _run(tmp_path / "db.duckdb", ports)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port} ({LISTENERS[busy]})" in lines[0]
    assert f"pid {os.getpid()}" in lines[0]
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    assert not (tmp_path / "db.duckdb").exists()  # the store was not opened either
    others = [getattr(ports, name) for name in LISTENERS if name != busy]
    assert all(is_free(other) for other in others)


def test_a_data_file_held_by_another_meshscope_is_one_line_naming_its_pid(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.duckdb"
    with serve(db, Ports()) as first:
        ports = Ports()
        result = _run(db, ports)
        assert first.poll() is None
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert str(db) in lines[0] and f"pid {first.pid}" in lines[0]
    assert "Traceback" not in result.stderr and "listening" not in result.stderr
    time.sleep(0.2)
    assert all(is_free(port) for port in vars(ports).values())
