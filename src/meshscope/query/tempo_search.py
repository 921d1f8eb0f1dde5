"""TraceQL search over the trace store (Tempo's `/api/search`), with query/traceql.py.

The store narrows the candidates where the query allows it: the first span set some span of
every matching trace satisfies (`Query.required`: not under `||`, nor left of a negated
structural operator) whose top-level `&&` conditions the store's `TraceQuery` can express
(service, span name, status, kind, duration bounds, string equality on a span attribute):
they all hold for one span of any matching trace. The newest `SCAN_LIMIT`
candidate traces in the time range are then read whole and the full query decides, newest
first, until `limit` traces match. A query the store cannot narrow (only `||` between sets,
regexes, `!=` alone) therefore looks at the newest `SCAN_LIMIT` traces of the range only; the
answer's `inspected_traces` says how many were read.

Tempo's tag search (`tags`, `minDuration`, `maxDuration` instead of a TraceQL `q`) runs on
the same path: `tag_search` turns the tags into a `Query` of one span set per tag, joined by
`&&` (each tag holds for some span of the trace), and a `TraceFilter` of the whole-trace
conditions (the trace's duration, its root span), as Tempo's vParquet tag search decides:

- `service.name`, `cluster`, `namespace`, `pod`, `container`, `k8s.cluster.name`,
  `k8s.namespace.name`, `k8s.pod.name`, `k8s.container.name`: the span's resource attribute
  contains the value (case-sensitive substring); `name`: the span's name contains it;
  `http.method`, `http.url`: the span's attribute contains it.
- `http.status_code` with an integer value: the span's attribute equals that number.
- `status.code`: `ok`, `error` or `unset`, the span's status.
- `root.service.name`, `root.name`: the root span's service / name contains the value.
- Any other key: the span's attribute of that name, else its resource's, equals the value
  by its text form (`attr_text`: `error=true` matches a boolean attribute), as the stores
  match attributes (Jaeger's tag search), so the store narrows on it.

The trace's duration is its first span's start to its last span's end (Tempo's trace
`DurationNano`); `min_duration_ns`/`max_duration_ns` bound it inclusively.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.query import budget
from meshscope.query.traceql import (
    BoolOp,
    Condition,
    Contains,
    MatchAll,
    Node,
    Query,
    SpansetOp,
    Text,
    TraceQLError,
    spansets,
)
from meshscope.query.traceql_stages import Spanset
from meshscope.query.traces import root_span
from meshscope.store.base import TraceQuery, TraceStore

SCAN_LIMIT = 5_000
_CHUNK = 200
MAX_TAGS = 64
# Tempo's tag names with columns of their own (vParquet's labelMappings), matched by substring.
_RESOURCE_COLUMNS = ("service.name", "cluster", "namespace", "pod", "container",
                     "k8s.cluster.name", "k8s.namespace.name", "k8s.pod.name",
                     "k8s.container.name")  # fmt: skip
_SPAN_COLUMNS = ("http.method", "http.url")
_STATUS_CODES = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}
_GO_INT = re.compile(r"[+-]?[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class TraceHit:
    trace_id: str
    root: Span
    start_ns: int
    end_ns: int
    spansets: list[Spanset]  # the query's span sets in the trace


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """Whole-trace conditions of Tempo's search parameters (see the module doc)."""

    min_duration_ns: int = 0
    max_duration_ns: int = 0  # 0 = no upper bound
    root_service: str | None = None  # the root span's service contains this
    root_name: str | None = None  # the root span's name contains this

    def keeps(self, root: Span, start_ns: int, end_ns: int) -> bool:
        duration = end_ns - start_ns
        if duration < self.min_duration_ns:
            return False
        if self.max_duration_ns and duration > self.max_duration_ns:
            return False
        if self.root_service is not None and self.root_service not in root.service:
            return False
        return self.root_name is None or self.root_name in root.name


OVERLAP_NS = 5 * 60 * 10**9
"""How long before a search's start a trace may have begun and still be found by lasting
into the range."""


