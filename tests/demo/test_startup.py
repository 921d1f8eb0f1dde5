"""`meshscope demo` does not say it is running when its own server did not start, even if
another program answers /health on the UI port it was given."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.demo.mesh import free_port_range
from tests.ingest.asgi_server import free_port


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_demo_with_its_ui_port_taken_by_another_server_fails_without_running(
    tmp_path: Path,
) -> None:
    other = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Health)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    base = free_port_range(40)
    env = dict(os.environ)
    env["MESHSCOPE_SERVER__UI_PORT"] = str(other.server_address[1])
    for name in ("OTLP_HTTP", "OTLP_GRPC", "ZIPKIN"):
        env[f"MESHSCOPE_SERVER__{name}_PORT"] = str(free_port())
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "meshscope.cli", "demo", "--data", str(tmp_path / "d.duckdb"),
             "--base-port", str(base), "--logs", str(tmp_path / "services.jsonl")],
            env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
    finally:
        other.shutdown()
        other.server_close()
    assert demo.returncode != 0
    assert "running" not in demo.stdout
    assert f"{other.server_address[1]}" in demo.stderr and f"pid {os.getpid()}" in demo.stderr
    assert "Traceback" not in demo.stderr
