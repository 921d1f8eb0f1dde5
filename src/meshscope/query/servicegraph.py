"""The service graph: nodes in order of first appearance, edges with their call counts."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.model.metrics import Labels
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
    # Summed per edge: a cluster's nodes each have their own series of an edge (their
    # `meshscope_node` label, ADR 0015), increases taken per series first.
    requests: dict[tuple[str, str, str], float] = {}
    failed: dict[tuple[str, str, str], float] = {}
    for name, sums in ((REQUESTS, requests), (FAILED, failed)):
        for growth in increases(storage.metrics, name, [], start_ns, end_ns):
            key = _edge(growth.labels)
            sums[key] = sums.get(key, 0.0) + growth.value
    edges: list[Edge] = []
    for (source, target, kind), value in requests.items():
        count = round(value)
        if count > 0:
            edges.append(
                Edge(source, target, count, round(failed.get((source, target, kind), 0.0)), kind)
            )
    nodes = dict.fromkeys(storage.catalog.services())
    for edge in edges:
        nodes.setdefault(edge.source)
        nodes.setdefault(edge.target)
    return ServiceGraph(list(nodes), edges)


def _edge(labels: Labels) -> tuple[str, str, str]:
    found = dict(labels)
    return found.get("client", ""), found.get("server", ""), found.get("connection_type", "")
