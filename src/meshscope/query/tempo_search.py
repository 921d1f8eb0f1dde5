"""TraceQL search over the trace store (Tempo's `/api/search`), with query/traceql.py.

The store narrows the candidates where the query allows it: when every span set must match
(`&&` between sets, or one set), the first set's top-level `&&` conditions that the store's
`TraceQuery` can express (service, span name, status, kind, duration bounds, string equality
on a span attribute) all hold for one span of any matching trace. The newest `SCAN_LIMIT`
candidate traces in the time range are then read whole and the full query decides, newest
first, until `limit` traces match. A query the store cannot narrow (only `||` between sets,
regexes, `!=`) therefore looks at the newest `SCAN_LIMIT` traces of the range only; the
answer's `inspected_traces` says how many were read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query import budget
from meshscope.query.traceql import BoolOp, Condition, Node, Query, trace_matches
from meshscope.query.traces import root_span
from meshscope.store.base import TraceQuery, TraceStore

SCAN_LIMIT = 5_000
_CHUNK = 200


@dataclass(frozen=True, slots=True)
class TraceHit:
    trace_id: str
    root: Span
    start_ns: int
    end_ns: int
    spansets: list[list[Span]]  # per span set of the query: its matching spans


@dataclass(slots=True)
class SearchResult:
    traces: list[TraceHit] = field(default_factory=list)
    inspected_traces: int = 0


def search(
    traces: TraceStore, query: Query, start_ns: int, end_ns: int, limit: int
) -> SearchResult:
    narrowing = _narrowing(query)
    candidates = traces.find_trace_ids(
        TraceQuery(start_ns=start_ns, end_ns=end_ns, limit=SCAN_LIMIT, **narrowing)
    )
    result = SearchResult()
    for low in range(0, len(candidates), _CHUNK):
        budget.check()
        chunk = candidates[low : low + _CHUNK]
        found = traces.get_traces(chunk)
        for trace_id in chunk:
            spans = found.get(trace_id)
            if not spans:
                continue
            result.inspected_traces += 1
            matched = trace_matches(query, spans)
            if matched:
                start = min(s.start_ns for s in spans)
                end = max(s.end_ns for s in spans)
                result.traces.append(TraceHit(trace_id, root_span(spans), start, end, matched))
                if len(result.traces) >= limit:
                    return result
    return result


def _narrowing(query: Query) -> dict[str, Any]:
    """TraceQuery fields implied by the query (see the module doc); {} when none are."""
    if any(op != "&&" for op in query.ops):
        return {}
    out: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for condition in _conjuncts(query.sets[0]):
        field_name, op, value = condition.field, condition.op, condition.value
        if op == "=" and field_name in ("resource.service.name", ".service.name"):
            if isinstance(value, str):
                out["service"] = value
        elif op == "=" and field_name == "name" and isinstance(value, str):
            out["operation"] = value
        elif op == "=" and field_name == "status" and isinstance(value, StatusCode):
            out["status"] = value
        elif op == "=" and field_name == "kind" and isinstance(value, SpanKind):
            out["kind"] = value
        elif field_name == "duration" and isinstance(value, int | float):
            if op in (">", ">="):
                out["min_duration_ns"] = int(value) + (op == ">")
            elif op in ("<", "<=") and int(value) - (op == "<") > 0:
                out["max_duration_ns"] = int(value) - (op == "<")
        elif op == "=" and isinstance(value, str) and field_name.startswith((".", "span.")):
            # The store matches the span's attribute, else its resource's: a superset of
            # both `.x` and `span.x`; the full query decides afterwards.
            attributes[field_name.split(".", 1)[1]] = value
    if attributes:
        out["attributes"] = attributes
    return out


def _conjuncts(node: Node) -> Sequence[Condition]:
    if isinstance(node, Condition):
        return [node]
    if isinstance(node, BoolOp) and node.op == "&&":
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    return []
