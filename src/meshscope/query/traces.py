"""Trace questions over the TraceStore: a trace by id, search, and one trace's statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshscope.model.spans import Span
from meshscope.query.critical_path import Section, critical_path
from meshscope.store.base import TraceQuery, TraceStore


def dedupe(spans: list[Span]) -> list[Span]:
    """Drop spans received more than once (a retried export, or two exporters), keeping the
    first. Spans that merely share an id but differ (Zipkin's shared client/server spans) stay."""
    seen: set[tuple[str, str, int, int, str]] = set()
    out: list[Span] = []
    for span in spans:
        key = (span.span_id, span.service, span.start_ns, span.end_ns, span.name)
        if key not in seen:
            seen.add(key)
            out.append(span)
    return out


def get_trace(traces: TraceStore, trace_id: str) -> list[Span]:
    """The trace's spans by start time, each received copy shown once."""
    return dedupe(traces.get_trace(trace_id))


def find_traces(traces: TraceStore, query: TraceQuery) -> list[list[Span]]:
    """Full traces matching the query, most recent first (what Jaeger's search returns), read
    in one batch."""
    found = traces.get_traces(traces.find_trace_ids(query))
    return [dedupe(spans) for spans in found.values() if spans]


def get_traces(traces: TraceStore, trace_ids: Sequence[str]) -> tuple[list[list[Span]], list[str]]:
    """The traces that exist, in the order asked (each once), and the ids that do not."""
    asked = list(dict.fromkeys(trace_ids))
    stored = traces.get_traces(asked)
    found = [dedupe(stored[trace_id]) for trace_id in asked if stored.get(trace_id)]
    missing = [trace_id for trace_id in asked if not stored.get(trace_id)]
    return found, missing


@dataclass(frozen=True, slots=True)
class ServiceStats:
    service: str
    spans: int
    errors: int


@dataclass(frozen=True, slots=True)
class TraceStats:
    trace_id: str
    start_ns: int
    duration_ns: int
    spans: int
    errors: int
    root_service: str
    root_operation: str
    services: list[ServiceStats]
    critical_path: list[Section]


def root_span(spans: Sequence[Span]) -> Span:
    """The trace's root: of the spans without a parent in the trace, the earliest (then the
    longest); the earliest span when every span has one."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id or s.parent_span_id not in ids]
    return min(roots or spans, key=lambda s: (s.start_ns, -s.end_ns))


def trace_stats(spans: Sequence[Span]) -> TraceStats:
    """Counts, services and the critical path of one (non-empty) trace."""
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    per_service: dict[str, list[int]] = {}
    for span in spans:
        counts = per_service.setdefault(span.service, [0, 0])
        counts[0] += 1
        counts[1] += span.is_error
    root = root_span(spans)
    return TraceStats(
        trace_id=spans[0].trace_id,
        start_ns=start,
        duration_ns=end - start,
        spans=len(spans),
        errors=sum(s.is_error for s in spans),
        root_service=root.service,
        root_operation=root.name,
        services=[ServiceStats(name, c[0], c[1]) for name, c in per_service.items()],
        critical_path=critical_path(spans),
    )
