"""Tail sampling: buffer each trace for a decision wait, then keep or drop it whole.

Like the OTel collector's tail_sampling processor: spans are grouped by trace id; a trace is
decided `decision_wait` after its first span arrived (or earlier, when `num_traces` traces are
buffered and it is the oldest: it is decided, never lost). Every policy is evaluated; any
INVERTED_NOT_SAMPLED drops the trace, else any sampling decision keeps it, else it is dropped.
Decided trace ids are remembered in two bounded caches (kept, dropped) so spans arriving after
the decision follow it, and a kept trace is never split.

The pipeline calls, from its single writer thread:
    offer(spans, now)  -> spans writable now (late spans of kept traces, evicted-and-kept traces)
    tick(now)          -> spans of traces whose wait is over and that were kept
    drain(now)         -> on shutdown: decide everything now, return what is kept
Derivation (span metrics, service graph) runs before this stage, on every span.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshscope.model.spans import Span
from meshscope.pipeline.sampling.config import TailSamplingConfig
from meshscope.pipeline.sampling.policies import Decision, Policy, TraceData, build_policy


@dataclass(slots=True)
class TailSamplingStats:
    traces_sampled: int = 0
    traces_not_sampled: int = 0
    spans_sampled: int = 0
    spans_not_sampled: int = 0
    late_spans_sampled: int = 0  # arrived after their trace was kept: written
    late_spans_not_sampled: int = 0  # arrived after their trace was dropped: dropped
    traces_evicted: int = 0  # decided before their wait was over, because num_traces was reached
    policy_decisions: dict[tuple[str, str], int] = field(default_factory=dict)


class DecisionCache:
    """The most recent `size` trace ids, oldest forgotten first (insertion-ordered dict)."""

    __slots__ = ("_ids", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: dict[str, None] = {}

    def add(self, trace_id: str) -> None:
        if self.size <= 0:
            return
        self._ids[trace_id] = None
        if len(self._ids) > self.size:
            del self._ids[next(iter(self._ids))]

    def __contains__(self, trace_id: str) -> bool:
        return trace_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class TailSampler:
    def __init__(
        self,
        policies: Sequence[tuple[str, Policy]],
        decision_wait_ns: int = 10 * 10**9,
        num_traces: int = 50_000,
        sampled_cache_size: int = 100_000,
        non_sampled_cache_size: int = 100_000,
    ) -> None:
        if num_traces < 1 or decision_wait_ns <= 0:
            raise ValueError("num_traces must be >= 1 and decision_wait_ns > 0")
        self.policies = list(policies)
        self.decision_wait_ns = decision_wait_ns
        self.num_traces = num_traces
        self.kept = DecisionCache(sampled_cache_size)
        self.dropped = DecisionCache(non_sampled_cache_size)
        self.stats = TailSamplingStats()
        self.stats.policy_decisions = {(name, d.value): 0 for name, _ in policies for d in Decision}
        self._pending: dict[str, TraceData] = {}  # in order of first arrival
        self._pending_spans = 0
        self._last_now = 0

    @classmethod
    def from_config(cls, config: TailSamplingConfig) -> TailSampler:
        return cls(
            [(p.name, build_policy(p.settings)) for p in config.policies],
            decision_wait_ns=int(config.decision_wait_seconds * 1e9),
            num_traces=config.num_traces,
            sampled_cache_size=config.sampled_cache_size,
            non_sampled_cache_size=config.non_sampled_cache_size,
        )

    @property
    def buffered_traces(self) -> int:
        return len(self._pending)

    @property
    def buffered_spans(self) -> int:
        return self._pending_spans

    def offer(self, spans: Iterable[Span], now_ns: int) -> list[Span]:
        """Buffer spans; return those that may be written now."""
        self._last_now = now_ns
        out: list[Span] = []
        pending, stats = self._pending, self.stats
        for span in spans:
            trace_id = span.trace_id
            trace = pending.get(trace_id)
            if trace is None:
                if trace_id in self.kept:
                    stats.late_spans_sampled += 1
                    out.append(span)
                    continue
                if trace_id in self.dropped:
                    stats.late_spans_not_sampled += 1
                    continue
                if len(pending) >= self.num_traces:
                    stats.traces_evicted += 1
                    oldest = next(iter(pending))
                    out.extend(self._decide(oldest, pending.pop(oldest), now_ns))
                trace = pending[trace_id] = TraceData(now_ns)
            trace.add(span)
            self._pending_spans += 1
        return out

    def tick(self, now_ns: int) -> list[Span]:
        """Decide every trace whose decision wait is over; return the kept spans."""
        self._last_now = now_ns
        out: list[Span] = []
        pending, deadline = self._pending, now_ns - self.decision_wait_ns
        while pending:
            trace_id, trace = next(iter(pending.items()))
            if trace.first_seen_ns > deadline:
                break
            del pending[trace_id]
            out.extend(self._decide(trace_id, trace, now_ns))
        return out

    def drain(self, now_ns: int | None = None) -> list[Span]:
        """Decide every buffered trace now (on shutdown); return the kept spans."""
        now = self._last_now if now_ns is None else now_ns
        out: list[Span] = []
        while self._pending:
            trace_id = next(iter(self._pending))
            out.extend(self._decide(trace_id, self._pending.pop(trace_id), now))
        return out

    def decide(self, trace_id: str, trace: TraceData, now_ns: int) -> bool:
        """The policies' verdict on one trace (counted per policy), without buffering."""
        counts = self.stats.policy_decisions
        vetoed = sampled = False
        for name, policy in self.policies:
            decision = policy.evaluate(trace_id, trace, now_ns)
            counts[(name, decision.value)] += 1
            if decision is Decision.INVERTED_NOT_SAMPLED:
                vetoed = True
            elif decision.samples:
                sampled = True
        return sampled and not vetoed

    def _decide(self, trace_id: str, trace: TraceData, now_ns: int) -> list[Span]:
        self._pending_spans -= len(trace.spans)
        stats = self.stats
        if self.decide(trace_id, trace, now_ns):
            self.kept.add(trace_id)
            stats.traces_sampled += 1
            stats.spans_sampled += len(trace.spans)
            return trace.spans
        self.dropped.add(trace_id)
        stats.traces_not_sampled += 1
        stats.spans_not_sampled += len(trace.spans)
        return []
