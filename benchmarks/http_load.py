"""An open-loop HTTP/1.1 load generator light enough not to be the bottleneck it measures.

Requests go out on a fixed schedule (request i at `begin + i / rate`), each on an idle
keep-alive connection or a new one when none is idle, so a slow answer never delays the next
request (no coordinated omission). Latency runs from the scheduled send to the last byte of
the answer. Requests are pre-encoded bytes and answers are parsed by `httptools` (the parser
uvicorn uses) on uvloop: about a third of the CPU per request of an aiohttp client (~110
vs ~330 us measured at 500 req/s), which matters on a 2-core machine where the generator
shares the cores with what it measures.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import httptools


@dataclass(slots=True)
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0


class _Connection(asyncio.Protocol):
    def __init__(self, pool: list[_Connection], result: Result) -> None:
        self._pool = pool
        self._result = result
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.WriteTransport | None = None
        self._started = 0.0
        self._waiting = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered with asyncio's ABCs, so no isinstance check.
        self._transport = cast(asyncio.WriteTransport, transport)

    def send(self, request: bytes, started: float) -> None:
        assert self._transport is not None
        self._started = started
        self._waiting = True
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail()

    def on_message_complete(self) -> None:
        latency = (time.perf_counter() - self._started) * 1000
        self._waiting = False
        if self._parser.get_status_code() == 200:
            self._result.latencies_ms.append(latency)
        else:
            self._result.failures += 1
        if self._parser.should_keep_alive():
            self._pool.append(self)
        elif self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting:
            self._fail()
        if self in self._pool:
            self._pool.remove(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self) -> None:
        if self._waiting:
            self._waiting = False
            self._result.failures += 1
        if self._transport is not None:
            self._transport.close()


async def run(
    host: str, port: int, paths: list[str], rate: float, seconds: float, warmup: int = 200
) -> Result:
    """Send `rate * seconds` GETs cycling through `paths`; latencies of the 200 answers."""
    loop = asyncio.get_running_loop()
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: http-load\r\n\r\n".encode()
        for path in paths
    ]
    idle: list[_Connection] = []
    connections: list[_Connection] = []
    result = Result()

    async def send(i: int, scheduled: float) -> None:
        if idle:
            connection = idle.pop()
        else:
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(idle, result), host, port
                )
            except OSError:
                result.failures += 1
                return
            connections.append(connection)
        connection.send(requests[i % len(requests)], scheduled)

    for i in range(warmup):  # open connections and warm both ends' code paths, one at a time
        await send(i, time.perf_counter())
        while not idle:
            await asyncio.sleep(0.0005)
    result.latencies_ms.clear()
    result.failures = 0
    total = int(rate * seconds)
    begin = time.perf_counter() + 0.01
    pending: set[asyncio.Task[None]] = set()
    for i in range(total):
        scheduled = begin + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            idle.pop().send(requests[i % len(requests)], scheduled)
        else:
            task = asyncio.create_task(send(i, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
    deadline = time.perf_counter() + 10
    while len(result.latencies_ms) + result.failures < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
    result.failures += total - len(result.latencies_ms) - result.failures
    for connection in connections:
        connection.close()
    return result
