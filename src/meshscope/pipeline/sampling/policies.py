"""Tail-sampling policies: each looks at one whole buffered trace and returns a Decision.

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
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span, StatusCode
from meshscope.pipeline.sampling import policy_config as cfg
from meshscope.pipeline.sampling.head import ratio_bound, trace_id_low64

NS_PER_SECOND = 10**9


class Decision(Enum):
    NOT_SAMPLED = "not_sampled"
    SAMPLED = "sampled"
    INVERTED_SAMPLED = "inverted_sampled"
    INVERTED_NOT_SAMPLED = "inverted_not_sampled"

    @property
    def samples(self) -> bool:
        return self in (Decision.SAMPLED, Decision.INVERTED_SAMPLED)


@dataclass(slots=True)
class TraceData:
    """The spans buffered for one trace, with what policies ask of a whole trace."""

    first_seen_ns: int
    spans: list[Span] = field(default_factory=list)
    start_ns: int = 0
    end_ns: int = 0

    def add(self, span: Span) -> None:
        if not self.spans or span.start_ns < self.start_ns:
            self.start_ns = span.start_ns
        if not self.spans or span.end_ns > self.end_ns:
            self.end_ns = span.end_ns
        self.spans.append(span)

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
    def __init__(self, settings: cfg.StatusCodeMatch) -> None:
        self.codes = {StatusCode[name] for name in settings.status_codes}

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        codes = self.codes
        if any(span.status_code in codes for span in trace.spans):
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED


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
        cost = 1 if self.per_trace else len(trace.spans)
        if self.used + cost <= self.limit:
            self.used += cost
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def _attribute_values(trace: TraceData, key: str) -> list[AttrValue]:
    values = []
    for span in trace.spans:
        if key in span.attributes:
            values.append(span.attributes[key])
        if key in span.resource:
            values.append(span.resource[key])
    return values


def _matched(matched: bool, invert: bool) -> Decision:
    if invert:
        return Decision.INVERTED_NOT_SAMPLED if matched else Decision.INVERTED_SAMPLED
    return Decision.SAMPLED if matched else Decision.NOT_SAMPLED


class StringAttributePolicy:
    def __init__(self, settings: cfg.StringAttribute) -> None:
        self.key = settings.key
        self.invert = settings.invert_match
        self.values = frozenset(settings.values)
        self.patterns = (
            [re.compile(v) for v in settings.values] if settings.enabled_regex_matching else []
        )

    def _match(self, value: AttrValue) -> bool:
        if not isinstance(value, str):
            return False
        if self.patterns:
            return any(p.search(value) for p in self.patterns)
        return value in self.values

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        matched = any(self._match(v) for v in _attribute_values(trace, self.key))
        return _matched(matched, self.invert)


class NumericAttributePolicy:
    def __init__(self, settings: cfg.NumericAttribute) -> None:
        self.key = settings.key
        self.low = -float("inf") if settings.min_value is None else settings.min_value
        self.high = float("inf") if settings.max_value is None else settings.max_value
        self.invert = settings.invert_match

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        matched = any(
            isinstance(v, int | float) and not isinstance(v, bool) and self.low <= v <= self.high
            for v in _attribute_values(trace, self.key)
        )
        return _matched(matched, self.invert)


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

    def __init__(self, settings: cfg.Composite) -> None:
        self.total = settings.max_total_spans_per_second
        given = {a.policy: a.percent for a in settings.rate_allocation}
        rest = [s.name for s in settings.composite_sub_policy if s.name not in given]
        left = max(0.0, 100.0 - sum(given.values()))
        shares = {name: left / len(rest) for name in rest} if rest else {}
        shares.update(given)
        self.subs = [
            (build_leaf(s.settings), int(self.total * shares[s.name] / 100))
            for s in settings.composite_sub_policy
        ]
        self.used = [0] * len(self.subs)
        self.second = -1

    def evaluate(self, trace_id: str, trace: TraceData, now_ns: int) -> Decision:
        second = now_ns // NS_PER_SECOND
        if second != self.second:
            self.second, self.used = second, [0] * len(self.subs)
        spans = len(trace.spans)
        for i, (policy, allowed) in enumerate(self.subs):
            if (
                policy.evaluate(trace_id, trace, now_ns).samples
                and self.used[i] + spans <= allowed
                and sum(self.used) + spans <= self.total
            ):
                self.used[i] += spans
                return Decision.SAMPLED
        return Decision.NOT_SAMPLED


def build_leaf(settings: cfg.LeafSettings) -> Policy:
    match settings:
        case cfg.AlwaysSample():
            return AlwaysSample()
        case cfg.StatusCodeMatch():
            return StatusCodePolicy(settings)
        case cfg.LatencyThreshold():
            return LatencyPolicy(settings)
        case cfg.Probabilistic():
            return ProbabilisticPolicy(settings)
        case cfg.RateLimiting():
            return RateLimitingPolicy(settings)
        case cfg.StringAttribute():
            return StringAttributePolicy(settings)
        case cfg.NumericAttribute():
            return NumericAttributePolicy(settings)


def build_policy(settings: cfg.PolicySettings) -> Policy:
    if isinstance(settings, cfg.AllOf):
        return AndPolicy([build_leaf(s.settings) for s in settings.and_sub_policy])
    if isinstance(settings, cfg.Composite):
        return CompositePolicy(settings)
    return build_leaf(settings)
