"""Trace questions over the TraceStore."""

from __future__ import annotations

from meshscope.model.spans import Span
from meshscope.store.base import TraceStore


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
