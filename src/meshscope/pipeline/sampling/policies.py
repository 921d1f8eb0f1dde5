"""Tail-sampling policies: each looks at one whole buffered trace and returns a Decision.

A trace is seen as its `TraceData` (facts merged from every span, `facts.py`), never as its
spans: per-span questions (status codes, attributes) are predicates registered with a
`SpanMatcher` when a policy is built and answered, span by span, where spans are decoded.

Semantics follow the OTel collector's tail_sampling processor (`internal/sampling/*.go`):
string/numeric attributes match span or resource attributes of any span; `invert_match`
turns a match into INVERTED_NOT_SAMPLED (a veto) and no match into INVERTED_SAMPLED; `and`
samples only when every sub-policy samples; `composite` gives each sub-policy a share of a
spans-per-second budget and samples with the first sub-policy that samples within its share.
Deviations, on purpose: rate limits admit up to and including the limit; `probabilistic` with
no `hash_salt` decides exactly like OTel's TraceIdRatioBased (so it agrees with SDK head
sampling); composite sub-policies without a `rate_allocation` share what is left equally.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from meshscope.model.spans import StatusCode
from meshscope.pipeline.sampling import policy_config as cfg
from meshscope.pipeline.sampling.facts import NumberIn, SpanMatcher, StatusIn, StringMatch
from meshscope.pipeline.sampling.head import ratio_bound, trace_id_low64

NS_PER_SECOND = 10**9


class Decision(Enum):
    NOT_SAMPLED = "not_sampled"
    SAMPLED = "sampled"
    INVERTED_SAMPLED = "inverted_sampled"
    INVERTED_NOT_SAMPLED = "inverted_not_sampled"

    # Members are singletons: hashed by identity, in C. Enum's own `__hash__` is a Python
    # function hashing the name; the tail sampler counts several decisions per trace.
    __hash__ = object.__hash__

    @property
    def samples(self) -> bool:
        return self in (Decision.SAMPLED, Decision.INVERTED_SAMPLED)


@dataclass(slots=True)
class TraceData:
    """What policies ask of one whole buffered trace (see `facts`): its earliest start,
    latest end, span count, and which per-span predicates any of its spans matched."""

    first_seen_ns: int
    start_ns: int = 0
    end_ns: int = 0
    span_count: int = 0
    matched: int = 0  # bit i: some span matched the SpanMatcher's predicate i

    def merge(self, facts: Sequence[int], at: int = 0) -> None:
        """Add the facts `start_ns, end_ns, spans, mask` of more of the trace's spans, at
        `facts[at : at + 4]` (a `TraceSummary`'s flat facts)."""
        start, end, spans, mask = facts[at], facts[at + 1], facts[at + 2], facts[at + 3]
        if not self.span_count or start < self.start_ns:
            self.start_ns = start
        if not self.span_count or end > self.end_ns:
            self.end_ns = end
        self.span_count += spans
        self.matched |= mask

    @property
    def duration_ns(self) -> int:
        """From the earliest span start to the latest span end."""
        return max(0, self.end_ns - self.start_ns)


class Policy(Protocol):
    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision: ...


class AlwaysSample:
    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        return Decision.SAMPLED


class StatusCodePolicy:
    def __init__(self, settings: cfg.StatusCodeMatch, matcher: SpanMatcher) -> None:
        codes = frozenset(int(StatusCode[name]) for name in settings.status_codes)
        self.bit = matcher.register(StatusIn(codes))

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        return Decision.SAMPLED if trace.matched & self.bit else Decision.NOT_SAMPLED


class LatencyPolicy:
    def __init__(self, settings: cfg.LatencyThreshold) -> None:
        self.low_ns = int(settings.threshold_ms * 1e6)
        self.high_ns = int(settings.upper_threshold_ms * 1e6)

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        duration = trace.duration_ns
        if duration >= self.low_ns and (not self.high_ns or duration <= self.high_ns):
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def _fnv1a_64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


class ProbabilisticPolicy:
    """The same decision for the same trace id, every time and in every process."""

    def __init__(self, settings: cfg.Probabilistic) -> None:
        self.bound = ratio_bound(settings.sampling_percentage / 100)
        self.salt = settings.hash_salt.encode()

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        if self.salt:
            value = _fnv1a_64(self.salt + bytes.fromhex(trace_id.rjust(32, "0")))
        else:
            value = trace_id_low64(trace_id)
        return Decision.SAMPLED if value < self.bound else Decision.NOT_SAMPLED


class RateLimitingPolicy:
    """At most N spans (or traces) sampled per second of the decision clock."""

    def __init__(self, settings: cfg.RateLimiting) -> None:
        self.per_trace = settings.traces_per_second > 0
        self.limit = settings.traces_per_second or settings.spans_per_second
        self.second = -1
        self.used = 0

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        second = now_ns // NS_PER_SECOND
        if second != self.second:
            self.second, self.used = second, 0
        cost = 1 if self.per_trace else trace.span_count
        if self.used + cost <= self.limit:
            self.used += cost
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def _matched(matched: bool, invert: bool) -> Decision:
    if invert:
        return Decision.INVERTED_NOT_SAMPLED if matched else Decision.INVERTED_SAMPLED
    return Decision.SAMPLED if matched else Decision.NOT_SAMPLED


class StringAttributePolicy:
    def __init__(self, settings: cfg.StringAttribute, matcher: SpanMatcher) -> None:
        patterns = (
            tuple(re.compile(v) for v in settings.values) if settings.enabled_regex_matching else ()
        )
        self.bit = matcher.register(StringMatch(settings.key, frozenset(settings.values), patterns))
        self.invert = settings.invert_match

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        return _matched(bool(trace.matched & self.bit), self.invert)


class NumericAttributePolicy:
    def __init__(self, settings: cfg.NumericAttribute, matcher: SpanMatcher) -> None:
        low = -float("inf") if settings.min_value is None else settings.min_value
        high = float("inf") if settings.max_value is None else settings.max_value
        self.bit = matcher.register(NumberIn(settings.key, low, high))
        self.invert = settings.invert_match

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        return _matched(bool(trace.matched & self.bit), self.invert)


class AndPolicy:
    def __init__(self, subs: list[Policy]) -> None:
        self.subs = subs

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        for sub in self.subs:
            if not sub.evaluate(trace_id, trace, now_ns).samples:
                return Decision.NOT_SAMPLED
        return Decision.SAMPLED


class CompositePolicy:
    """Sub-policies in `policy_order`; each may sample up to its share of spans per second."""

    def __init__(self, settings: cfg.Composite, matcher: SpanMatcher) -> None:
        self.total = settings.max_total_spans_per_second
        given = {a.policy: a.percent for a in settings.rate_allocation}
        rest = [s.name for s in settings.composite_sub_policy if s.name not in given]
        left = max(0.0, 100.0 - sum(given.values()))
        shares = {name: left / len(rest) for name in rest} if rest else {}
        shares.update(given)
        self.subs = [
            (build_leaf(s.settings, matcher), int(self.total * shares[s.name] / 100))
            for s in settings.composite_sub_policy
        ]
        self.used = [0] * len(self.subs)
        self.second = -1

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        second = now_ns // NS_PER_SECOND
        if second != self.second:
            self.second, self.used = second, [0] * len(self.subs)
        spans = trace.span_count
        for i, (policy, allowed) in enumerate(self.subs):
            if (
                policy.evaluate(trace_id, trace, now_ns).samples
                and self.used[i] + spans <= allowed
                and sum(self.used) + spans <= self.total
            ):
                self.used[i] += spans
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def build_leaf(settings: cfg.LeafSettings, matcher: SpanMatcher) -> Policy:
    """The policy for `settings`; its per-span predicate, if it has one, joins `matcher`."""
    match settings:
        case cfg.AlwaysSample():
            return AlwaysSample()
        case cfg.StatusCodeMatch():
            return StatusCodePolicy(settings, matcher)
        case cfg.LatencyThreshold():
            return LatencyPolicy(settings)
        case cfg.Probabilistic():
            return ProbabilisticPolicy(settings)
        case cfg.RateLimiting():
            return RateLimitingPolicy(settings)
        case cfg.StringAttribute():
            return StringAttributePolicy(settings, matcher)
        case cfg.NumericAttribute():
            return NumericAttributePolicy(settings, matcher)


def build_policy(settings: cfg.PolicySettings, matcher: SpanMatcher) -> Policy:
    if isinstance(settings, cfg.AllOf):
        return AndPolicy([build_leaf(s.settings, matcher) for s in settings.and_sub_policy])
    if isinstance(settings, cfg.Composite):
        return CompositePolicy(settings, matcher)
    return build_leaf(settings, matcher)
