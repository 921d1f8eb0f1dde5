"""Derived RED metrics: exact counts, exact buckets, bounded cardinality."""

from __future__ import annotations

import bisect
import dataclasses
import math
import random

import pytest

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.exphistogram import MAX_SCALE, index_factor
from meshscope.model.metrics import MetricPoint, MetricType
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline, PipelineSettings
from meshscope.pipeline.derive import spanmetrics
from meshscope.pipeline.derive.registry import (
    MAX_OVERFLOW_SERIES,
    OVERFLOW_KEY,
    OVERFLOW_LABELS,
    MetricsRegistry,
)
from meshscope.pipeline.derive.spanmetrics import (
    CALLS,
    DEFAULT_BUCKETS_MS,
    DURATION,
    SpanMetrics,
    span_durations,
)
from meshscope.query.red import red
from meshscope.store.memory import MemoryStorage


def test_histogram_buckets_use_prometheus_le_semantics() -> None:
    registry = MetricsRegistry()
    bounds = (1.0, 2.0, 5.0)
    for value in (0.5, 1.0, 1.5, 2.0, 5.0, 5.1, 100):
        registry.observe("h", (), value, bounds)
    (point,) = registry.collect(0)
    assert point.histogram is not None
    assert point.histogram.counts == (2, 2, 1, 2)  # <=1, <=2, <=5, +Inf
    assert point.histogram.cumulative() == [(1.0, 2), (2.0, 4), (5.0, 5), (float("inf"), 7)]
    assert point.histogram.count == 7


def test_cardinality_cap_sends_excess_to_one_overflow_series() -> None:
    registry = MetricsRegistry(max_series_per_metric=3)
    for i in range(10):
        registry.inc("c", (("id", str(i)),))
    points = registry.collect(0)
    assert len(points) == 4
    overflow = [p for p in points if p.labels == OVERFLOW_LABELS]
    assert overflow[0].value == 7 and registry.overflowed == 7


def test_span_metrics_overflow_keeps_the_service_kind_and_status() -> None:
    """Past the cap a service's spans stay its own (its RED stays right; they went to one
    series without labels, and a service created after the cap vanished from RED); past
    MAX_OVERFLOW_SERIES of those, one series again."""
    registry = MetricsRegistry(max_series_per_metric=4)
    SpanMetrics(registry)
    spans = [Span(f"{i + 1:032x}", f"{i + 1:016x}", f"GET /item/{i}", "shop", 0, 10**6,
                  kind=SpanKind.SERVER) for i in range(10)]  # fmt: skip
    spans.append(Span("f" * 32, "f" * 16, "GET /", "late", 0, 10**6, kind=SpanKind.SERVER,
                      status_code=StatusCode.ERROR))  # fmt: skip
    SpanMetrics(registry).observe(spans)
    calls = {p.labels: p.value for p in registry.collect(0) if p.name == "calls_total"}
    overflow = {labels: value for labels, value in calls.items() if OVERFLOW_KEY in labels}
    assert overflow == {
        (OVERFLOW_KEY, ("service_name", "shop"), ("span_kind", "SPAN_KIND_SERVER"),
         ("status_code", "STATUS_CODE_UNSET")): 6,
        (OVERFLOW_KEY, ("service_name", "late"), ("span_kind", "SPAN_KIND_SERVER"),
         ("status_code", "STATUS_CODE_ERROR")): 1,
    }  # fmt: skip
    bounded = MetricsRegistry(max_series_per_metric=1)
    bounded.keep_on_overflow["c"] = ("id",)
    for i in range(MAX_OVERFLOW_SERIES + 5):
        bounded.inc("c", (("id", str(i)),))
    assert len(bounded.collect(0)) == 1 + MAX_OVERFLOW_SERIES + 1
    assert bounded.overflowed == MAX_OVERFLOW_SERIES + 4


