"""Request counts as the sidecars saw them."""

from __future__ import annotations

from meshscope.pipeline.derive.requestmetrics import REQUESTS
from meshscope.query.counters import latest_sum
from meshscope.store.base import MAX_TIME_NS, LabelMatcher, MatchOp, MetricStore


def request_count(metrics: MetricStore, service: str, end_ns: int = MAX_TIME_NS) -> int:
    """Requests received by `service` so far: the sum over its `mesh_requests_total` series."""
    matcher = LabelMatcher("destination_service", MatchOp.EQ, service)
    series = metrics.select(REQUESTS, [matcher], 0, end_ns)
    return round(latest_sum([s.samples for s in series]))
