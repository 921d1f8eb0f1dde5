"""The service graph: nodes in order of first appearance, edges with their call counts."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.pipeline.derive.servicegraph import FAILED, REQUESTS
from meshscope.query.counters import increase_since
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
    """Edges come from the servicegraph counters (pre-aggregated), never from raw spans.

    Counts are the counters' increase within [start_ns, end_ns]; series are scanned from the
    beginning so an increase that started before the window is measured from its baseline.
    """
    requests = storage.metrics.select(REQUESTS, [], 0, end_ns)
    failed = {s.labels: s for s in storage.metrics.select(FAILED, [], 0, end_ns)}
    edges: list[Edge] = []
    for series in requests:
        count = round(increase_since(series.samples, start_ns))
        failed_series = failed.get(series.labels)
        failures = round(increase_since(failed_series.samples, start_ns)) if failed_series else 0
        if count <= 0:
            continue
        labels = dict(series.labels)
        edges.append(
            Edge(
                labels.get("client", ""),
                labels.get("server", ""),
                count,
                failures,
                labels.get("connection_type", ""),
            )
        )
    nodes = dict.fromkeys(storage.catalog.services())
    for edge in edges:
        nodes.setdefault(edge.source)
        nodes.setdefault(edge.target)
    return ServiceGraph(list(nodes), edges)
