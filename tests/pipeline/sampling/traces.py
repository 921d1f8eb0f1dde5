"""Generated traces whose truth (error? slow? how many spans?) is known to the test."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.sampling.facts import FACTS, SpanMatcher, summarize
from meshscope.pipeline.sampling.policies import TraceData
from meshscope.pipeline.sampling.tail import TailSampler

MS = 10**6


@dataclass(frozen=True)
class GeneratedTrace:
    trace_id: str
    spans: list[Span]
    error: bool
    duration_ms: float


def make_trace(
    rng: random.Random,
    *,
    error: bool = False,
    duration_ms: float = 20.0,
    n_spans: int = 4,
    attributes: dict[str, AttrValue] | None = None,
) -> GeneratedTrace:
    """A root SERVER span of `duration_ms` with children nested inside it; when `error`, one
    random child (or the root) has status ERROR."""
    trace_id = f"{rng.getrandbits(128) or 1:032x}"
    start = 1_700_000_000 * 10**9 + rng.randrange(10**9)
    end = start + int(duration_ms * MS)
    error_at = rng.randrange(n_spans) if error else -1
    spans: list[Span] = []
    for i in range(n_spans):
        child_start = start if i == 0 else start + rng.randrange(max(1, (end - start) // 2))
        child_end = end if i == 0 else child_start + (end - child_start) // 2
        spans.append(
            Span(
                trace_id,
                f"{rng.getrandbits(64) or 1:016x}",
                f"op{i}",
                rng.choice(["web", "api", "db"]),
                child_start,
                child_end,
                parent_span_id="" if i == 0 else spans[0].span_id,
                kind=SpanKind.SERVER if i == 0 else SpanKind.CLIENT,
                status_code=StatusCode.ERROR if i == error_at else StatusCode.UNSET,
                attributes=dict(attributes or {}),
            )
        )
    return GeneratedTrace(trace_id, spans, error, duration_ms)


def shuffled_batches(
    rng: random.Random, traces: list[GeneratedTrace], n_batches: int
) -> list[list[Span]]:
    """All spans of all traces, shuffled and cut into `n_batches` batches (so the spans of one
    trace usually arrive in several batches)."""
    spans = [span for trace in traces for span in trace.spans]
    rng.shuffle(spans)
    size = -(-len(spans) // n_batches)
    return [spans[i : i + size] for i in range(0, len(spans), size)]


def offer(sampler: TailSampler, spans: Sequence[Span], now_ns: int) -> list[Span]:
    """Offer model spans (the fallback encoding: a span list); the spans released now."""
    return spans_of(sampler.offer(list(spans), summarize(spans, sampler.matcher), now_ns))


def spans_of(batches: list[Any]) -> list[Span]:
    """The spans of released batches (span lists)."""
    return [span for batch in batches for span in batch]


def trace_of(spans: Sequence[Span], matcher: SpanMatcher) -> TraceData:
    """The facts policies see of a trace made of `spans`."""
    data = TraceData(0)
    facts = summarize(spans, matcher).facts
    for at in range(0, len(facts), FACTS):
        data.merge(facts, at)
    return data
