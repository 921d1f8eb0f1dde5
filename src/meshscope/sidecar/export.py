"""Background OTLP/HTTP export of spans and log records, failing open.

Proxied requests only append to a bounded in-memory buffer; one task drains it in batches
every `flush_interval_s` (sooner when a batch is full). When meshscope is down or slow, the
failed batch goes back to the front of the buffer and the task backs off (up to 5 s); the
buffer never grows past `max_buffer`: what does not fit is dropped and counted. Nothing here
can fail or delay a proxied request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import aiohttp
from prometheus_client import Counter

from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span
from meshscope.sidecar.encode import LogRequest, SpanRequest
from meshscope.sidecar.metrics import SidecarMetrics
from meshscope.sidecar.settings import ExportSettings

log = logging.getLogger("meshscope.sidecar")
MAX_BACKOFF_S = 5.0
T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class _Queue(Generic[T]):
    def __init__(self, signal: str, path: str, new_request: Callable[[], Request[T]]) -> None:
        self.signal = signal
        self.path = path
        self.new_request = new_request
        self.items: deque[T] = deque()


class Exporter:
    def __init__(self, settings: ExportSettings, metrics: SidecarMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._spans: _Queue[Span] = _Queue("traces", "/v1/traces", SpanRequest)
        self._logs: _Queue[LogRecord] = _Queue("logs", "/v1/logs", LogRequest)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._dropped = metrics.dropped.labels("traces", "buffer_full")
        self._dropped_logs = metrics.dropped.labels("logs", "buffer_full")

    def add_span(self, span: Span) -> None:
        self._add(self._spans, span, self._dropped)

    def add_log(self, record: LogRecord) -> None:
        self._add(self._logs, record, self._dropped_logs)

    def _add(self, queue: _Queue[T], item: T, dropped: Counter) -> None:
        if len(queue.items) >= self.settings.max_buffer:
            dropped.inc()
            return
        queue.items.append(item)
        if len(queue.items) == self.settings.max_batch:
            self._wake.set()

    def pending(self) -> int:
        return len(self._spans.items) + len(self._logs.items)

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        connector = None
        if self.settings.ca_file:
            context = ssl.create_default_context(cafile=self.settings.ca_file)
            connector = aiohttp.TCPConnector(ssl=context)
        self._session = aiohttp.ClientSession(
            timeout=timeout, headers=dict(self.settings.headers), connector=connector
        )
        self._task = asyncio.create_task(self._run(), name="meshscope-sidecar-export")

    async def stop(self, drain_timeout_s: float = 2.0) -> None:
        """Stop the loop, then try once (bounded) to send what is buffered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout_s):
                while self.pending() and await self._drain_once():
                    pass
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        backoff = self.settings.flush_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            self._wake.clear()
            ok = True
            while ok and self.pending():
                ok = await self._drain_once()
            backoff = (
                self.settings.flush_interval_s if ok else min(MAX_BACKOFF_S, backoff * 2 + 0.1)
            )

    async def _drain_once(self) -> bool:
        """Send one batch of each signal that has items; False when an export failed."""
        ok = True
        if self._spans.items:
            ok = await self._send(self._spans)
        if self._logs.items:
            ok = await self._send(self._logs) and ok
        return ok

    async def _send(self, queue: _Queue[T]) -> bool:
        batch = [
            queue.items.popleft() for _ in range(min(self.settings.max_batch, len(queue.items)))
        ]
        assert self._session is not None
        status = await self._post(queue.path, await encode_in_chunks(queue.new_request(), batch))
        self.metrics.buffered.labels(queue.signal).set(len(queue.items))
        if status is not None and 200 <= status < 300:
            self.metrics.exported.labels(queue.signal).inc(len(batch))
            return True
        if status is not None and 400 <= status < 500 and status != 429:
            self.metrics.dropped.labels(queue.signal, "rejected").inc(len(batch))
            log.warning("meshscope rejected a batch", extra={"status": status})
            return True
        self.metrics.export_failures.labels(queue.signal).inc()
        room = self.settings.max_buffer - len(queue.items)
        keep = batch[:room] if room > 0 else []
        queue.items.extendleft(reversed(keep))
        if len(keep) < len(batch):
            self.metrics.dropped.labels(queue.signal, "buffer_full").inc(len(batch) - len(keep))
        return False

    async def _post(self, path: str, body: bytes) -> int | None:
        assert self._session is not None
        try:
            async with self._session.post(
                self.settings.endpoint + path,
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            log.debug("export failed: %s", error)
            return None


ENCODE_CHUNK = 8
"""Items converted between two yields to the event loop: ~0.2 ms of work (~25 us an item),
so a proxied request never waits behind a batch's conversion for longer than that."""


class Request(Protocol[T_contra]):
    """An export request built a few items at a time (sidecar.encode's Span/LogRequest)."""

    def add(self, items: Sequence[T_contra]) -> None: ...

    def serialize(self) -> bytes: ...


async def encode_in_chunks(request: Request[T], batch: Sequence[T]) -> bytes:
    """`batch` added to `request` ENCODE_CHUNK items at a time, the event loop free in
    between, then serialized once (one resource block per service, however many chunks)."""
    for start in range(0, len(batch), ENCODE_CHUNK):
        request.add(batch[start : start + ENCODE_CHUNK])
        await asyncio.sleep(0)
    return request.serialize()
