"""A real Prometheus remote-writes its own samples to meshscope with authentication on:
with `authorization: {credentials: <write token>}` (Prometheus' bearer settings) and with
`basic_auth` its samples arrive; with a read-only token nothing does."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from meshscope.app import build
from meshscope.config import load_config
from tests.auth.tokens import READER, WRITER, bearer, write_tokens
from tests.conformance import prometheus_server
from tests.ingest.asgi_server import free_port
from tests.serving import serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(prometheus_server.available()), reason="no prometheus binary"),
]
WRITE_USER = ("prometheus", "remote-write-password")


@pytest.fixture
def meshscope(tmp_path: Path) -> Iterator[str]:
    tokens = write_tokens(tmp_path / "tokens.yaml")
    with tokens.open("a") as file:
        file.write(
            f"  - {{name: prom-basic, username: {WRITE_USER[0]}, password: {WRITE_USER[1]},"
            " scopes: [write]}\n"
        )
    env = {
        "MESHSCOPE_STORAGE__KIND": "memory",
        "MESHSCOPE_AUTH__ENABLED": "true",
        "MESHSCOPE_AUTH__TOKENS_FILE": str(tokens),
    }
    app = build(load_config(env=env))
    app.start()
    try:
        with serving(app.ui) as url:
            yield url
    finally:
        app.stop()


@pytest.fixture
def prometheus(tmp_path: Path, meshscope: str) -> Iterator[None]:
    port = free_port()
    write = f"{meshscope}/api/v1/write"
    queue = "queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}"
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: self
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
remote_write:
  - url: {write}
    name: bearer
    authorization: {{credentials: {WRITER}}}
    write_relabel_configs: [{{target_label: via, replacement: bearer}}]
    {queue}
  - url: {write}
    name: basic
    basic_auth: {{username: {WRITE_USER[0]}, password: {WRITE_USER[1]}}}
    write_relabel_configs: [{{target_label: via, replacement: basic}}]
    {queue}
  - url: {write}
    name: reader
    authorization: {{credentials: {READER}}}
    write_relabel_configs: [{{target_label: via, replacement: reader}}]
    {queue}
""")
    with (tmp_path / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _vias(url: str) -> set[str]:
    answer = httpx.get(
        f"{url}/api/v1/query", params={"query": 'up{job="self"}'}, headers=bearer(READER)
    )
    assert answer.status_code == 200, answer.text
    return {item["metric"].get("via", "") for item in answer.json()["data"]["result"]}


def test_remote_write_with_credentials(meshscope: str, prometheus: None) -> None:
    deadline = time.monotonic() + 60
    while _vias(meshscope) != {"bearer", "basic"}:
        assert time.monotonic() < deadline, f"remote write did not arrive: {_vias(meshscope)}"
        time.sleep(0.5)
    time.sleep(2)  # the reader's queue has been trying just as long
    assert _vias(meshscope) == {"bearer", "basic"}
