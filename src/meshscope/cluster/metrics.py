"""The cluster's own series on `/metrics`: items forwarded to and received from peers, failed
forwards, bytes in flight, split requests, and this node's ring."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.cluster.membership import Membership
from meshscope.cluster.routes import Received
from meshscope.cluster.sink import ClusterSink
from meshscope.metric_families import counters


class ClusterCollector(Collector):
    def __init__(
        self, sink: ClusterSink, received: Received, membership: Membership | None = None
    ) -> None:
        self._sink = sink
        self._received = received
        self._membership = membership

    def collect(self) -> Iterator[Metric]:
        forwarder = self._sink.forwarder
        ring = self._sink.ring
        info = GaugeMetricFamily(
            "meshscope_cluster_info",
            "This node's id and the version of its ring (the same on nodes that agree).",
            labels=["node", "ring_version", "peers"],
        )
        info.add_metric([forwarder.node_id, ring.version, str(len(ring.peers))], 1)
        yield info
        yield counters(
            "meshscope_cluster_forwarded_items",
            "Spans (kind traces, zipkin) and log records (logs) forwarded to their owner and"
            " committed there; pairing records (sides) of spans stored here, taken by their"
            " trace's owner for its pairing.",
            ["kind", "peer"],
            forwarder.forwarded,
        )
        yield counters(
            "meshscope_cluster_forward_requests",
            "Requests made to peers to forward items (trace parts that wait while two are on"
            " their way go together in the next: fewer requests than parts under load).",
            ["kind", "peer"],
            forwarder.requests,
        )
        yield counters(
            "meshscope_cluster_forward_failed_items",
            "Items whose forward failed (peer down, slow or overloaded): the client was answered"
            " an error and retries.",
            ["kind", "peer"],
            forwarder.failed,
        )
        yield counters(
            "meshscope_cluster_received_items",
            "Items other nodes forwarded here, committed (spans, log records) or taken for"
            " this node's pairing (sides: pairing records).",
            ["kind"],
            self._received.items,
        )
        inflight = GaugeMetricFamily(
            "meshscope_cluster_forward_inflight_bytes",
            "Bytes being forwarded to each peer now.",
            labels=["peer"],
        )
        for peer in forwarder.urls:
            if peer != forwarder.node_id:
                inflight.add_metric([peer], forwarder.inflight.get(peer, 0))
        yield inflight
        if self._membership is not None:
            yield from self._members(self._membership)
        yield CounterMetricFamily(
            "meshscope_cluster_split_traces",
            "Traces in flight when this node's ring changed (a span started before the change)"
            " whose spans this node then routed to a slot's new owner: their spans before and"
            " after may be paired, counted and sampled on two nodes. Counted once per trace"
            " per change, for cluster.split_watch_seconds after it.",
            value=self._sink.split_traces,
        )
        yield CounterMetricFamily(
            "meshscope_cluster_split_requests",
            "Client requests with items (or pairing records) another node owns, forwarded"
            " in whole or in part.",
            value=self._sink.split_requests,
        )
        yield CounterMetricFamily(
            "meshscope_cluster_refused_requests",
            "Client requests refused (429) before they were split: this node's ingest was busy.",
            value=self._sink.refused_requests,
        )

    @staticmethod
    def _members(membership: Membership) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "meshscope_cluster_peer_up",
            "Whether each peer is in this node's ring (answered its health checks).",
            labels=["peer"],
        )
        for peer in sorted(membership.urls):
            up.add_metric([peer], int(peer in membership.live))
        yield up
        yield CounterMetricFamily(
            "meshscope_cluster_ring_changes",
            "Times this node's ring changed (a peer left or came back).",
            value=membership.changes,
        )
        yield CounterMetricFamily(
            "meshscope_cluster_moved_slots",
            "Slots (of 4096) whose owner changed; traces in flight in them may be split"
            " (meshscope_cluster_split_traces counts those seen).",
            value=membership.moved_slots,
        )
