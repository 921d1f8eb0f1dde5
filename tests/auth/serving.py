"""A real `meshscope serve` (memory store) with TLS and authentication, for the end-to-end
auth tests: readiness is polled over HTTPS on `/health`, which needs no token."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.auth.certs import Certs
from tests.e2e.test_durability import Ports, server_env


def tls_settings(certs: Certs, *, mutual: bool = False) -> dict[str, str]:
    settings = {
        "MESHSCOPE_SERVER__TLS__CERT_FILE": str(certs.server_cert),
        "MESHSCOPE_SERVER__TLS__KEY_FILE": str(certs.server_key),
    }
    if mutual:
        settings["MESHSCOPE_SERVER__TLS__CLIENT_CA_FILE"] = str(certs.ca)
    return settings


def auth_settings(tokens: Path, reload_interval_s: float = 0) -> dict[str, str]:
    return {
        "MESHSCOPE_AUTH__ENABLED": "true",
        "MESHSCOPE_AUTH__TOKENS_FILE": str(tokens),
        "MESHSCOPE_AUTH__RELOAD_INTERVAL_SECONDS": str(reload_interval_s),
        "MESHSCOPE_STORAGE__KIND": "memory",
    }


def client_context(certs: Certs, *, client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if client_cert:
        context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    return context


@contextmanager
def serve_tls(
    workdir: Path, ports: Ports, settings: dict[str, str], context: ssl.SSLContext
) -> Iterator[subprocess.Popen[bytes]]:
    env = server_env(workdir / "unused.duckdb", ports, settings)
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshscope.cli", "serve"], env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while not _healthy(ports.otlp_http, context):
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "meshscope did not start"
                time.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(60)


def _healthy(port: int, context: ssl.SSLContext) -> bool:
    try:
        response = httpx.get(f"https://127.0.0.1:{port}/health", verify=context, timeout=1)
    except (httpx.HTTPError, OSError):
        return False
    return response.status_code == 200