def test_collect_changed_only() -> None:
    registry = MetricsRegistry()
    registry.inc("a", ())
    registry.inc("b", ())
    assert len(registry.collect(1, changed_only=True)) == 2
    registry.inc("b", ())
    assert [p.name for p in registry.collect(2, changed_only=True)] == ["b"]
    assert len(registry.collect(3)) == 2


def test_span_metrics_match_generated_truth() -> None:
    rng = random.Random(7)
    registry = MetricsRegistry()
    truth_calls: dict[tuple[str, str, str], int] = {}
    truth_buckets: dict[tuple[str, str, str], list[int]] = {}
    spans = []
    for i in range(2000):
        service = rng.choice(["web", "api", "db"])
        name = rng.choice(["GET /", "POST /pay"])
        error = rng.random() < 0.1
        duration_ms = rng.choice([1, 3, 9, 45, 120, 700, 3000, 20000]) + rng.random()
        spans.append(
            Span(
                f"{i + 1:032x}",
                f"{i + 1:016x}",
                name,
                service,
                0,
                int(duration_ms * 1e6),
                kind=SpanKind.SERVER,
                status_code=StatusCode.ERROR if error else StatusCode.UNSET,
            )
        )
        status = "STATUS_CODE_ERROR" if error else "STATUS_CODE_UNSET"
        key = (service, name, status)
        truth_calls[key] = truth_calls.get(key, 0) + 1
        buckets = truth_buckets.setdefault(key, [0] * (len(DEFAULT_BUCKETS_MS) + 1))
        index = next(
            (i for i, b in enumerate(DEFAULT_BUCKETS_MS) if duration_ms <= b),
            len(DEFAULT_BUCKETS_MS),
        )
        buckets[index] += 1
    SpanMetrics(registry).observe(spans)
    points = registry.collect(0)
    calls = {
        (p.label("service_name"), p.label("span_name"), p.label("status_code")): p.value
        for p in points
        if p.name == CALLS
    }
    assert calls == {k: float(v) for k, v in truth_calls.items()}
    for p in points:
        if p.name == DURATION:
            assert p.type is MetricType.HISTOGRAM and p.histogram is not None
            key = (p.label("service_name"), p.label("span_name"), p.label("status_code"))
            assert list(p.histogram.counts) == truth_buckets[key]
            assert p.label("span_kind") == "SPAN_KIND_SERVER"


def _count_one_by_one(registry: MetricsRegistry, spans: list[Span]) -> None:
    """What `SpanMetrics` counts, one span at a time through the registry's own calls (the
    buckets and exponential bucket index worked out here in plain Python)."""
    for span in spans:
        labels = (
            ("service_name", span.service),
            ("span_kind", SpanKind(span.kind).otel_name),
            ("span_name", span.name),
            ("status_code", StatusCode(span.status_code).otel_name),
        )
        ms = max(0, span.end_ns - span.start_ns) / 1e6
        counts = [0] * (len(DEFAULT_BUCKETS_MS) + 1)
        counts[bisect.bisect_left(DEFAULT_BUCKETS_MS, ms)] = 1
        exp: list[float] = [0, ms, ms]
        if ms > 0:
            exp += [math.ceil(math.log(ms) * index_factor(MAX_SCALE)) - 1, 1]
        else:
            exp[0] = 1
        registry.inc(CALLS, labels, 1, help_text="Spans by service, name, kind and status.")
        registry.merge_histogram(
            DURATION, labels, DEFAULT_BUCKETS_MS, counts, ms, 1,
            help_text="Span duration in milliseconds.", exp=exp,
        )  # fmt: skip


def _rounded(points: list[MetricPoint]) -> list[MetricPoint]:
    """Sorted by series, sums to 9 digits (added in another order, they may differ in their
    last bits)."""
    points = sorted(points, key=lambda p: (p.name, p.labels))
    return [
        dataclasses.replace(
            p, histogram=dataclasses.replace(p.histogram, sum=float(f"{p.histogram.sum:.9g}"))
        )
        if p.histogram is not None
        else p
        for p in points
    ]


