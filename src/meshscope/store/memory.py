"""In-memory storage: the reference implementation of the protocols, used by tests and the node."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from meshscope.model.logs import LogRecord
from meshscope.model.metrics import Labels, MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import (
    MAX_TIME_NS,
    LabelMatcher,
    LogQuery,
    Operation,
    Series,
    TraceQuery,
)


def _span_matches(span: Span, query: TraceQuery) -> bool:
    if query.service and span.service != query.service:
        return False
    if query.operation and span.name != query.operation:
        return False
    if query.errors_only and not span.is_error:
        return False
    if span.duration_ns < query.min_duration_ns:
        return False
    if query.max_duration_ns and span.duration_ns > query.max_duration_ns:
        return False
    if not query.start_ns <= span.start_ns < query.end_ns:
        return False
    for key, wanted in query.attributes.items():
        value = span.attributes.get(key, span.resource.get(key))
        if value is None or _attr_text(value) != wanted:
            return False
    return True


def _attr_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class MemoryTraceStore:
    def __init__(self) -> None:
        self._traces: dict[str, list[Span]] = {}

    def write_spans(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self._traces.setdefault(span.trace_id, []).append(span)

    def get_trace(self, trace_id: str) -> list[Span]:
        return sorted(self._traces.get(trace_id, []), key=lambda s: s.start_ns)

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        found: list[tuple[int, str]] = []
        for trace_id, spans in self._traces.items():
            if any(_span_matches(span, query) for span in spans):
                found.append((min(s.start_ns for s in spans), trace_id))
        found.sort(reverse=True)
        return [trace_id for _, trace_id in found[: query.limit]]

    def span_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for spans in self._traces.values():
            for span in spans:
                if start_ns <= span.start_ns < end_ns:
                    counts[span.service] += 1
        return dict(counts)


class MemoryLogStore:
    def __init__(self) -> None:
        self._logs: list[LogRecord] = []
        self._by_trace: dict[str, list[LogRecord]] = defaultdict(list)

    def write_logs(self, logs: Sequence[LogRecord]) -> None:
        self._logs.extend(logs)
        for record in logs:
            if record.trace_id:
                self._by_trace[record.trace_id].append(record)

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        candidates = self._by_trace.get(query.trace_id, []) if query.trace_id else self._logs
        out: list[LogRecord] = []
        for record in candidates:
            if query.service and record.service != query.service:
                continue
            if query.access is not None and record.is_access_log != query.access:
                continue
            if not query.start_ns <= record.time_ns < query.end_ns:
                continue
            if any(_attr_text(record.attributes.get(k)) != v for k, v in query.attributes.items()):
                continue
            out.append(record)
            if query.limit and len(out) >= query.limit:
                break
        return out

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for record in self._logs:
            if start_ns <= record.time_ns < end_ns:
                counts[record.service] += 1
        return dict(counts)


class MemoryMetricStore:
    def __init__(self) -> None:
        # dicts keep insertion order: series come back in order of first write.
        self._series: dict[tuple[str, Labels], list[MetricPoint]] = {}

    def write_points(self, points: Sequence[MetricPoint]) -> None:
        for point in points:
            samples = self._series.setdefault((point.name, point.labels), [])
            if samples and samples[-1].time_ns > point.time_ns:
                samples.append(point)
                samples.sort(key=lambda p: p.time_ns)
            else:
                samples.append(point)

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        out: list[Series] = []
        for (series_name, labels), samples in self._series.items():
            if series_name != name:
                continue
            label_map = dict(labels)
            if not all(m.matches(label_map.get(m.name, "")) for m in matchers):
                continue
            window = [p for p in samples if start_ns <= p.time_ns <= end_ns]
            if window:
                out.append(Series(name, labels, window))
        return out


class MemoryCatalogStore:
    def __init__(self) -> None:
        self._services: dict[str, None] = {}
        self._operations: dict[Operation, None] = {}

    def note(self, operations: Sequence[Operation]) -> None:
        for op in operations:
            self._services.setdefault(op.service, None)
            if op.name:
                self._operations.setdefault(op, None)

    def services(self) -> list[str]:
        return list(self._services)

    def operations(self, service: str) -> list[Operation]:
        return [op for op in self._operations if op.service == service]


class MemoryStorage:
    def __init__(self) -> None:
        self.traces = MemoryTraceStore()
        self.logs = MemoryLogStore()
        self.metrics = MemoryMetricStore()
        self.catalog = MemoryCatalogStore()

    def close(self) -> None:
        """Nothing to release."""
