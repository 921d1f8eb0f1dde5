"""Exemplars of the span-metric series (Prometheus' `/api/v1/query_exemplars`), from spans.

Grafana draws exemplars on a latency or rate panel as points that open the trace behind
them: the jump from a burning golden signal to its slowest requests. meshscope derives
`calls_total` and `duration_milliseconds` from spans and keeps the spans, so it does not
store exemplars at derivation time; it answers from the spans: for every series of those
metrics that a query's selectors match, the slowest span of each interval (at most ~100
intervals over the range, at least 1 min each) becomes an exemplar with labels `trace_id`
and `span_id`, value its duration in ms (`_bucket` series, with the `le` bucket it falls in)
or 1 (`calls_total`). Selectors of other metrics have no exemplars.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import promql_parser as pp

from meshscope.model.spans import SpanKind, StatusCode
from meshscope.pipeline.derive.spanmetrics import CALLS, DEFAULT_BUCKETS_MS, DURATION
from meshscope.query.promql.evaluator import parse, selector_matchers
from meshscope.query.promql.values import NAME, format_le
from meshscope.store.base import ExemplarQuery, LabelMatcher, MatchOp, SpanExemplar, TraceStore

BUCKET = DURATION + "_bucket"
SPAN_METRICS = (CALLS, BUCKET)
MIN_INTERVAL_NS = 60 * 10**9
INTERVALS = 100
MAX_EXEMPLARS = 10_000
_KINDS = {kind.otel_name: kind for kind in SpanKind}
_STATUSES = {status.otel_name: status for status in StatusCode}


@dataclass(slots=True)
class SeriesExemplars:
    labels: dict[str, str]
    exemplars: list[tuple[dict[str, str], float, int]] = field(default_factory=list)
    """(labels, value, time in ns), oldest first."""


def query_exemplars(
    traces: TraceStore, query: str, start_ns: int, end_ns: int
) -> list[SeriesExemplars]:
    """Exemplars of the span-metric series any selector of `query` matches, in [start, end]."""
    interval = max(MIN_INTERVAL_NS, (end_ns - start_ns) // INTERVALS)
    found: dict[tuple[tuple[str, str], ...], SeriesExemplars] = {}
    seen: set[tuple[tuple[tuple[str, str], ...], str, int]] = set()  # several selectors may match
    for node in _selectors(parse(query)):
        matchers = selector_matchers(node)
        names = [n for n in SPAN_METRICS if all(m.matches(n) for m in matchers if m.name == NAME)]
        store_query = _store_query(matchers, start_ns, end_ns + 1, interval)
        if not names or store_query is None:
            continue
        for exemplar in traces.exemplars(store_query):
            for name in names:
                labels, value = _series(exemplar, name)
                if all(m.matches(labels.get(m.name, "")) for m in matchers):
                    key = tuple(sorted(labels.items()))
                    series = found.setdefault(key, SeriesExemplars(labels))
                    if (key, exemplar.span_id, exemplar.start_ns) in seen:
                        continue
                    seen.add((key, exemplar.span_id, exemplar.start_ns))
                    ids = {"trace_id": exemplar.trace_id, "span_id": exemplar.span_id}
                    series.exemplars.append((ids, value, exemplar.start_ns))
    for series in found.values():
        series.exemplars.sort(key=lambda item: item[2])
    return [found[key] for key in sorted(found)]


def _store_query(
    matchers: list[LabelMatcher], start_ns: int, end_ns: int, interval_ns: int
) -> ExemplarQuery | None:
    """The spans' filters from the selector's `=` matchers; None when one cannot match."""
    equal = {m.name: m.value for m in matchers if m.op is MatchOp.EQ}
    kind_text, status_text = equal.get("span_kind"), equal.get("status_code")
    if (kind_text is not None and kind_text not in _KINDS) or (
        status_text is not None and status_text not in _STATUSES
    ):
        return None
    return ExemplarQuery(
        start_ns=start_ns,
        end_ns=end_ns,
        interval_ns=interval_ns,
        service=equal.get("service_name", ""),
        name=equal.get("span_name", ""),
        kind=_KINDS[kind_text] if kind_text is not None else None,
        status=_STATUSES[status_text] if status_text is not None else None,
        limit=MAX_EXEMPLARS,
    )


def _series(exemplar: SpanExemplar, name: str) -> tuple[dict[str, str], float]:
    labels = {
        NAME: name,
        "service_name": exemplar.service,
        "span_kind": exemplar.kind.otel_name,
        "span_name": exemplar.name,
        "status_code": exemplar.status.otel_name,
    }
    if name == CALLS:
        return labels, 1.0
    ms = exemplar.duration_ns / 1e6
    index = bisect_left(DEFAULT_BUCKETS_MS, ms)
    bound = DEFAULT_BUCKETS_MS[index] if index < len(DEFAULT_BUCKETS_MS) else float("inf")
    labels["le"] = format_le(bound)
    return labels, ms


def _selectors(node: Any) -> Iterator[Any]:
    """Every vector selector in the expression tree."""
    if isinstance(node, pp.VectorSelector):
        yield node
    elif isinstance(node, pp.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, pp.BinaryExpr):
        yield from _selectors(node.lhs)
        yield from _selectors(node.rhs)
    elif isinstance(node, pp.Call):
        for arg in node.args:
            yield from _selectors(arg)
    elif isinstance(node, pp.ParenExpr | pp.UnaryExpr | pp.SubqueryExpr | pp.AggregateExpr):
        yield from _selectors(node.expr)
