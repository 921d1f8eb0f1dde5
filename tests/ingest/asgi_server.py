"""Real HTTP servers for the Prometheus ingest tests: any ASGI app under uvicorn on 127.0.0.1,
and a sink that runs the real pipeline over the in-memory store, safe to read from the test's
thread while the server's thread writes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from meshscope.clock import SystemClock
from meshscope.model.batch import Batch
from meshscope.pipeline.chain import Pipeline
from meshscope.store.base import Series
from meshscope.store.memory import MemoryStorage
from tests.serving import serving as shared_serving

HOST = "127.0.0.1"
T = TypeVar("T")


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port in a thread; yield its base URL. Stops without
    waiting for hanging requests (the slow target's)."""
    with shared_serving(app, force_exit=True) as url:
        yield url


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now, never one this process handed out before: the kernel may give a
    port again once its probe socket is closed, and two servers of one test (a cluster's
    nodes) were once given the same one."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class LockedPipelineSink:
    """The real pipeline over MemoryStorage; reads go through `read` under the same lock."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.pipeline = Pipeline(self.storage, SystemClock())
        self.batches = 0
        self._lock = threading.Lock()

    async def submit(self, batch: Batch) -> None:
        with self._lock:
            self.pipeline.consume(batch)
            self.batches += 1

    def read(self, query: Callable[[MemoryStorage], T]) -> T:
        with self._lock:
            return query(self.storage)

    def series(self, name: str) -> list[Series]:
        return self.read(lambda s: s.metrics.select(name, [], 0, 2**62))

    def wait_for(self, check: Callable[[MemoryStorage], bool], timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.read(check):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout_s} s")
            time.sleep(0.05)
