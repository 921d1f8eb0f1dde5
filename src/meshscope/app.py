"""The one wiring place: `build(config)` assembles store, pipeline, writer and HTTP apps."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from meshscope.api.meshscope import meshscope_routes
from meshscope.api.openapi import openapi_routes
from meshscope.api.prometheus import prometheus_routes
from meshscope.api.selfmetrics import metrics_route
from meshscope.api.traces import trace_routes
from meshscope.api.zipkin_read import zipkin_read_routes
from meshscope.clock import Clock, SystemClock
from meshscope.config import Config
from meshscope.ingest.http import OtlpDecoders, otlp_http_routes, zipkin_routes
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.sink import IngestSink
from meshscope.ingest.workers import WorkerSettings, WorkerSink
from meshscope.pipeline.chain import Pipeline, PipelineSettings
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.store.base import Storage
from meshscope.store.factory import open_storage
from meshscope.store.twophase import TwoPhaseStorage

NS_PER_HOUR = 3600 * 10**9


@dataclass(slots=True)
class App:
    config: Config
    storage: Storage
    pipeline: Pipeline
    writer: BatchWriter
    sink: IngestSink  # the writer, or worker processes in front of it
    limits: IngestLimits
    decoders: OtlpDecoders
    ui: Starlette
    otlp_http: Starlette
    zipkin: Starlette

    def start(self) -> None:
        self.writer.start()
        if isinstance(self.sink, WorkerSink):
            self.sink.start()

    def stop(self) -> None:
        """Commit what was accepted, flush derived metrics, close the store."""
        if isinstance(self.sink, WorkerSink):
            self.sink.stop()
        self.writer.stop()
        self.storage.close()


def build(config: Config, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    storage = open_storage(config.storage.kind, config.storage.path)
    settings = config.pipeline
    pipeline = Pipeline(
        storage,
        clock,
        PipelineSettings(
            servicegraph_ttl_ns=int(settings.servicegraph_ttl_seconds * 1e9),
            servicegraph_max_pending=settings.servicegraph_max_pending,
            max_series_per_metric=settings.max_series_per_metric,
        ),
    )
    retention_ns = int(config.storage.retention_hours * NS_PER_HOUR)

    def apply_retention() -> None:
        storage.expire(clock.now_ns() - retention_ns)

    writer = BatchWriter(
        pipeline, WriterSettings(flush_interval_s=settings.flush_interval_seconds), apply_retention
    )
    limits = IngestLimits()
    sink: IngestSink = writer
    if settings.ingest_workers and isinstance(storage, TwoPhaseStorage):
        workers = WorkerSettings(processes=settings.ingest_workers)
        sink = WorkerSink(writer, workers, limits.max_body_bytes)
    decoders = OtlpDecoders()  # one delta-to-cumulative state for OTLP over HTTP and gRPC
    ui_routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        metrics_route(writer),
        *trace_routes(storage),
        *prometheus_routes(MetricStoreQueryable(storage.metrics)),
        *meshscope_routes(storage),
        *openapi_routes(),
    ]
    return App(
        config=config,
        storage=storage,
        pipeline=pipeline,
        writer=writer,
        sink=sink,
        limits=limits,
        decoders=decoders,
        ui=Starlette(routes=ui_routes),
        otlp_http=Starlette(routes=[*otlp_http_routes(sink, limits, decoders), health_route()]),
        zipkin=Starlette(
            routes=[*zipkin_routes(writer, limits), *zipkin_read_routes(storage), health_route()]
        ),
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def health_route() -> Route:
    return Route("/health", health, methods=["GET"])
