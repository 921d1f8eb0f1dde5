"""Fixtures for the demo tests: free port ranges, an in-process meshscope (memory store) whose
storage the test reads directly, and the demo's two child processes."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from meshscope.app import App, build
from meshscope.config import Config, PipelineConfig, StorageConfig
from meshscope.demo.topology import DemoSettings

HOST = "127.0.0.1"


def free_port_range(size: int) -> int:
    """A base port whose `size` successors are all free now."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000 - size)
        sockets = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port range")


@contextmanager
def in_process_meshscope() -> Iterator[tuple[App, str]]:
    """meshscope's real app (pipeline, writer, OTLP/HTTP receiver) on the memory store."""
    config = Config(
        storage=StorageConfig(kind="memory"), pipeline=PipelineConfig(flush_interval_seconds=0.5)
    )
    app = build(config)
    app.start()
    server = uvicorn.Server(
        uvicorn.Config(app.otlp_http, host=HOST, port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield app, f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.stop()


@contextmanager
def demo_children(settings: DemoSettings) -> Iterator[None]:
    """The demo's sidecars and services processes, stopped (SIGTERM) afterwards."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "meshscope.demo.child", role, settings.to_json()],
            stdout=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        for role in ("sidecars", "services")
    ]
    try:
        deadline = time.monotonic() + 30
        for url in (
            f"{settings.url(settings.control_port)}/faults",
            f"{settings.url(settings.admin_port)}/health",
        ):
            while True:
                try:
                    if httpx.get(url).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert all(p.poll() is None for p in procs), "a demo process died"
                assert time.monotonic() < deadline, "the demo did not start"
                time.sleep(0.1)
        yield
    finally:
        for proc in procs[::-1]:
            proc.terminate()
            proc.wait(20)
