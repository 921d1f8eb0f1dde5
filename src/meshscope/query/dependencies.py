"""Service dependencies (edges of the service graph) over a time range, from the servicegraph
counters `traces_service_graph_request_total` / `_failed_total` and the server-latency
histogram: pre-aggregated at ingest, never a self-join over raw spans. Rates and p99 are
computed like RED's (`query.red`): over the time the edge's series cover, and from the
exponential histogram where every series has one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels
from meshscope.pipeline.derive.servicegraph import FAILED, REQUESTS, SERVER_SECONDS
from meshscope.query.increase import Covered, increases, increases_of
from meshscope.query.red import percentiles
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore


@dataclass(frozen=True, slots=True)
class Dependency:
    parent: str
    child: str
    calls: int
    errors: int
    rate: float  # calls per second of the time covered (see `query.red`)
    error_ratio: float
    p99_ms: float | None  # of the server side's duration
    connection_type: str = ""
    p99_error: float | None = None  # as `Red.percentile_error`


def dependencies(
    metrics: MetricStore, start_ns: int, end_ns: int, service: str = ""
) -> list[Dependency]:
    """One edge per (parent, child) with calls in (start_ns, end_ns], sorted by the pair; with
    `service`, only the edges that touch it."""
    calls: dict[tuple[str, str], float] = defaultdict(float)
    failed: dict[tuple[str, str], float] = defaultdict(float)
    kinds: dict[tuple[str, str], str] = {}
    covered: dict[tuple[str, str], Covered] = defaultdict(Covered)
    # Without a service, the latencies' growth is read with the counts (one store lookup).
    names = [REQUESTS, FAILED] if service else [REQUESTS, FAILED, SERVER_SECONDS]
    grown = increases_of(metrics, names, [], start_ns, end_ns)
    for growth in grown[REQUESTS]:
        key = _key(growth.labels)
        calls[key] += growth.value
        covered[key].add(growth, start_ns)
        kinds.setdefault(key, dict(growth.labels).get("connection_type", ""))
    for growth in grown[FAILED]:
        failed[_key(growth.labels)] += growth.value
    wanted = [key for key in sorted(calls) if calls[key] >= 0.5 and (not service or service in key)]
    hists: dict[tuple[str, str], list[Histogram]] = defaultdict(list)
    exps: dict[tuple[str, str], list[ExpHistogram | None]] = defaultdict(list)
    if wanted:
        if service:
            latencies = [
                growth
                for side in ("client", "server")
                for growth in increases(
                    metrics,
                    SERVER_SECONDS,
                    [LabelMatcher(side, MatchOp.EQ, service)],
                    start_ns,
                    end_ns,
                )
            ]
        else:
            latencies = grown[SERVER_SECONDS]
        for growth in latencies:
            if growth.histogram is not None and growth.histogram.count:
                hists[_key(growth.labels)].append(growth.histogram)
                exps[_key(growth.labels)].append(growth.exp)
    out: list[Dependency] = []
    for key in wanted:
        count = round(calls[key])
        errors = round(failed.get(key, 0.0))
        (p99,), p99_error = percentiles((0.99,), hists.get(key, []), exps.get(key, []))
        out.append(
            Dependency(
                parent=key[0],
                child=key[1],
                calls=count,
                errors=errors,
                rate=covered[key].rate(calls[key], start_ns, end_ns),
                error_ratio=errors / count if count else 0.0,
                p99_ms=None if p99 is None else p99 * 1000,
                connection_type=kinds.get(key, ""),
                p99_error=p99_error,
            )
        )
    return out


def _key(labels: Labels) -> tuple[str, str]:
    values = dict(labels)
    return values.get("client", ""), values.get("server", "")
