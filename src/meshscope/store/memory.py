"""In-memory storage: the reference implementation of the protocols, used by tests and the node."""

from __future__ import annotations

import bisect
import threading
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import Labels, MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import (
    MAX_TIME_NS,
    ExemplarQuery,
    HistogramColumns,
    LabelMatcher,
    LogQuery,
    MetricFamily,
    Operation,
    SampleColumns,
    Series,
    SpanExemplar,
    TraceQuery,
    attr_text,
    trace_order,
)
from meshscope.store.metric_columns import PointColumns


def _span_matches(span: Span, query: TraceQuery) -> bool:
    if query.service and span.service != query.service:
        return False
    if query.operation and span.name != query.operation:
        return False
    if query.errors_only and not span.is_error:
        return False
    if query.status is not None and span.status_code is not query.status:
        return False
    if query.kind is not None and span.kind is not query.kind:
        return False
    if span.duration_ns < query.min_duration_ns:
        return False
    if query.max_duration_ns and span.duration_ns > query.max_duration_ns:
        return False
    if not query.start_ns <= span.start_ns < query.end_ns:
        return False
    return _attrs_match(span.attributes, span.resource, query.attributes, either=True)


def _attrs_match(
    attributes: dict[str, AttrValue],
    resource: dict[str, AttrValue],
    wanted: Mapping[str, str],
    either: bool = False,
) -> bool:
    """Each wanted text is the own attribute's, or without one the resource's (logs: a
    record's attribute hides its resource's, as LogQL's metadata does); with `either`
    (spans, as Jaeger matches span or process tags) the own one's or the resource's."""
    for key, text in wanted.items():
        own = attributes.get(key)
        if own is not None and attr_text(own) == text:
            continue
        if own is not None and not either:
            return False
        value = resource.get(key)
        if value is None or attr_text(value) != text:
            return False
    return True


