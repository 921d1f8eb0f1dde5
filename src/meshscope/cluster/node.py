"""Assembles this node's cluster role from the `cluster:` section (called by `app.build`)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import Route

from meshscope.cluster.config import NODE_LABEL, ClusterConfig
from meshscope.cluster.forward import Forwarder
from meshscope.cluster.membership import Membership
from meshscope.cluster.metrics import ClusterCollector
from meshscope.cluster.ring import Ring
from meshscope.cluster.routes import Received, cluster_routes
from meshscope.cluster.sink import ClusterSink
from meshscope.cluster.tls import peer_verify
from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.sink import IngestSink
from meshscope.ingest.workers import WorkerSink
from meshscope.model.metrics import Labels
from meshscope.pipeline.writer import BatchWriter, Committer
from meshscope.tenancy.writers import TenantWriters


@dataclass(frozen=True, slots=True)
class ClusterNode:
    sink: ClusterSink
    routes: list[Route]
    collector: ClusterCollector
    membership: Membership | None  # None: the ring is the static peer list

    def start(self) -> None:
        if self.membership is not None:
            self.membership.start()

    def stop(self) -> None:
        if self.membership is not None:
            self.membership.stop()


def node_labels(config: ClusterConfig) -> Labels:
    """The labels every derived series of this node carries (none outside a cluster)."""
    return ((NODE_LABEL, config.node_id),) if config.enabled else ()


def _never() -> bool:
    return False


def build_cluster(config: ClusterConfig, local: IngestSink, limits: IngestLimits) -> ClusterNode:
    urls = config.peer_urls() or {config.node_id: ""}
    verify = peer_verify(config)
    ring = Ring.of(urls)
    forwarder = Forwarder(
        config.node_id,
        urls,
        config.forward_timeout_seconds,
        config.max_forward_bytes,
        config.token,
        verify,
    )
    workers = local if isinstance(local, WorkerSink) else None
    saturated = (
        local.saturated if isinstance(local, WorkerSink | BatchWriter | TenantWriters) else _never
    )
    committer: Committer | None = workers.writer if workers is not None else None
    if isinstance(local, BatchWriter | TenantWriters):
        committer = local
    sink = ClusterSink(
        local,
        ring,
        forwarder,
        limits.max_body_bytes,
        workers,
        saturated,
        watch_s=config.split_watch_seconds,
        shared_store=bool(config.shards),
        committer=committer,
    )
    received = Received()
    membership = None
    if config.health_interval_seconds > 0 and len(urls) > 1:
        membership = Membership(
            config.node_id, urls, config.health_interval_seconds, sink.use, verify=verify
        )
    return ClusterNode(
        sink=sink,
        routes=cluster_routes(sink, config.node_id, limits, received),
        collector=ClusterCollector(sink, received, membership),
        membership=membership,
    )