@dataclass(slots=True)
class SearchResult:
    traces: list[TraceHit] = field(default_factory=list)
    inspected_traces: int = 0


def search(
    traces: TraceStore,
    query: Query,
    start_ns: int,
    end_ns: int,
    limit: int,
    trace_filter: TraceFilter = TraceFilter(),
) -> SearchResult:
    narrowing = _narrowing(query)
    # As Tempo, a trace is in the range when it overlaps it: one that began before `start`
    # counts if it lasts into the range (up to OVERLAP_NS before it, where spans are read).
    earliest = max(0, start_ns - OVERLAP_NS)
    candidates = traces.find_trace_ids(
        TraceQuery(start_ns=earliest, end_ns=end_ns, limit=SCAN_LIMIT, **narrowing)
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
            matched = spansets(query, spans)
            if matched:
                start = min(s.start_ns for s in spans)
                end = max(s.end_ns for s in spans)
                if end < start_ns:
                    continue  # over before the range began
                root = root_span(spans)
                if not trace_filter.keeps(root, start, end):
                    continue
                result.traces.append(TraceHit(trace_id, root, start, end, matched))
                if len(result.traces) >= limit:
                    return result
    return result


def _narrowing(query: Query) -> dict[str, Any]:
    """TraceQuery fields implied by the query (see the module doc); {} when none are."""
    for node in query.required():
        found = _implied(node)
        if found:
            return found
    return {}


def _implied(node: Node) -> dict[str, Any]:
    """TraceQuery fields one span matching `node` satisfies."""
    out: dict[str, Any] = {}
    attributes: dict[str, str] = {}
    for condition in _conjuncts(node):
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
        elif op == "=" and isinstance(value, Text) and field_name.startswith("."):
            attributes[field_name[1:]] = value.text  # the store's own matching, exactly
        elif op == "=" and isinstance(value, str) and field_name.startswith((".", "span.")):
            # The store matches the span's attribute or its resource's: a superset of both
            # `.x` and `span.x`; the full query decides afterwards.
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


def tag_search(
    tags: Sequence[tuple[str, str]], trace_filter: TraceFilter = TraceFilter()
) -> tuple[Query, TraceFilter]:
    """Tempo's `tags` (decoded logfmt pairs) as a query and whole-trace conditions added to
    `trace_filter` (see the module doc); TraceQLError for a tag set twice, too many tags or
    a `status.code` that is not `ok`, `error` or `unset`."""
    if len(tags) > MAX_TAGS:
        raise TraceQLError(f"invalid tags: more than {MAX_TAGS} tags")
    seen: set[str] = set()
    sets: list[Node] = []
    for key, value in tags:
        if key in seen:
            raise TraceQLError(f"invalid tags: tag {key} has been set twice")
        seen.add(key)
        if key == "root.service.name":
            trace_filter = replace(trace_filter, root_service=value)
        elif key == "root.name":
            trace_filter = replace(trace_filter, root_name=value)
        else:
            sets.append(_tag_condition(key, value))
    expr: Node | SpansetOp = sets[0] if sets else MatchAll()
    for node in sets[1:]:
        expr = SpansetOp("&&", expr, node)
    return Query(expr), trace_filter


def _tag_condition(key: str, value: str) -> Condition:
    if key in _RESOURCE_COLUMNS:
        return Condition(f"resource.{key}", "=", Contains(value))
    if key == "name":
        return Condition("name", "=", Contains(value))
    if key in _SPAN_COLUMNS:
        return Condition(f"span.{key}", "=", Contains(value))
    if key == "http.status_code" and _GO_INT.fullmatch(value):
        return Condition(f"span.{key}", "=", float(int(value)))
    if key == "status.code":
        status = _STATUS_CODES.get(value)
        if status is None:
            raise TraceQLError(f"invalid tags: status.code={value!r} must be ok, error or unset")
        return Condition("status", "=", status)
    return Condition(f".{key}", "=", Text(value))
