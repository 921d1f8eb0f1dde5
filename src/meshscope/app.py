"""The one wiring place: `build(config)` assembles store, pipeline, writer and HTTP apps."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from meshscope.alerting.notifier import AlertNotifier, NotifierCollector
from meshscope.alerting.rule_queries import rule_queries
from meshscope.alerting.rules import RuleEvaluator
from meshscope.api.exemplars import exemplar_routes
from meshscope.api.http_metrics import HttpMetrics
from meshscope.api.jaeger_metrics import jaeger_metrics_routes
from meshscope.api.loki import loki_query_routes
from meshscope.api.loki_detected import loki_detected_routes
from meshscope.api.loki_index import loki_index_routes
from meshscope.api.meshscope import meshscope_routes
from meshscope.api.openapi import openapi_routes
from meshscope.api.openapi_routes import OTLP as OTLP_APP
from meshscope.api.openapi_routes import ZIPKIN as ZIPKIN_APP
from meshscope.api.prometheus import prometheus_routes
from meshscope.api.sampling import sampling_routes
from meshscope.api.sampling_metrics import SamplingCollector
from meshscope.api.selfmetrics import (
    DuckDBStoreCollector,
    ShardCollector,
    WorkerCollector,
    metrics_route,
)
from meshscope.api.slo import slo_routes
from meshscope.api.tempo import tempo_routes
from meshscope.api.traces import trace_routes
from meshscope.api.whoami import whoami_routes
from meshscope.api.zipkin_read import zipkin_read_routes
from meshscope.auth.grpc import AuthInterceptor
from meshscope.auth.http import guard_routes
from meshscope.auth.metrics import AuthCollector
from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.auth.tls import TlsFiles, load_tls
from meshscope.auth.tokens import TokenStore
from meshscope.clock import Clock, SystemClock
from meshscope.cluster.node import ClusterNode, build_cluster, node_labels
from meshscope.config import Config, ConfigError
from meshscope.ingest.http import OtlpDecoders, otlp_http_routes, zipkin_routes
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.loki_http import loki_push_routes
from meshscope.ingest.remote_write_http import remote_write_routes
from meshscope.ingest.scrape import Scraper
from meshscope.ingest.sink import IngestSink
from meshscope.ingest.workers import WorkerSettings, WorkerSink
from meshscope.limits.grpc import TenantInterceptor
from meshscope.limits.http import limit_routes
from meshscope.limits.limiter import Limiter
from meshscope.limits.metrics import LimitsCollector
from meshscope.pipeline.chain import Pipeline, PipelineSettings
from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.pipeline.writer import BatchWriter, Committer, WriterSettings
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.store.base import InsertsMakeParts, Maintained, Storage, StoreUnavailableError
from meshscope.store.duckdb.storage import DuckDBStorage
from meshscope.store.duckdb.warmup import parse_size
from meshscope.store.factory import StorageOpenError, open_storage
from meshscope.store.twophase import TwoPhaseStorage
from meshscope.store.warm import Warmable, WarmUpThread
from meshscope.tenancy.grpc import TenancyInterceptor
from meshscope.tenancy.http import tenant_routes
from meshscope.tenancy.places import (
    clickhouse_database,
    clickhouse_tenants,
    duckdb_path,
    duckdb_tenants,
)
from meshscope.tenancy.stacks import Stack, TenantStacks
from meshscope.tenancy.storage import TenantStorage
from meshscope.tenancy.writers import TenantWriters
from meshscope.ui.routes import ui_routes as web_ui_routes

NS_PER_HOUR = 3600 * 10**9

log = logging.getLogger(__name__)


@dataclass(slots=True)
class App:
    config: Config
    storage: Storage  # what the read APIs read (with tenancy on: the request's tenant's)
    stack: Stack  # the default tenant's store, pipeline and writer (the only ones when off)
    sink: IngestSink  # the writer(s), or worker processes in front of them
    limits: IngestLimits
    decoders: OtlpDecoders
    scraper: Scraper
    ui: Starlette
    otlp_http: Starlette
    zipkin: Starlette
    notifier: AlertNotifier | None = None  # SLO alerts to Alertmanager, when configured
    rules: RuleEvaluator | None = None  # with alerting rule files: their evaluation
    tokens: TokenStore | None = None  # with auth on: who each credential is (reloadable)
    tls: TlsFiles | None = None  # with server.tls set: every listener's certificate
    grpc_interceptors: tuple[grpc.aio.ServerInterceptor, ...] = ()
    limiter: Limiter | None = None  # with `limits:` set: per-tenant ingest rates
    cluster: ClusterNode | None = None  # cluster mode: `sink` routes by trace owner
    stacks: TenantStacks | None = None  # with tenancy on: each tenant's store and writer

    @property
    def pipeline(self) -> Pipeline:
        return self.stack.pipeline

    @property
    def writer(self) -> BatchWriter:
        return self.stack.writer

    @property
    def workers(self) -> WorkerSink | None:
        local = self.cluster.sink.local if self.cluster is not None else self.sink
        return local if isinstance(local, WorkerSink) else None

    def start(self) -> None:
        if self.stacks is not None:
            self.stacks.start()
        else:
            self.stack.start()
        if self.workers is not None:
            self.workers.start()
        if self.cluster is not None:
            self.cluster.start()
        if self.rules is not None:
            self.rules.start()
        if self.notifier is not None:
            self.notifier.start()

    def stop(self) -> None:
        """Commit what was accepted, flush derived metrics, close the store(s)."""
        if self.notifier is not None:
            self.notifier.stop()
        if self.rules is not None:
            self.rules.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.workers is not None:
            self.workers.stop()
        if self.stacks is not None:
            self.stacks.stop()
        else:
            self.stack.stop()


def build(config: Config, clock: Clock | None = None) -> App:
    clock = clock or SystemClock()
    # Files named by the config first: a bad one stops the start before the store is opened.
    tls = load_tls(config.server.tls)
    tokens = (
        TokenStore(config.auth.tokens_file, config.auth.reload_interval_seconds)
        if config.auth.enabled
        else None
    )
    limiter = Limiter(config.limits) if config.limits.enabled else None
    stacks: TenantStacks | None = None
    if config.tenancy.enabled:
        stacks = TenantStacks(
            lambda tenant: build_stack(config, clock, tenant, limiter),
            known_tenants(config),
            config.tenancy.max_tenants,
        )
        default = stacks.default
        storage: Storage = TenantStorage(stacks)
        committer: Committer = TenantWriters(stacks)
    else:
        default = build_stack(config, clock, DEFAULT_TENANT, limiter)
        storage = default.storage
        committer = default.writer
    writers = stacks.all if stacks is not None else lambda: [default]
    limits = IngestLimits()
    sink: IngestSink = committer
    # Head sampling counts its decisions in this process: then workers are not used (ADR 0006).
    if (
        config.pipeline.ingest_workers
        and isinstance(default.storage, TwoPhaseStorage)
        and not default.pipeline.samples_in_process
    ):
        workers = WorkerSettings(processes=config.pipeline.ingest_workers)
        sink = WorkerSink(committer, workers, limits.max_body_bytes)
    local_sink = sink
    cluster = build_cluster(config.cluster, sink, limits) if config.cluster.enabled else None
    if cluster is not None:
        sink = cluster.sink
    decoders = OtlpDecoders()  # one delta-to-cumulative state for OTLP over HTTP and gRPC
    scraper = Scraper(config.scrape, sink, clock)
    http_metrics = HttpMetrics()
    sampling_stats = SamplingCollector(
        lambda: [(stack.pipeline.tail, stack.pipeline.head) for stack in writers()]
    )
    rules = (
        RuleEvaluator(
            config.alerting.rule_groups,
            rule_queries(storage, config.query),
            load=config.alerting.load_rules,
        )
        if config.alerting.rule_groups
        else None
    )
    notifier = None
    if config.alerting.alertmanagers and (config.slos or rules is not None):
        ui_url = f"http://{config.server.host}:{config.server.ui_port}"
        notifier = AlertNotifier(storage.metrics, config.slos, config.alerting, ui_url, rules=rules)
    ui_routes: list[BaseRoute] = [
        health_route(),
        metrics_route(
            lambda: [stack.writer for stack in writers()],
            http=http_metrics,
            scraper=scraper,
            store_paths=(
                (lambda: [store_file(config, stack.tenant) for stack in writers()])
                if config.storage.kind == "duckdb"
                else None
            ),
            collectors=[
                sampling_stats,
                *([NotifierCollector(notifier)] if notifier else []),
                *([AuthCollector(tokens)] if tokens is not None else []),
                *([WorkerCollector(local_sink)] if isinstance(local_sink, WorkerSink) else []),
                *([cluster.collector] if cluster is not None else []),
                *([LimitsCollector(limiter)] if limiter is not None else []),
                *(
                    [ShardCollector(lambda: [stack.storage for stack in writers()])]
                    if config.cluster.shards
                    else []
                ),
                *(
                    [
                        DuckDBStoreCollector(
                            lambda: [
                                stack.storage.memory()
                                for stack in writers()
                                if isinstance(stack.storage, DuckDBStorage)
                            ]
                        )
                    ]
                    if config.storage.kind == "duckdb"
                    else []
                ),
            ],
        ),
        *(cluster.routes if cluster is not None else []),
        *trace_routes(storage),
        *jaeger_metrics_routes(storage.metrics),
        *exemplar_routes(storage.traces),
        *tempo_routes(storage),
        *prometheus_routes(MetricStoreQueryable(storage.metrics)),
        *remote_write_routes(sink, limits),
        *loki_push_routes(sink, limits),
        *loki_query_routes(storage, clock),
        *loki_index_routes(storage, clock),
        *loki_detected_routes(storage, clock),
        *meshscope_routes(storage),
        *whoami_routes(tenancy=stacks is not None),
        *slo_routes(storage.metrics, config.slos, rules=rules),
        *sampling_routes(config.sampling.remote),
        *openapi_routes(
            {OTLP_APP: config.server.otlp_http_port, ZIPKIN_APP: config.server.zipkin_port}
        ),
        *web_ui_routes(storage),
    ]
    middleware = [http_metrics.middleware()]
    # Reads answer an unavailable store 503 in their API's envelope (api/handlers.py); this
    # is for the routes that read outside it (stats, trace logs, SLOs, the UI's pages).
    unavailable = {StoreUnavailableError: store_unavailable}
    otlp_routes: list[BaseRoute] = [*otlp_http_routes(sink, limits, decoders), health_route()]
    zipkin_app_routes: list[BaseRoute] = [
        *zipkin_routes(sink, limits),
        *zipkin_read_routes(storage),
        health_route(),
    ]
    apps = (("ui", ui_routes), ("otlp_http", otlp_routes), ("zipkin", zipkin_app_routes))
    # Gates wrap in place, innermost first: auth runs first, then tenancy, then limits.
    if limiter is not None:  # inside the auth gates: the principal is known by then
        for name, routes in apps:
            limit_routes(name, routes, limiter)
    if stacks is not None:
        for name, routes in apps:
            tenant_routes(name, routes, stacks.can_open)
    if tokens is not None:  # with auth off no route is wrapped: no per-request work
        for name, routes in apps:
            guard_routes(name, routes, tokens, metrics_open=config.auth.metrics_open)
    ui = Starlette(routes=ui_routes, middleware=middleware, exception_handlers=unavailable)
    zipkin = Starlette(
        routes=zipkin_app_routes, middleware=middleware, exception_handlers=unavailable
    )
    for reads in (ui, zipkin):  # read by api/handlers.threaded for each query
        reads.state.query_limits = config.query
        if limiter is not None:  # with each tenant's overrides
            reads.state.tenant_query_limits = limiter.query_limits
    return App(
        config=config,
        storage=storage,
        stack=default,
        sink=sink,
        limits=limits,
        decoders=decoders,
        scraper=scraper,
        ui=ui,
        otlp_http=Starlette(routes=otlp_routes, middleware=middleware),
        zipkin=zipkin,
        notifier=notifier,
        rules=rules,
        tokens=tokens,
        tls=tls,
        grpc_interceptors=(
            *([AuthInterceptor(tokens)] if tokens is not None else []),
            *([TenancyInterceptor(stacks.can_open)] if stacks is not None else []),
            *([TenantInterceptor(limiter)] if limiter is not None else []),
        ),
        limiter=limiter,
        cluster=cluster,
        stacks=stacks,
    )


def build_stack(config: Config, clock: Clock, tenant: str, limiter: Limiter | None) -> Stack:
    """One tenant's store, pipeline and writer (the only ones with tenancy off). Its
    retention: the tenant's `retention_hours` limit where set, else `storage.retention_hours`
    (read again at each pass: the overrides file may change it)."""

    def retention_hours() -> float:
        hours = limiter.of(tenant).retention_hours if limiter is not None else 0.0
        return hours or config.storage.retention_hours

    try:
        storage = open_storage(
            config.storage.kind,
            store_file(config, tenant),
            config.storage.duckdb.memory_limit,
            parse_size(config.storage.duckdb.sample_cache),
            clickhouse_dsn=config.storage.clickhouse.dsn,
            clickhouse_database=clickhouse_database(config.storage.clickhouse.database, tenant),
            retention_hours=retention_hours(),
            clickhouse_shards=config.cluster.shards,
            clickhouse_cluster=config.cluster.clickhouse_cluster,
        )
    except StorageOpenError as error:
        raise ConfigError(f"storage.kind {config.storage.kind}: {error}") from None
    settings = config.pipeline
    sampling = config.sampling
    pipeline = Pipeline(
        storage,
        clock,
        PipelineSettings(
            servicegraph_ttl_ns=int(settings.servicegraph_ttl_seconds * 1e9),
            servicegraph_max_pending=settings.servicegraph_max_pending,
            max_series_per_metric=settings.max_series_per_metric,
            series_labels=node_labels(config.cluster),
            spool_path=spool_file(config, tenant),
        ),
        head=HeadSamplingFilter(sampling.head.ratio) if sampling.head.enabled else None,
        tail=TailSampler.from_config(sampling.tail) if sampling.tail.enabled else None,
    )
    try:  # a restart goes on from the stored totals (reads would see a reset otherwise)
        pipeline.resume_derived()
    except Exception as error:
        log.warning("derived series start from zero: reading their stored totals failed: %s",
                    error)  # fmt: skip

    def apply_retention() -> None:
        storage.expire(clock.now_ns() - int(retention_hours() * NS_PER_HOUR))

    parts = storage if isinstance(storage, InsertsMakeParts) else None  # ClickHouse's
    writer = BatchWriter(
        pipeline,
        WriterSettings(
            flush_interval_s=settings.flush_interval_seconds,
            commit_window_s=settings.commit_window_seconds,
            commit_window_items=settings.commit_window_items,
            paired_calls_interval_s=parts.paired_calls_interval_s if parts is not None else 0.0,
            min_commit_interval_s=(
                config.storage.clickhouse.min_insert_interval_seconds if parts is not None else 0.0
            ),
        ),
        apply_retention,
        maintenance=storage.maintain if isinstance(storage, Maintained) else None,
    )
    warm_up = (
        WarmUpThread(storage)
        if config.storage.duckdb.warm_up and isinstance(storage, Warmable)
        else None
    )
    return Stack(tenant, storage, pipeline, writer, warm_up)


def spool_file(config: Config, tenant: str) -> str:
    """Where the tenant's pipeline keeps what a stop could not write (pipeline/spool.py):
    beside its store file (for ClickHouse, `storage.path`'s), one per cluster node; "" for
    the memory store."""
    if config.storage.kind == "memory":
        return ""
    node = "".join("." + re.sub(r"[^\w.-]", "_", value) for _, value in node_labels(config.cluster))
    return f"{store_file(config, tenant)}{node}.spool"


def store_file(config: Config, tenant: str) -> str:
    """The DuckDB file of `tenant` (the default tenant's is `storage.path`)."""
    return duckdb_path(config.storage.path, tenant)


def known_tenants(config: Config) -> list[str]:
    """Tenants other than the default with a store already (opened at start)."""
    if config.storage.kind == "duckdb":
        return duckdb_tenants(config.storage.path)
    if config.storage.kind == "clickhouse":
        dsn = config.cluster.shards[0] if config.cluster.shards else config.storage.clickhouse.dsn
        try:
            return clickhouse_tenants(dsn, config.storage.clickhouse.database)
        except (ValueError, StoreUnavailableError) as error:
            raise ConfigError(f"storage.kind clickhouse: {error}") from None
    return []


async def store_unavailable(request: Request, error: Exception) -> Response:
    return PlainTextResponse(f"storage unavailable: {error}", 503)


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def health_route() -> Route:
    return Route("/health", health, methods=["GET"])
