"""The service graph: nodes in order of first appearance, edges with their call counts."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.pipeline.derive.servicegraph import FAILED, REQUESTS
from meshscope.query.increase import increases
from meshscope.store.base import MAX_TIME_NS, Storage


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    request_count: int
    failed_count: int = 0
    connection_type: str = ""


@dataclass(frozen=True, slots=True)
class ServiceGraph:
    nodes: list[str]
    edges: list[Edge]


def service_graph(storage: Storage, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> ServiceGraph:
    """Edges from the servicegraph counters (pre-aggregated), never from raw spans, in order of
    each edge's first appearance (the store keeps series in first-write order); nodes are the
    catalog's services in order of first appearance, then any virtual node only edges name."""
    failed = {g.labels: g.value for g in increases(storage.metrics, FAILED, [], start_ns, end_ns)}
    edges: list[Edge] = []
    for growth in increases(storage.metrics, REQUESTS, [], start_ns, end_ns):
        count = round(growth.value)
        if count <= 0:
            continue
        labels = dict(growth.labels)
        edges.append(
            Edge(
                labels.get("client", ""),
                labels.get("server", ""),
                count,
                round(failed.get(growth.labels, 0.0)),
                labels.get("connection_type", ""),
            )
        )
    nodes = dict.fromkeys(storage.catalog.services())
    for edge in edges:
        nodes.setdefault(edge.source)
        nodes.setdefault(edge.target)
    return ServiceGraph(list(nodes), edges)
