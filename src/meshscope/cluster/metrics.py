"""The cluster's own series on `/metrics`: items forwarded to and received from peers, failed
forwards, bytes in flight, split requests, and this node's ring."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.cluster.ring import Ring
from meshscope.cluster.routes import Received
from meshscope.cluster.sink import ClusterSink


class ClusterCollector(Collector):
    def __init__(self, sink: ClusterSink, ring: Ring, received: Received) -> None:
        self._sink = sink
        self._ring = ring
        self._received = received

    def collect(self) -> Iterator[Metric]:
        forwarder = self._sink.forwarder
        info = GaugeMetricFamily(
            "meshscope_cluster_info",
            "This node's id and the version of its ring (the same on nodes that agree).",
            labels=["node", "ring_version", "peers"],
        )
        info.add_metric([forwarder.node_id, self._ring.version, str(len(self._ring.peers))], 1)
        yield info
        forwarded = CounterMetricFamily(
            "meshscope_cluster_forwarded_items",
            "Spans (kind traces, zipkin) and log records (logs) forwarded to their owner and"
            " committed there.",
            labels=["kind", "peer"],
        )
        for (kind, peer), count in sorted(forwarder.forwarded.items()):
            forwarded.add_metric([kind, peer], count)
        yield forwarded
        failed = CounterMetricFamily(
            "meshscope_cluster_forward_failed_items",
            "Items whose forward failed (peer down, slow or overloaded): the client was answered"
            " an error and retries.",
            labels=["kind", "peer"],
        )
        for (kind, peer), count in sorted(forwarder.failed.items()):
            failed.add_metric([kind, peer], count)
        yield failed
        received = CounterMetricFamily(
            "meshscope_cluster_received_items",
            "Items other nodes forwarded here, committed.",
            labels=["kind"],
        )
        for kind, count in sorted(self._received.items.items()):
            received.add_metric([kind], count)
        yield received
        inflight = GaugeMetricFamily(
            "meshscope_cluster_forward_inflight_bytes",
            "Bytes being forwarded to each peer now.",
            labels=["peer"],
        )
        for peer in self._ring.peers:
            if peer != forwarder.node_id:
                inflight.add_metric([peer], forwarder.inflight.get(peer, 0))
        yield inflight
        yield CounterMetricFamily(
            "meshscope_cluster_split_requests",
            "Client requests whose items belonged to more than one node.",
            value=self._sink.split_requests,
        )