def test_span_metrics_count_as_per_span_updates_incl_overflow_and_changed_only() -> None:
    """A group's spans counted at once (numpy) give the series one update per span gives,
    exponential buckets and min/max included, across collects and past the series cap."""
    rng = random.Random(3)
    kept, reference = MetricsRegistry(max_series_per_metric=6), MetricsRegistry(6)
    metrics = SpanMetrics(kept)
    reference.keep_on_overflow.update(kept.keep_on_overflow)  # as SpanMetrics sets it
    for step in range(5):
        spans = [
            Span(
                f"{i + 1:032x}",
                f"{i + 1:016x}",
                rng.choice(["GET /", "POST /pay"]),
                rng.choice(["web", "api", "db", "cache"]),
                0,
                # 1 ns to 30 s, log-uniform (past the 2**20 range one exponential scale
                # holds: downscaled), and zeros (its zero count, min and max)
                0 if rng.random() < 0.1 else int(10 ** rng.uniform(0, 10.5)),
                kind=rng.choice([SpanKind.SERVER, SpanKind.CLIENT]),
                status_code=rng.choice([StatusCode.UNSET, StatusCode.ERROR]),
            )
            for i in range(rng.randrange(1, 5) if step % 2 else rng.randrange(1, 200))
        ]  # also groups of <= deltas.SMALL, counted one span at a time
        metrics.merge(span_durations(spans), span_durations(spans[:7]))  # keys in both
        _count_one_by_one(reference, [*spans, *spans[:7]])
        got = kept.collect(step, changed_only=True)
        assert _rounded(got) == _rounded(reference.collect(step, changed_only=True))
    assert _rounded(kept.collect(9)) == _rounded(reference.collect(9))
    assert kept.overflowed > 0


def test_span_metrics_numbering_restarts_without_losing_counts() -> None:
    """Past `_MAX_KEYS` label keys the deltas are handed over early and the keys numbered
    again (bounded arrays); nothing counted is lost or counted twice."""
    registry = MetricsRegistry()
    metrics = SpanMetrics(registry)
    spans = [Span(f"{i + 1:032x}", f"{i + 1:016x}", f"GET /{i % 5}", "web", 0, 10**6)
             for i in range(40)]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spanmetrics, "_MAX_KEYS", 3)
        for k in range(0, 40, 8):
            metrics.merge(span_durations(spans[k : k + 8]))
    calls = {p.label("span_name"): p.value for p in registry.collect(0) if p.name == CALLS}
    assert calls == {f"GET /{i}": 8.0 for i in range(5)}


def test_red_stays_whole_per_service_past_the_series_cap() -> None:
    """A service created after the cap was missing from RED (the UI's overview and its
    page said it had no server spans); its calls now count as its own."""
    storage, clock = MemoryStorage(), ManualClock()
    pipeline = Pipeline(storage, clock, PipelineSettings(max_series_per_metric=4))
    spans = [Span(f"{i + 1:032x}", f"{i + 1:016x}", f"GET /item/{i}", "shop", clock.now_ns(),
                  clock.now_ns() + 10**6, kind=SpanKind.SERVER) for i in range(10)]  # fmt: skip
    late = Span("f" * 32, "f" * 16, "GET /", "late", clock.now_ns(), clock.now_ns() + 10**6,
                kind=SpanKind.SERVER, status_code=StatusCode.ERROR)  # fmt: skip
    pipeline.consume(Batch(spans=[*spans, late]))
    clock.advance(15)
    pipeline.flush()
    rows = {r.service: r for r in red(storage.metrics, 0, clock.now_ns())}
    assert (rows["shop"].calls, rows["late"].calls, rows["late"].errors) == (10, 1, 1)
    operations = {
        r.operation: r.calls for r in red(storage.metrics, 0, clock.now_ns(), "shop", True)
    }
    assert operations[""] == 6 and sum(operations.values()) == 10  # "" : the overflow
