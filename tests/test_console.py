"""What the commands print, read from real subprocesses: `meshscope serve` logs each event once
as plain JSON (uvicorn's included), a bad setting is named in words, `meshscope demo` with
`--otlp-endpoint` says where its telemetry goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.demo.mesh import free_port_range, in_process_meshscope
from tests.ingest.asgi_server import free_port

COMMAND = [sys.executable, "-m", "meshscope.cli"]


def test_serve_logs_each_event_once_without_colour_codes(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("ui", "otlp_http", "otlp_grpc", "zipkin")}
    config = tmp_path / "c.yaml"
    config.write_text(
        "server:\n" + "".join(f"  {name}_port: {port}\n" for name, port in ports.items())
    )
    server = subprocess.Popen(
        [*COMMAND, "serve", "--config", str(config), "--storage", "memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{ports['ui']}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "\x1b[" not in err and "color_message" not in err
    lines = [json.loads(line) for line in err.splitlines()]  # every line is a JSON object
    events = Counter((r["logger"], r["event"], r.get("listener")) for r in lines)
    assert [event for event, n in events.items() if n > 1] == []
    listening = {r["listener"]: r["port"] for r in lines if r["event"] == "listening"}
    names = {"ui+query": "ui", "otlp-http": "otlp_http", "otlp-grpc": "otlp_grpc"}
    assert listening == {listener: ports[names.get(listener, listener)] for listener in
                         ("ui+query", "otlp-http", "otlp-grpc", "zipkin")}  # fmt: skip
    assert [r["event"] for r in lines][-1] == "stopped"


def test_listening_names_the_port_taken_for_port_0(tmp_path: Path) -> None:
    """With every port 0, each `listening` event names the port the listener took (it said
    0), and that port answers."""
    config = tmp_path / "c.yaml"
    config.write_text("server:\n" + "".join(f"  {name}_port: 0\n" for name in
                      ("ui", "otlp_http", "otlp_grpc", "zipkin")))  # fmt: skip
    server = subprocess.Popen(
        [*COMMAND, "serve", "--config", str(config), "--storage", "memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    listening: dict[str, int] = {}
    # The server is stopped after 60 s whatever happens, so a silent one cannot hang the test.
    watchdog = threading.Timer(60, server.kill)
    watchdog.start()
    try:
        assert server.stderr is not None
        for line in server.stderr:
            record = json.loads(line)
            if record["event"] == "listening":
                listening[record["listener"]] = record["port"]
            if len(listening) == 4:
                break
        health = httpx.get(f"http://127.0.0.1:{listening['ui+query']}/health", timeout=10)
        assert health.status_code == 200
        otlp = httpx.post(
            f"http://127.0.0.1:{listening['otlp-http']}/v1/traces",
            content=b"",
            headers={"Content-Type": "application/x-protobuf"},
            timeout=10,
        )
        assert otlp.status_code == 200
    finally:
        watchdog.cancel()
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert sorted(listening) == ["otlp-grpc", "otlp-http", "ui+query", "zipkin"]
    assert all(port > 0 for port in listening.values()), listening
    assert len(set(listening.values())) == 4


def test_a_setting_of_the_wrong_type_is_named_in_words(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("server:\n  ui_port: high\n")
    run = subprocess.run(
        [*COMMAND, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "meshscope: setting server.ui_port must be an integer, got 'high'"
    )


def test_command_line_options_are_checked_as_the_settings_are(tmp_path: Path) -> None:
    """`--ui-port 70000` is refused as `server.ui_port: 70000` is (it was a traceback, exit
    1), and `--storage clickhouse` meets the ClickHouse section's checks."""
    run = subprocess.run(
        [*COMMAND, "serve", "--storage", "memory", "--ui-port", "70000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (run.returncode, run.stderr.strip()) == (
        2, "meshscope: setting server.ui_port must be a port number, got 70000"
    )  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text("storage:\n  clickhouse:\n    cluster: x\n")
    run = subprocess.run(
        [*COMMAND, "serve", "--config", str(config), "--storage", "clickhouse"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith("meshscope: setting storage.clickhouse.cluster is not used")


def test_demo_with_an_endpoint_says_where_telemetry_goes() -> None:
    base = free_port_range(40)
    with in_process_meshscope() as (_, endpoint):
        demo = subprocess.Popen(
            [*COMMAND, "demo", "--otlp-endpoint", endpoint, "--base-port", str(base),
             "--rate", "0", "--logs", "-"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert demo.stdout is not None
            banner = [demo.stdout.readline() for _ in range(3)]
        finally:
            demo.send_signal(signal.SIGINT)
            demo.communicate(timeout=30)
    assert banner[0].startswith("meshscope demo is running")
    assert banner[1].split() == ["telemetry", "sent", "to", endpoint, "(OTLP/HTTP)"]
    assert "(external)" not in "".join(banner)
    assert demo.returncode == 0
