"""Tail sampling on generated traces whose truth is known: what is kept, never split, bounded."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter

from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from meshscope.clock import ManualClock
from meshscope.model.spans import Span
from meshscope.pipeline.sampling.config import TailSamplingConfig
from meshscope.pipeline.sampling.facts import SpanMatcher
from meshscope.pipeline.sampling.policies import (
    LatencyPolicy,
    ProbabilisticPolicy,
    RateLimitingPolicy,
    StatusCodePolicy,
)
from meshscope.pipeline.sampling.policy_config import (
    LatencyThreshold,
    PolicyConfig,
    Probabilistic,
    RateLimiting,
    StatusCodeMatch,
)
from meshscope.pipeline.sampling.tail import DecisionCache, TailSampler
from tests.pipeline.sampling.traces import (
    GeneratedTrace,
    make_trace,
    offer,
    shuffled_batches,
    spans_of,
)

SEC = 10**9
M = SpanMatcher()  # the per-span predicates of the policies built here


def errors_slow_and_ten_percent(num_traces: int = 100_000) -> TailSampler:
    config = TailSamplingConfig(
        enabled=True,
        decision_wait_seconds=10,
        num_traces=num_traces,
        policies=(
            PolicyConfig("errors", StatusCodeMatch(("ERROR",))),
            PolicyConfig("slow", LatencyThreshold(500)),
            PolicyConfig("some", Probabilistic(10)),
        ),
    )
    return TailSampler.from_config(config)


def kept_per_trace(spans: list[Span]) -> Counter[str]:
    return Counter(span.trace_id for span in spans)


def test_keeps_all_errors_all_slow_and_the_probabilistic_share_of_the_rest() -> None:
    rng = random.Random(42)
    traces: list[GeneratedTrace] = []
    for _ in range(6000):
        kind = rng.random()
        if kind < 0.05:
            traces.append(make_trace(rng, error=True, n_spans=rng.randint(1, 6)))
        elif kind < 0.10:
            duration = rng.choice([500.0, 501.0, 2000.0])  # 500 ms is "over": >= threshold
            traces.append(make_trace(rng, duration_ms=duration, n_spans=rng.randint(1, 6)))
        else:
            duration = rng.choice([1.0, 30.0, 499.9])
            traces.append(make_trace(rng, duration_ms=duration, n_spans=rng.randint(1, 6)))
    clock = ManualClock()
    sampler = errors_slow_and_ten_percent()
    written: list[Span] = []
    for batch in shuffled_batches(rng, traces, 40):  # 40 batches over 4 s, within the wait
        written += offer(sampler, batch, clock.now_ns())
        written += spans_of(sampler.tick(clock.now_ns()))
        clock.advance(0.1)
    assert written == []  # nothing is decided before the wait is over
    clock.advance(10)
    written += spans_of(sampler.tick(clock.now_ns()))
    assert sampler.buffered_traces == 0 and sampler.buffered_spans == 0

    kept = kept_per_trace(written)
    assert len(written) == len({s.span_id for s in written})  # no span written twice
    for trace in traces:  # never split: all spans or none
        assert kept.get(trace.trace_id, 0) in (0, len(trace.spans))
    errors = [t for t in traces if t.error]
    slow = [t for t in traces if not t.error and t.duration_ms >= 500]
    rest = [t for t in traces if not t.error and t.duration_ms < 500]
    assert all(t.trace_id in kept for t in errors)
    assert all(t.trace_id in kept for t in slow)
    rest_kept = {t.trace_id for t in rest if t.trace_id in kept}
    # the share of the rest: a binomial(n, 0.1) count, within 4.5 standard deviations
    n = len(rest)
    assert abs(len(rest_kept) - 0.1 * n) <= 4.5 * math.sqrt(n * 0.1 * 0.9)
    # and exactly the traces the OTel SDK's TraceIdRatioBased(0.1) would sample
    otel = TraceIdRatioBased(0.1)
    expected = {
        t.trace_id
        for t in rest
        if otel.should_sample(None, int(t.trace_id, 16), "x").decision is Decision.RECORD_AND_SAMPLE
    }
    assert rest_kept == expected
    stats = sampler.stats
    assert stats.traces_sampled == len(kept) and stats.spans_sampled == len(written)
    assert stats.traces_sampled + stats.traces_not_sampled == len(traces)
    assert stats.policy_decisions[("errors", "sampled")] == len(errors)
    assert stats.policy_decisions[("slow", "sampled")] == sum(t.duration_ms >= 500 for t in traces)


def test_late_spans_follow_the_decision_and_traces_are_never_split() -> None:
    rng = random.Random(1)
    traces = [make_trace(rng, n_spans=8) for _ in range(2000)]
    sampler = TailSampler(
        [("half", ProbabilisticPolicy(Probabilistic(50)))], decision_wait_ns=1 * SEC
    )
    clock = ManualClock()
    written: list[Span] = []
    # 60 batches over 6 s with a 1 s wait: most traces are decided before their last span
    for batch in shuffled_batches(rng, traces, 60):
        written += offer(sampler, batch, clock.now_ns())
        clock.advance(0.1)
        written += spans_of(sampler.tick(clock.now_ns()))
    written += spans_of(sampler.drain())
    stats = sampler.stats
    assert stats.late_spans_sampled > 0 and stats.late_spans_not_sampled > 0
    kept = kept_per_trace(written)
    for trace in traces:
        assert kept.get(trace.trace_id, 0) in (0, len(trace.spans))
    assert 800 < len(kept) < 1200
    assert stats.spans_sampled + stats.late_spans_sampled == len(written)


def test_eviction_under_num_traces_decides_instead_of_losing() -> None:
    rng = random.Random(3)
    traces = [make_trace(rng, error=(i % 4 == 0), n_spans=3) for i in range(100)]
    sampler = errors_slow_and_ten_percent(num_traces=10)
    now = ManualClock().now_ns()
    written: list[Span] = []
    for trace in traces:  # whole traces, one after another, no tick
        written += offer(sampler, trace.spans, now)
        assert sampler.buffered_traces <= 10
    assert sampler.stats.traces_evicted == 90
    written += spans_of(sampler.drain())
    kept = kept_per_trace(written)
    assert all(kept[t.trace_id] == 3 for t in traces if t.error)  # all 25 errors, whole
    stats = sampler.stats
    assert stats.traces_sampled + stats.traces_not_sampled == 100
    assert sampler.buffered_traces == 0


def test_rate_limiting_caps_traces_per_second_with_a_controlled_clock() -> None:
    rng = random.Random(5)
    clock = ManualClock()
    sampler = TailSampler(
        [("five", RateLimitingPolicy(RateLimiting(traces_per_second=5)))],
        decision_wait_ns=2 * SEC,
    )
    per_second = []
    for _second in range(3):  # 40 new traces each second; each tick decides those 2 s old
        offer(sampler, [s for _ in range(40) for s in make_trace(rng).spans], clock.now_ns())
        per_second.append(len(kept_per_trace(spans_of(sampler.tick(clock.now_ns())))))
        clock.advance(1)
    assert per_second == [0, 0, 5]
    # two seconds' traces (80) decided within one second share that second's 5
    clock.advance(5)
    assert len(kept_per_trace(spans_of(sampler.tick(clock.now_ns())))) == 5
    assert sampler.buffered_traces == 0
    stats = sampler.stats
    assert (stats.traces_sampled, stats.traces_not_sampled) == (10, 110)
    assert stats.policy_decisions[("five", "sampled")] == 10


def test_rate_limiting_by_spans_admits_up_to_the_limit() -> None:
    rng = random.Random(6)
    policy = RateLimitingPolicy(RateLimiting(spans_per_second=10))
    sampler = TailSampler([("spans", policy)], decision_wait_ns=SEC)
    now = ManualClock().now_ns()
    for _ in range(10):
        offer(sampler, make_trace(rng, n_spans=3).spans, now)
    kept = spans_of(sampler.tick(now + SEC))
    assert len(kept) == 9  # 3 traces of 3 spans; a 4th would make 12 > 10


def test_decision_rules_any_inverted_drop_wins_then_any_sample() -> None:
    from meshscope.pipeline.sampling.policies import AlwaysSample, StringAttributePolicy
    from meshscope.pipeline.sampling.policy_config import StringAttribute

    rng = random.Random(8)
    health = make_trace(rng, attributes={"http.target": "/health"})
    other = make_trace(rng, attributes={"http.target": "/pay"})
    sampler = TailSampler(
        [
            ("all", AlwaysSample()),
            (
                "no-health",
                StringAttributePolicy(StringAttribute("http.target", ("/health",), False, True), M),
            ),
        ],
        M,
        decision_wait_ns=SEC,
    )
    offer(sampler, health.spans + other.spans, 0)
    kept = kept_per_trace(spans_of(sampler.tick(SEC)))
    assert set(kept) == {other.trace_id}
    counts = sampler.stats.policy_decisions
    assert counts[("no-health", "inverted_not_sampled")] == 1
    assert counts[("no-health", "inverted_sampled")] == 1
    assert counts[("all", "sampled")] == 2


def test_latency_is_from_earliest_start_to_latest_end_across_batches() -> None:
    rng = random.Random(9)
    trace = make_trace(rng, duration_ms=100, n_spans=2)
    root, child = trace.spans
    late_child = dataclasses.replace(child, end_ns=root.start_ns + 600 * 10**6)
    sampler = TailSampler([("slow", LatencyPolicy(LatencyThreshold(500)))], decision_wait_ns=SEC)
    offer(sampler, [root], 0)
    offer(sampler, [late_child], SEC // 2)
    assert len(spans_of(sampler.tick(SEC))) == 2


def test_status_policy_matches_only_listed_codes() -> None:
    rng = random.Random(10)
    policy = StatusCodePolicy(StatusCodeMatch(("ERROR",)), M)
    sampler = TailSampler([("errors", policy)], M, decision_wait_ns=SEC)
    ok, bad = make_trace(rng), make_trace(rng, error=True)
    offer(sampler, ok.spans + bad.spans, 0)
    assert set(kept_per_trace(spans_of(sampler.tick(SEC)))) == {bad.trace_id}


def test_decision_cache_is_bounded_oldest_first() -> None:
    cache = DecisionCache(2)
    for trace_id in ("a", "b", "c"):
        cache.add(trace_id)
    assert "a" not in cache and "b" in cache and "c" in cache and len(cache) == 2
    empty = DecisionCache(0)
    empty.add("a")
    assert "a" not in empty
