"""Head sampling agrees with the real OpenTelemetry SDK samplers on every trace id."""

from __future__ import annotations

import random

import pytest
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)

from meshscope.model.batch import Batch
from meshscope.model.ids import TraceParent, parse_traceparent
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span
from meshscope.pipeline.sampling.head import (
    HeadSamplingFilter,
    ParentBasedSampler,
    TraceIdRatioSampler,
    ratio_bound,
)

RATIOS = [0.0, 1e-6, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.999, 1.0]


def _ids(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    ids = [rng.getrandbits(128) or 1 for _ in range(n)]
    # edge values of the lower 64 bits, where an off-by-one in the bound would show
    for ratio in RATIOS:
        bound = ratio_bound(ratio)
        for low in (bound - 1, bound, bound + 1):
            if 0 <= low <= (1 << 64) - 1:
                ids.append((rng.getrandbits(64) << 64) | low)
    return ids


@pytest.mark.parametrize("ratio", RATIOS)
def test_trace_id_ratio_matches_otel_sdk(ratio: float) -> None:
    otel = TraceIdRatioBased(ratio)
    ours = TraceIdRatioSampler(ratio)
    assert ours.bound == otel.bound
    for trace_id in _ids(4000, seed=int(ratio * 1000) + 1):
        expected = otel.should_sample(None, trace_id, "op").decision is Decision.RECORD_AND_SAMPLE
        assert ours.should_sample(f"{trace_id:032x}") is expected, f"{trace_id:032x}"


def test_the_sampled_share_is_the_ratio_and_decisions_nest() -> None:
    ids = [f"{i:032x}" for i in _ids(20000, seed=3)[:20000]]
    low, high = TraceIdRatioSampler(0.1), TraceIdRatioSampler(0.3)
    kept_low = {t for t in ids if low.should_sample(t)}
    kept_high = {t for t in ids if high.should_sample(t)}
    assert kept_low <= kept_high  # sampled at 10% -> sampled at 30%
    # binomial: n=20000, p=0.1 -> sd ~42; 5 sd
    assert abs(len(kept_low) - 2000) < 5 * 43


def _parent_context(trace_id: int, sampled: bool) -> object:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(trace_id, 0x1234, is_remote=True, trace_flags=flags)
    return set_span_in_context(NonRecordingSpan(context))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_parent_based_matches_otel_sdk(ratio: float) -> None:
    otel = ParentBased(TraceIdRatioBased(ratio))
    ours = ParentBasedSampler(TraceIdRatioSampler(ratio))
    for trace_id in _ids(500, seed=9):
        hex_id = f"{trace_id:032x}"
        # root
        expected = otel.should_sample(None, trace_id, "op").decision is Decision.RECORD_AND_SAMPLE
        assert ours.should_sample(hex_id, None) is expected
        # remote parent, sampled and not, carried in a traceparent header
        for sampled in (True, False):
            parent_ctx = _parent_context(trace_id, sampled)
            decision = otel.should_sample(parent_ctx, trace_id, "op").decision  # type: ignore[arg-type]
            header = TraceParent(hex_id, "0000000000001234", 1 if sampled else 0).format()
            parent = parse_traceparent(header)
            otel_sampled = decision is Decision.RECORD_AND_SAMPLE
            assert ours.should_sample(hex_id, parent) is otel_sampled is sampled
            assert ours.traceparent_decision(hex_id, parent) == (1 if sampled else 0)


def test_invalid_ratio_is_refused() -> None:
    for ratio in (-0.1, 1.5):
        with pytest.raises(ValueError, match="within"):
            TraceIdRatioSampler(ratio)


def _span(trace_id: str, n: int) -> Span:
    return Span(trace_id, f"{n + 1:016x}", "op", "svc", 0, 10)


def test_filter_keeps_whole_traces_and_passes_other_pillars() -> None:
    rng = random.Random(5)
    traces = [f"{rng.getrandbits(128):032x}" for _ in range(3000)]
    spans = [_span(t, n) for t in traces for n in range(3)]
    rng.shuffle(spans)
    stage = HeadSamplingFilter(0.2)
    logs = [LogRecord(time_ns=1, body="x", service="svc")]
    out = stage.filter_batch(Batch(spans=spans, logs=logs))
    per_trace: dict[str, int] = {}
    for span in out.spans:
        per_trace[span.trace_id] = per_trace.get(span.trace_id, 0) + 1
    assert set(per_trace.values()) == {3}  # never split
    expected = {t for t in traces if TraceIdRatioBased(0.2).bound > int(t, 16) & ((1 << 64) - 1)}
    assert set(per_trace) == expected
    assert out.logs is logs
    assert stage.stats.spans_kept == len(out.spans)
    assert stage.stats.spans_dropped == len(spans) - len(out.spans)
