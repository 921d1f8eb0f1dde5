"""meshscope's own `/metrics`, in the Prometheus text format via prometheus_client.

Ingest counters are read from the writer and the pipeline at scrape time (a custom collector),
so the hot path does not pay for metric updates.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.pipeline.writer import BatchWriter


class IngestCollector(Collector):
    def __init__(self, writer: BatchWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        writer = self._writer
        pipeline = writer.pipeline
        yield CounterMetricFamily(
            "meshscope_ingest_committed_items",
            "Spans, logs, points and requests committed to the store.",
            value=writer.committed_items,
        )
        yield CounterMetricFamily(
            "meshscope_ingest_rejected_items",
            "Items refused because the ingest queue was full (answered 429/503).",
            value=writer.rejected_items,
        )
        yield CounterMetricFamily(
            "meshscope_store_commits", "Group commits to the store.", value=writer.commits
        )
        yield GaugeMetricFamily(
            "meshscope_ingest_queue_items",
            "Items accepted and waiting for commit.",
            value=writer.pending_items,
        )
        stats = pipeline.pairer.stats
        pairs = CounterMetricFamily(
            "meshscope_servicegraph_spans",
            "Service-graph pairing outcomes.",
            labels=["outcome"],
        )
        for outcome, value in (
            ("paired", stats.paired),
            ("virtual_node", stats.virtual),
            ("expired_unpaired", stats.expired_unpaired),
            ("evicted", stats.evicted),
        ):
            pairs.add_metric([outcome], value)
        yield pairs
        yield GaugeMetricFamily(
            "meshscope_servicegraph_pending_spans",
            "Spans waiting for their service-graph pair.",
            value=len(pipeline.pairer),
        )
        yield GaugeMetricFamily(
            "meshscope_derived_series", "Derived metric series.", value=len(pipeline.registry)
        )
        yield CounterMetricFamily(
            "meshscope_derived_series_overflow",
            "Observations sent to an overflow series by the cardinality cap.",
            value=pipeline.registry.overflowed,
        )


def metrics_route(writer: BatchWriter) -> Route:
    registry = CollectorRegistry()
    registry.register(IngestCollector(writer))
    ProcessCollector(registry=registry)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
