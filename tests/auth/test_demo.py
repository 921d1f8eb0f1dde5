"""`meshscope demo` against its own server with TLS and tokens on: with a write token in
`OTEL_EXPORTER_OTLP_HEADERS` and the CA in `OTEL_EXPORTER_OTLP_CERTIFICATE`, the demo's
services (`meshscope.instrument`) and sidecars deliver, read back over HTTPS with a read
token; without the variable the demo refuses to start and says why."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.auth.certs import make_certs
from tests.auth.serving import tls_settings
from tests.auth.tokens import READER, WRITER, bearer, write_tokens
from tests.demo.mesh import free_port_range
from tests.e2e.test_durability import Ports

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, ports: Ports) -> dict[str, str]:
    certs = make_certs(tmp_path / "certs")
    env = dict(os.environ)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "OTEL_EXPORTER_OTLP_HEADERS"):
        env.pop(name, None)  # requests would prefer the first two over the exporter's CA
    env.update(
        tls_settings(certs),
        MESHSCOPE_AUTH__ENABLED="true",
        MESHSCOPE_AUTH__TOKENS_FILE=str(write_tokens(tmp_path / "tokens.yaml")),
        MESHSCOPE_SERVER__UI_PORT=str(ports.ui),
        MESHSCOPE_SERVER__OTLP_HTTP_PORT=str(ports.otlp_http),
        MESHSCOPE_SERVER__OTLP_GRPC_PORT=str(ports.otlp_grpc),
        MESHSCOPE_SERVER__ZIPKIN_PORT=str(ports.zipkin),
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(certs.ca),
    )
    return env


def _demo(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "demo", "--storage", "memory", "--base-port",
         str(free_port_range(40)), "--logs", str(tmp_path / "services.jsonl")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_demo_without_a_token_says_so(tmp_path: Path) -> None:
    demo = _demo(tmp_path, _env(tmp_path, Ports()))
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 2
    assert "OTEL_EXPORTER_OTLP_HEADERS" in err and "Traceback" not in err
    assert "running" not in out


def test_demo_delivers_with_a_token_over_tls(tmp_path: Path) -> None:
    ports = Ports()
    env = _env(tmp_path, ports)
    env["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer%20{WRITER}"
    demo = _demo(tmp_path, env)
    context = ssl.create_default_context(cafile=env["OTEL_EXPORTER_OTLP_CERTIFICATE"])
    url = f"https://127.0.0.1:{ports.ui}/api/services"
    try:
        deadline = time.monotonic() + 90
        services: list[str] = []
        while not {"web", "api", "db"} <= set(services):
            assert demo.poll() is None, demo.communicate()[1]
            assert time.monotonic() < deadline, f"the demo's services did not arrive: {services}"
            time.sleep(0.5)
            try:
                answer = httpx.get(url, headers=bearer(READER), verify=context, timeout=5)
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                services = answer.json()["data"] or []
        assert httpx.get(url, verify=context, timeout=5).status_code == 401
    finally:
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    assert f"https://127.0.0.1:{ports.ui}" in out  # the banner shows the https address
    assert WRITER not in out + err
