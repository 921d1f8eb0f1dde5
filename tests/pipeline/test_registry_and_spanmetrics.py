"""Derived RED metrics: exact counts, exact buckets, bounded cardinality."""

from __future__ import annotations

import random

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.metrics import MetricType
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline, PipelineSettings
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
    SpanPartials,
    span_partials,
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


def _merge_one_by_one(registry: MetricsRegistry, partials: SpanPartials) -> None:
    """What `SpanMetrics.merge` does, through the registry's per-update calls."""
    for key, row in partials.items():
        service, kind, name, status = key
        labels = (
            ("service_name", service),
            ("span_kind", SpanKind(kind).otel_name),
            ("span_name", name),
            ("status_code", StatusCode(status).otel_name),
        )
        registry.inc(
            CALLS, labels, int(row[0]), help_text="Spans by service, name, kind and status."
        )
        registry.merge_histogram(
            DURATION,
            labels,
            DEFAULT_BUCKETS_MS,
            [int(c) for c in row[2:_FIXED]],
            row[1],
            int(row[0]),
            help_text="Span duration in milliseconds.",
            exp=row[_FIXED:],
        )


_FIXED = 3 + len(DEFAULT_BUCKETS_MS)  # count, sum, the buckets incl. +Inf


def test_span_metrics_merge_equals_per_update_calls_incl_overflow_and_changed_only() -> None:
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
            for i in range(rng.randrange(1, 60))
        ]
        partials, more = span_partials(spans), span_partials(spans[:7])  # keys in both
        metrics.merge(partials, more)
        _merge_one_by_one(reference, partials)
        _merge_one_by_one(reference, more)
        assert kept.collect(step, changed_only=True) == reference.collect(step, changed_only=True)
    assert kept.collect(9) == reference.collect(9)
    assert kept.overflowed == reference.overflowed > 0


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