class MemoryTraceStore:
    def __init__(self) -> None:
        self._traces: dict[str, list[Span]] = {}

    def write_spans(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self._traces.setdefault(span.trace_id, []).append(span)

    def get_trace(self, trace_id: str) -> list[Span]:
        return sorted(self._traces.get(trace_id, []), key=trace_order)

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        found = {trace_id: self.get_trace(trace_id) for trace_id in dict.fromkeys(trace_ids)}
        return {trace_id: spans for trace_id, spans in found.items() if spans}

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

    def exemplars(self, query: ExemplarQuery) -> list[SpanExemplar]:
        best: dict[tuple[str, int, str, int, int], Span] = {}
        for spans in self._traces.values():
            for span in spans:
                if not query.start_ns <= span.start_ns < query.end_ns:
                    continue
                if (query.service and span.service != query.service) or (
                    query.name and span.name != query.name
                ):
                    continue
                if query.kind is not None and span.kind is not query.kind:
                    continue
                if query.status is not None and span.status_code is not query.status:
                    continue
                interval = (span.start_ns - query.start_ns) // query.interval_ns
                key = (span.service, int(span.kind), span.name, int(span.status_code), interval)
                seen = best.get(key)
                if seen is None or _slower(span, seen):
                    best[key] = span
        found = [best[key] for key in sorted(best)]
        return [
            SpanExemplar(s.service, s.name, s.kind, s.status_code, s.start_ns, s.duration_ns,
                         s.trace_id, s.span_id)
            for s in found[: query.limit]
        ]  # fmt: skip

    def expire(self, before_ns: int) -> int:
        deleted = 0
        for trace_id in list(self._traces):
            spans = self._traces[trace_id]
            kept = [s for s in spans if s.start_ns >= before_ns]
            deleted += len(spans) - len(kept)
            if kept:
                self._traces[trace_id] = kept
            else:
                del self._traces[trace_id]
        return deleted


def _slower(span: Span, than: Span) -> bool:
    """`span` ranks before `than` as an exemplar: longer, then earlier, then smaller ids."""
    mine = (-span.duration_ns, span.start_ns, span.trace_id, span.span_id)
    return mine < (-than.duration_ns, than.start_ns, than.trace_id, than.span_id)


class MemoryLogStore:
    def __init__(self) -> None:
        self._logs: list[LogRecord] = []
        self._by_trace: dict[str, list[LogRecord]] = defaultdict(list)

    def write_logs(self, logs: Sequence[LogRecord]) -> None:
        # Kept in time order; records of equal time stay in the order written.
        for record in logs:
            bisect.insort_right(self._logs, record, key=_log_time)
            if record.trace_id:
                bisect.insort_right(self._by_trace[record.trace_id], record, key=_log_time)

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        stored = self._by_trace.get(query.trace_id, []) if query.trace_id else self._logs
        candidates = reversed(stored) if query.newest_first else stored
        out: list[LogRecord] = []
        for record in candidates:
            if query.service and record.service != query.service:
                continue
            if query.span_id and record.span_id != query.span_id:
                continue
            if any(text not in record.body for text in query.body_contains):
                continue
            if query.access is not None and record.is_access_log != query.access:
                continue
            if not query.start_ns <= record.time_ns < query.end_ns:
                continue
            if not _attrs_match(record.attributes, record.resource, query.attributes):
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

    def expire(self, before_ns: int) -> int:
        kept = [r for r in self._logs if r.time_ns >= before_ns]
        deleted = len(self._logs) - len(kept)
        self._logs = kept
        for trace_id in list(self._by_trace):
            records = [r for r in self._by_trace[trace_id] if r.time_ns >= before_ns]
            if records:
                self._by_trace[trace_id] = records
            else:
                del self._by_trace[trace_id]
        return deleted


def _log_time(record: LogRecord) -> int:
    return record.time_ns


class MemoryMetricStore:
    def __init__(self) -> None:
        # name -> labels -> samples; dicts keep insertion order, so series come back in order
        # of first write.
        self._series: dict[str, dict[Labels, list[MetricPoint]]] = {}
        self._label_maps: dict[Labels, dict[str, str]] = {}
        self._families: dict[str, MetricFamily] = {}
        # (name, labels) -> the series' samples as arrays, extended on read; dropped when a
        # sample is inserted out of order or samples expire.
        self._columns: dict[tuple[str, Labels], PointColumns] = {}
        self._columns_lock = threading.Lock()

    def write_points(self, points: Sequence[MetricPoint]) -> None:
        for point in points:
            if point.name not in self._families:
                self._families[point.name] = MetricFamily(
                    point.name, point.type, point.help, point.unit
                )
            samples = self._series.setdefault(point.name, {}).setdefault(point.labels, [])
            if samples and samples[-1].time_ns > point.time_ns:
                bisect.insort_right(samples, point, key=_time)
                with self._columns_lock:
                    self._columns.pop((point.name, point.labels), None)
            else:
                samples.append(point)

    def _matching(
        self, name: str, matchers: Sequence[LabelMatcher]
    ) -> Iterator[tuple[Labels, list[MetricPoint]]]:
        for labels, samples in self._series.get(name, {}).items():
            if not matchers:
                yield labels, samples
                continue
            label_map = self._label_maps.get(labels)
            if label_map is None:
                label_map = self._label_maps[labels] = dict(labels)
            for matcher in matchers:
                if not matcher.matches(label_map.get(matcher.name, "")):
                    break
            else:
                yield labels, samples

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        out: list[Series] = []
        for labels, samples in self._matching(name, matchers):
            low = bisect_left(samples, start_ns, key=_time)
            high = bisect_right(samples, end_ns, key=_time)
            if high > low:
                out.append(Series(name, labels, samples[low:high]))
        return out

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        out: list[Series] = []
        for labels, samples in self._matching(name, matchers):
            index = bisect_right(samples, at_ns, key=_time) - 1
            if index >= 0 and samples[index].time_ns >= at_ns - lookback_ns:
                out.append(Series(name, labels, [samples[index]]))
        return out

    def _arrays(self, name: str, labels: Labels, samples: list[MetricPoint]) -> PointColumns:
        with self._columns_lock:
            columns = self._columns.get((name, labels))
            if columns is None:
                columns = self._columns[(name, labels)] = PointColumns()
            columns.extend(samples)
            return columns

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        out: list[SampleColumns] = []
        for labels, samples in self._matching(name, matchers):
            found = self._arrays(name, labels, samples).values_in(labels, start_ns, end_ns)
            if found is not None:
                out.append(found)
        return out

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        out: list[HistogramColumns] = []
        for labels, samples in self._matching(name, matchers):
            out += self._arrays(name, labels, samples).histograms_in(labels, start_ns, end_ns)
        return out

    def families(self) -> list[MetricFamily]:
        return list(self._families.values())

    def expire(self, before_ns: int) -> int:
        """Drop old samples; the series stays known (and keeps its place in the order)."""
        deleted = 0
        for by_labels in self._series.values():
            for labels, samples in by_labels.items():
                cut = bisect_left(samples, before_ns, key=_time)
                deleted += cut
                by_labels[labels] = samples[cut:]
        with self._columns_lock:
            self._columns.clear()
        return deleted


def _time(point: MetricPoint) -> int:
    return point.time_ns


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

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        """Not a transaction: the pillars are written one after another (nothing here raises
        on values the decoders let through; a failure part way would leave the earlier ones)."""
        self.traces.write_spans(spans)
        self.logs.write_logs(logs)
        self.metrics.write_points(points)
        self.catalog.note(operations)

    def expire(self, before_ns: int) -> int:
        return (
            self.traces.expire(before_ns)
            + self.logs.expire(before_ns)
            + self.metrics.expire(before_ns)
        )

    def close(self) -> None:
        """Nothing to release."""
