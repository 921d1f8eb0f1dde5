"""meshscope's own `/metrics`, in the Prometheus text format via prometheus_client.

Ingest counters are read from the writer and the pipeline at scrape time (a custom collector),
so the hot path does not pay for metric updates. Optional parts: request latency per API
(`HttpMetrics`), the store's size on disk (a DuckDB file and its WAL), and the scraper's
per-target state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.api.http_metrics import HttpMetrics
from meshscope.ingest.scrape import Scraper
from meshscope.ingest.workers import WorkerSink
from meshscope.pipeline.writer import BatchWriter

if TYPE_CHECKING:
    from meshscope.store.duckdb.storage import StoreMemory


class IngestCollector(Collector):
    """The writers' and pipelines' counters: one writer's, or with tenancy on the sum over
    every tenant's."""

    def __init__(self, writers: Callable[[], Sequence[BatchWriter]]) -> None:
        self._writers = writers

    def collect(self) -> Iterator[Metric]:
        writers = self._writers()
        pipelines = [writer.pipeline for writer in writers]
        yield CounterMetricFamily(
            "meshscope_ingest_committed_items",
            "Items of the groups committed to the store: spans, log records, metric points"
            " and, in a cluster, pairing records taken from peers.",
            value=sum(writer.committed_items for writer in writers),
        )
        yield CounterMetricFamily(
            "meshscope_ingest_rejected_items",
            "Items refused because the ingest queue was full (answered 429/503).",
            value=sum(writer.rejected_items for writer in writers),
        )
        yield CounterMetricFamily(
            "meshscope_store_commits",
            "Group commits to the store.",
            value=sum(writer.commits for writer in writers),
        )
        windows = [writer.commit_window for writer in writers]
        holds = CounterMetricFamily(
            "meshscope_store_commit_window_holds",
            "Groups held open at low load for more requests to share their commit, by"
            " whether one came (paid) or not.",
            labels=["outcome"],
        )
        paid = sum(window.paid_holds for window in windows)
        holds.add_metric(["paid"], paid)
        holds.add_metric(["unpaid"], sum(window.holds for window in windows) - paid)
        yield holds
        yield GaugeMetricFamily(
            "meshscope_ingest_queue_items",
            "Items accepted and waiting for commit.",
            value=sum(writer.pending_items for writer in writers),
        )
        stats = [pipeline.pairer.stats for pipeline in pipelines]
        pairs = CounterMetricFamily(
            "meshscope_servicegraph_spans",
            "Service-graph pairing outcomes.",
            labels=["outcome"],
        )
        for outcome, field in (
            ("paired", "paired"),
            ("virtual_node", "virtual"),
            ("expired_unpaired", "expired_unpaired"),
            ("evicted", "evicted"),
            ("repeated", "repeated"),
            ("refused", "refused"),
        ):
            pairs.add_metric([outcome], sum(getattr(one, field) for one in stats))
        yield pairs
        yield GaugeMetricFamily(
            "meshscope_servicegraph_pending_spans",
            "Spans the service-graph pairer remembers (waiting for their pair, or paired"
            " and kept until their TTL).",
            value=sum(len(pipeline.pairer) for pipeline in pipelines),
        )
        yield GaugeMetricFamily(
            "meshscope_derived_series",
            "Derived metric series.",
            value=sum(len(pipeline.registry) for pipeline in pipelines),
        )
        yield GaugeMetricFamily(
            "meshscope_store_backlog_rows",
            "Tail-sampled spans and service-graph calls whose write failed, kept for the next.",
            value=sum(pipeline.backlog.rows for pipeline in pipelines),
        )
        yield CounterMetricFamily(
            "meshscope_store_backlog_dropped_rows",
            "Rows dropped from that backlog past its bound (a long store outage), and rows"
            " no column holds, each found alone by writing a failed write again in halves.",
            value=sum(pipeline.backlog.dropped for pipeline in pipelines),
        )
        yield CounterMetricFamily(
            "meshscope_derived_series_overflow",
            "Updates sent to an overflow series by the cardinality cap (span metrics and the"
            " service graph: one per series and flush).",
            value=sum(pipeline.registry.overflowed for pipeline in pipelines),
        )


class WorkerCollector(Collector):
    """`meshscope_ingest_worker_bodies`: request bodies decoded in the worker processes, by
    kind (OTLP traces and logs over HTTP and gRPC, Zipkin spans); and
    `meshscope_ingest_worker_refused_bodies`: those refused (429) before a worker took them,
    by reason."""

    def __init__(self, sink: WorkerSink) -> None:
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        bodies = CounterMetricFamily(
            "meshscope_ingest_worker_bodies",
            "Request bodies decoded and prepared in the ingest worker processes.",
            labels=["kind"],
        )
        for kind, count in self._sink.prepared_bodies.items():
            bodies.add_metric([kind], count)
        yield bodies
        refused = CounterMetricFamily(
            "meshscope_ingest_worker_refused_bodies",
            "Request bodies refused (429) before a worker decoded them: the bodies in the"
            " workers' hands at their byte cap (inflight_bytes), or the ingest queue full"
            " (queue_full).",
            labels=["reason"],
        )
        for reason, count in self._sink.refused_bodies.items():
            refused.add_metric([reason], count)
        yield refused


class StoreSizeCollector(Collector):
    """`meshscope_store_size_bytes`: the store files (one, or one per tenant) plus their
    write-ahead logs, if present."""

    def __init__(self, paths: Callable[[], Sequence[str]]) -> None:
        self._paths = paths

    def collect(self) -> Iterator[Metric]:
        size = 0
        for path in (name for base in self._paths() for name in (base, base + ".wal")):
            try:
                size += os.stat(path).st_size
            except OSError:
                continue
        yield GaugeMetricFamily(
            "meshscope_store_size_bytes", "Bytes on disk of the store file and its WAL.", size
        )


