"""Fail open: the proxied traffic never depends on meshscope. A real `meshscope serve`
process is killed (SIGKILL) while requests flow through a sidecar; not one may fail, drops
are counted, and what was buffered reaches a restarted meshscope."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from meshscope.sidecar.settings import ExportSettings
from tests.ingest.asgi_server import free_port
from tests.sidecar.harness import LoopThread, running_sidecars, running_upstream, sidecar


@contextmanager
def meshscope_serve(ports: dict[str, int]) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    for name, port in ports.items():
        env[f"MESHSCOPE_SERVER__{name.upper()}_PORT"] = str(port)
    env["MESHSCOPE_PIPELINE__FLUSH_INTERVAL_SECONDS"] = "0.5"
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "serve", "--storage", "memory"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{ports['otlp_http']}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "meshscope did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _spans_stored(ui_port: int) -> int:
    stats = httpx.get(f"http://127.0.0.1:{ui_port}/api/meshscope/stats").json()
    return int(sum(stats["spans"].values()))


def _metric(text: str, name: str) -> float:
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.mark.slow
def test_killing_meshscope_does_not_fail_a_single_request() -> None:
    ports = {n: free_port() for n in ("ui", "otlp_http", "otlp_grpc", "zipkin")}
    export = ExportSettings(
        endpoint=f"http://127.0.0.1:{ports['otlp_http']}",
        flush_interval_s=0.1,
        max_batch=50,
        max_buffer=200,
    )
    loop = LoopThread()
    statuses: list[int] = []
    errors: list[str] = []
    stop = threading.Event()
    try:
        with (
            running_upstream(loop) as upstream,
            running_sidecars(loop, [sidecar("shop", upstream)], export) as running,
        ):
            base = f"http://127.0.0.1:{running.ports['shop/inbound']}"

            def traffic() -> None:
                with httpx.Client(timeout=5) as client:
                    while not stop.is_set():
                        try:
                            statuses.append(client.get(f"{base}/echo/item").status_code)
                        except httpx.HTTPError as error:
                            errors.append(repr(error))
                        time.sleep(0.002)

            worker = threading.Thread(target=traffic)
            with meshscope_serve(ports) as server:
                worker.start()
                time.sleep(1.5)
                before_kill = len(statuses)
                server.kill()  # SIGKILL: no goodbye
                server.wait(10)
            time.sleep(2.0)  # traffic goes on with meshscope down: the buffer fills and drops
            during_outage = len(statuses) - before_kill
            admin = f"http://127.0.0.1:{running.ports['admin']}/metrics"
            dropped = _metric(httpx.get(admin).text, "meshscope_sidecar_dropped_items_total")
            with meshscope_serve(ports) as restarted:
                deadline = time.monotonic() + 15
                while _spans_stored(ports["ui"]) < 200 and time.monotonic() < deadline:
                    time.sleep(0.1)
                delivered_after_restart = _spans_stored(ports["ui"])
                stop.set()
                worker.join(10)
                assert restarted.poll() is None
    finally:
        stop.set()
        loop.close()
    assert errors == []
    assert before_kill > 50 and during_outage > 200
    assert set(statuses) == {200}
    assert dropped > 0  # the buffer (200) could not hold the outage: counted, not hidden
    assert delivered_after_restart >= 200  # the buffer reached the restarted meshscope
