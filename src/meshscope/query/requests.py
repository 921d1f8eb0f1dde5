"""Request counts as the sidecars saw them."""

from __future__ import annotations

from meshscope.pipeline.derive.requestmetrics import REQUESTS
from meshscope.store.base import MAX_TIME_NS, LabelMatcher, MatchOp, MetricStore


def request_count(metrics: MetricStore, service: str, at_ns: int = MAX_TIME_NS) -> int:
    """Requests received by `service` up to `at_ns`: the sum of the latest values of its
    cumulative `mesh_requests_total` series (one per source and response code)."""
    matcher = LabelMatcher("destination_service", MatchOp.EQ, service)
    series = metrics.latest(REQUESTS, [matcher], at_ns, lookback_ns=at_ns)
    return round(sum(s.samples[-1].value for s in series if s.samples))