class DuckDBStoreCollector(Collector):
    """The DuckDB stores' memory, summed over the tenants' stores: `meshscope_store_duckdb_
    memory_bytes` (what DuckDB accounts for, bounded by `storage.duckdb.memory_limit`); outside
    that limit, `meshscope_store_trace_locator_memory_bytes` (what the trace locators hold in
    memory: 24 bytes an entry, ~1.3 for an entry of a run spilled to a file) and
    `meshscope_store_sample_cache_bytes` (the metric sample caches, bounded by
    `storage.duckdb.sample_cache`). And `meshscope_store_trace_locator_entries` (one per trace
    and write until folded, then one per trace and fold; ADR 0019, 0020) and
    `meshscope_store_trace_locator_file_bytes` (the spilled runs' files: disk the store file's
    size does not show, as they have no name)."""

    def __init__(self, memories: Callable[[], Sequence[StoreMemory]]) -> None:
        self._memories = memories

    def collect(self) -> Iterator[Metric]:
        memories = self._memories()
        for field, name, text in _STORE_MEMORY_GAUGES:
            yield GaugeMetricFamily(name, text, sum(getattr(memory, field) for memory in memories))


_STORE_MEMORY_GAUGES = (
    ("locator_entries", "meshscope_store_trace_locator_entries",
     "Entries of the trace locator, in memory or spilled to files."),
    ("locator_bytes", "meshscope_store_trace_locator_memory_bytes",
     "Bytes the trace locator holds in memory."),
    ("locator_file_bytes", "meshscope_store_trace_locator_file_bytes",
     "Bytes of the trace locator's runs spilled to files with no name (on disk)."),
    ("sample_cache_bytes", "meshscope_store_sample_cache_bytes",
     "Bytes of metric samples cached in memory, within storage.duckdb.sample_cache."),
    ("duckdb_bytes", "meshscope_store_duckdb_memory_bytes",
     "Bytes DuckDB accounts for in memory (duckdb_memory()), within its memory_limit."),
)  # fmt: skip
"""Each `StoreMemory` field, summed over the stores, as a gauge: its name and help."""


class ScrapeCollector(Collector):
    """The scraper's view of each target, labelled by job and instance."""

    def __init__(self, scraper: Scraper) -> None:
        self._scraper = scraper

    def collect(self) -> Iterator[Metric]:
        labels = ["job", "instance"]
        families = (
            (GaugeMetricFamily, "meshscope_scrape_target_up", "1 if the last scrape succeeded."),
            (GaugeMetricFamily, "meshscope_scrape_last_duration_seconds", "Last scrape's seconds."),
            (GaugeMetricFamily, "meshscope_scrape_last_samples", "Samples in the last scrape."),
            (CounterMetricFamily, "meshscope_scrapes", "Scrapes attempted."),
            (CounterMetricFamily, "meshscope_scrape_failures", "Scrapes that failed (up 0)."),
            (
                CounterMetricFamily,
                "meshscope_scrape_undelivered",
                "Scrapes the pipeline refused (overloaded, store unavailable, or a value the"
                " store cannot hold).",
            ),
        )
        out = [kind(name, help_, labels=labels) for kind, name, help_ in families]
        for health in self._scraper.targets:
            key = [health.target.job, health.target.instance]
            values: Sequence[float] = (
                1.0 if health.up else 0.0,
                health.last_duration_s,
                health.last_samples,
                health.scrapes,
                health.failures,
                health.undelivered,
            )
            for family, value in zip(out, values, strict=True):
                family.add_metric(key, value)
        yield from out


class ShardCollector(Collector):
    """`meshscope_clickhouse_shard_up{shard}` of the sharded ClickHouse stores (one per tenant
    with tenancy on): 0 while any of them takes the shard to be down (ADR 0015)."""

    def __init__(self, storages: Callable[[], Sequence[object]]) -> None:
        self._storages = storages

    def collect(self) -> Iterator[Metric]:
        from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage

        up = GaugeMetricFamily(
            "meshscope_clickhouse_shard_up",
            "1 if the ClickHouse shard (1-based, in cluster.shards order) answered its last probe"
            " or read, 0 while reads leave it out (probed at most every 5 s on scrapes).",
            labels=["shard"],
        )
        stores = [s for s in self._storages() if isinstance(s, ShardedClickHouseStorage)]
        if stores:
            down = {index for store in stores for index in store.shards_down()}
            for index in range(len(stores[0].shards)):
                up.add_metric([str(index + 1)], float(index not in down))
        yield up


def metrics_route(
    writers: Callable[[], Sequence[BatchWriter]],
    *,
    http: HttpMetrics | None = None,
    scraper: Scraper | None = None,
    store_paths: Callable[[], Sequence[str]] | None = None,
    collectors: Sequence[Collector] = (),
) -> Route:
    """`GET /metrics`: ingest and pipeline state of the `writers` (one per tenant with
    tenancy on), plus request latencies (`http`), scrape targets (`scraper`) and the store's
    size (`store_paths`: DuckDB files) when given."""
    registry = CollectorRegistry()
    registry.register(IngestCollector(writers))
    ProcessCollector(registry=registry)
    if http is not None:
        registry.register(http.duration)
    if scraper is not None:
        registry.register(ScrapeCollector(scraper))
    if store_paths is not None:
        registry.register(StoreSizeCollector(store_paths))
    for collector in collectors:
        registry.register(collector)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
