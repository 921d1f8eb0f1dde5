"""Service dependencies (edges of the service graph) over a time range, from the servicegraph
counters `traces_service_graph_request_total` / `_failed_total` and the server-latency
histogram: pre-aggregated at ingest, never a self-join over raw spans."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from meshscope.model.metrics import Histogram, Labels
from meshscope.pipeline.derive.servicegraph import FAILED, REQUESTS, SERVER_SECONDS
from meshscope.query.increase import increases, merge, quantile
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore


@dataclass(frozen=True, slots=True)
class Dependency:
    parent: str
    child: str
    calls: int
    errors: int
    rate: float  # calls per second over the range
    error_ratio: float
    p99_ms: float | None  # of the server side's duration
    connection_type: str = ""


def dependencies(
    metrics: MetricStore, start_ns: int, end_ns: int, service: str = ""
) -> list[Dependency]:
    """One edge per (parent, child) with calls in (start_ns, end_ns], sorted by the pair; with
    `service`, only the edges that touch it."""
    calls: dict[tuple[str, str], float] = defaultdict(float)
    failed: dict[tuple[str, str], float] = defaultdict(float)
    kinds: dict[tuple[str, str], str] = {}
    for growth in increases(metrics, REQUESTS, [], start_ns, end_ns):
        key = _key(growth.labels)
        calls[key] += growth.value
        kinds.setdefault(key, dict(growth.labels).get("connection_type", ""))
    for growth in increases(metrics, FAILED, [], start_ns, end_ns):
        failed[_key(growth.labels)] += growth.value
    wanted = [key for key in sorted(calls) if calls[key] >= 0.5 and (not service or service in key)]
    hists: dict[tuple[str, str], list[Histogram]] = defaultdict(list)
    if wanted:
        matchers = []
        if service:
            matchers = [LabelMatcher("client", MatchOp.EQ, service)]
        for group in ([matchers, [LabelMatcher("server", MatchOp.EQ, service)]] if service
                      else [matchers]):  # fmt: skip
            for growth in increases(metrics, SERVER_SECONDS, group, start_ns, end_ns):
                if growth.histogram is not None:
                    hists[_key(growth.labels)].append(growth.histogram)
    seconds = (end_ns - start_ns) / 1e9
    out: list[Dependency] = []
    for key in wanted:
        count = round(calls[key])
        errors = round(failed.get(key, 0.0))
        p99 = quantile(0.99, merge(hists.get(key, [])))
        out.append(
            Dependency(
                parent=key[0],
                child=key[1],
                calls=count,
                errors=errors,
                rate=calls[key] / seconds,
                error_ratio=errors / count if count else 0.0,
                p99_ms=None if p99 is None else p99 * 1000,
                connection_type=kinds.get(key, ""),
            )
        )
    return out


def _key(labels: Labels) -> tuple[str, str]:
    values = dict(labels)
    return values.get("client", ""), values.get("server", "")
