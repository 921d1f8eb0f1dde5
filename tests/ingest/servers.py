"""Real servers for the receiver tests: uvicorn and grpc.aio, each in its own thread.

Sinks: `PipelineSink` is the real pipeline over the in-memory store; the others fail the way
the production sink can (overloaded, unavailable) or the way a bug would (an exception).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from starlette.applications import Starlette
from starlette.routing import Route

from meshscope.clock import SystemClock
from meshscope.ingest.grpc import serve_grpc
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.otlp_http import otlp_http_routes
from meshscope.ingest.sink import IngestSink, OverloadedError, UnavailableError
from meshscope.ingest.workers import WorkerSettings, WorkerSink
from meshscope.ingest.zipkin_http import zipkin_routes
from meshscope.model.batch import Batch
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.memory import MemoryStorage
from tests.serving import serving

HOST = "127.0.0.1"


class PipelineSink:
    """The real pipeline over the in-memory store; a batch is stored when `submit` returns."""

    def __init__(self) -> None:
        self.storage = MemoryStorage()
        self.pipeline = Pipeline(self.storage, SystemClock())
        self.batches: list[Batch] = []

    async def submit(self, batch: Batch) -> None:
        self.pipeline.consume(batch)
        self.batches.append(batch)


class OverloadedSink:
    def __init__(self, retry_after_s: int = 7) -> None:
        self.retry_after_s = retry_after_s
        self.calls = 0

    async def submit(self, batch: Batch) -> None:
        self.calls += 1
        raise OverloadedError("queue full", self.retry_after_s)


class UnavailableSink:
    async def submit(self, batch: Batch) -> None:
        raise UnavailableError("disk full")


class BrokenSink:
    """Fails with an unexpected exception `failures` times, then stores like PipelineSink."""

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.received = 0
        self.stored = PipelineSink()

    async def submit(self, batch: Batch) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("a bug in the pipeline")
        self.received += 1
        await self.stored.submit(batch)


def receiver_app(sink: IngestSink, limits: IngestLimits | None = None) -> Starlette:
    routes: list[Route] = [*otlp_http_routes(sink, limits), *zipkin_routes(sink, limits)]
    return Starlette(routes=routes)


@contextmanager
def running_http(sink: IngestSink, limits: IngestLimits | None = None) -> Iterator[str]:
    """Serve the OTLP/HTTP and Zipkin routes with uvicorn on a free port; yield the base URL."""
    with serving(receiver_app(sink, limits)) as url:
        yield url


@contextmanager
def running_grpc(sink: IngestSink, limits: IngestLimits | None = None) -> Iterator[int]:
    """Serve OTLP/gRPC on a free port with an event loop in a thread; yield the port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test", daemon=True)
    thread.start()
    try:
        future = asyncio.run_coroutine_threadsafe(serve_grpc(sink, HOST, 0, limits), loop)
        server, port = future.result(10)
        try:
            yield port
        finally:
            asyncio.run_coroutine_threadsafe(_stop(server), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def _stop(server: grpc.aio.Server) -> None:
    await server.stop(None)


@contextmanager
def worker_sink(
    pipeline: Pipeline,
    workers: WorkerSettings | None = None,
    writer: WriterSettings | None = None,
) -> Iterator[WorkerSink]:
    """The real writer and ingest worker processes over `pipeline`, started; stopped after,
    and the pipeline's store closed."""
    batch_writer = BatchWriter(pipeline, writer or WriterSettings(flush_interval_s=3600))
    sink = WorkerSink(batch_writer, workers or WorkerSettings(processes=1))
    batch_writer.start()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
        batch_writer.stop()
        pipeline.storage.close()
