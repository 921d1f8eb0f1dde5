"""Tail sampling: buffer each trace for a decision wait, then keep or drop it whole.

Like the OTel collector's tail_sampling processor: spans are grouped by trace id; a trace is
decided `decision_wait` after its first span arrived (or earlier, when `num_traces` traces are
buffered and it is the oldest: it is decided, never lost). Every policy is evaluated; any
INVERTED_NOT_SAMPLED drops the trace, else any sampling decision keeps it, else it is dropped.
Decided trace ids are remembered in two bounded caches (kept, dropped) so spans arriving after
the decision follow it, and a kept trace is never split.

Spans are buffered as the store's encoded rows, a batch at a time, never as span objects:
each batch comes with its `TraceSummary` (`facts.py`, made where the spans were decoded, in
an ingest worker or in-process), and policies decide from the facts merged per trace. A
buffered batch is released once every trace in it is decided, narrowed to the rows of the
kept ones (`store.twophase.select_rows`).

The pipeline calls, from its single writer thread:
    offer(encoded, summary, now) -> batches writable now (only traces decided already)
    tick(now)                    -> batches whose traces are all decided, narrowed to the kept
    drain(now)                   -> on shutdown: decide everything now, the same
Derivation (span metrics, service graph) runs before this stage, on every span.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meshscope.pipeline.sampling.config import TailSamplingConfig
from meshscope.pipeline.sampling.facts import FACTS, SpanMatcher, TraceSummary
from meshscope.pipeline.sampling.policies import Decision, Policy, TraceData, build_policy
from meshscope.store.twophase import select_rows

_VETO = Decision.INVERTED_NOT_SAMPLED
_SAMPLES = frozenset(d for d in Decision if d.samples)


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


class DecisionCache(OrderedDict[str, None]):
    """The most recent `size` trace ids, oldest forgotten first (`in` and `len` as for any
    dict, in C: the tail sampler asks both caches about every new trace).

    An OrderedDict, not a dict: a dict used as a queue finds its oldest key by scanning the
    slots its earlier deletions left empty, ~30 µs per forgotten id at 100,000 ids, which
    made a server with tail sampling slow down as its caches filled (ADR 0003, revision
    2026-12-06); OrderedDict's `popitem(last=False)` is O(1)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def add(self, trace_id: str) -> None:
        if self.size <= 0:
            return
        self[trace_id] = None
        if len(self) > self.size:
            self.popitem(last=False)


class _Held:
    """One buffered batch of encoded spans, waiting for the decisions on its traces."""

    __slots__ = ("encoded", "kept", "row_trace", "waiting")

    def __init__(self, encoded: Any, row_trace: Sequence[int]) -> None:
        self.encoded = encoded
        self.row_trace = row_trace
        self.waiting = 0  # its traces not decided yet
        self.kept: list[int] = []  # indices (into its summary) of its kept traces

    def release(self) -> Any | None:
        """The rows of the kept traces (None: no row kept)."""
        if not self.kept:
            return None
        mask = np.isin(np.asarray(self.row_trace, dtype=np.int32), self.kept)
        if mask.all():
            return self.encoded
        return select_rows(self.encoded, mask)


class _Pending(TraceData):
    """A buffered trace: its facts, and where its rows wait (`held`: each batch holding
    some, then the trace's index in that batch's summary, flat). One object and one list a
    trace, not four: the buffer's ~50,000 traces are long-lived, so every object of theirs
    is walked again by the older garbage-collector generations."""

    __slots__ = ("held",)

    def __init__(self, first_seen_ns: int) -> None:
        super().__init__(first_seen_ns)
        self.held: list[Any] = []


class TailSampler:
    def __init__(
        self,
        policies: Sequence[tuple[str, Policy]],
        matcher: SpanMatcher | None = None,
        decision_wait_ns: int = 10 * 10**9,
        num_traces: int = 50_000,
        sampled_cache_size: int = 100_000,
        non_sampled_cache_size: int = 100_000,
    ) -> None:
        if num_traces < 1 or decision_wait_ns <= 0:
            raise ValueError("num_traces must be >= 1 and decision_wait_ns > 0")
        self.policies = list(policies)
        self.matcher = matcher or SpanMatcher()  # the policies' per-span predicates
        self.decision_wait_ns = decision_wait_ns
        self.num_traces = num_traces
        self.kept = DecisionCache(sampled_cache_size)
        self.dropped = DecisionCache(non_sampled_cache_size)
        self.stats = TailSamplingStats()
        self.stats.policy_decisions = {(name, d.value): 0 for name, _ in policies for d in Decision}
        # Each policy with its counters' keys by decision (no enum property lookups per trace).
        self._evaluated = [
            (policy, {d: (name, d.value) for d in Decision}) for name, policy in self.policies
        ]
        # In order of first arrival; the oldest found in O(1) (see DecisionCache).
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._pending_spans = 0
        self._last_now = 0

    @classmethod
    def from_config(cls, config: TailSamplingConfig) -> TailSampler:
        matcher = SpanMatcher()
        return cls(
            [(p.name, build_policy(p.settings, matcher)) for p in config.policies],
            matcher,
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

    def offer(self, encoded: Any, summary: TraceSummary, now_ns: int) -> list[Any]:
        """Buffer a batch of encoded spans (`summary` describes its rows); return the
        batches that may be written now."""
        self._last_now = now_ns
        out: list[Any] = []
        pending, stats = self._pending, self.stats
        held = _Held(encoded, summary.row_trace)
        kept, dropped, facts = self.kept, self.dropped, summary.facts
        if len(facts) != FACTS * len(summary.trace_ids):
            raise ValueError(f"a trace summary needs {FACTS} facts per trace")
        for index, trace_id in enumerate(summary.trace_ids):
            at = FACTS * index
            trace = pending.get(trace_id)
            if trace is None:
                if trace_id in kept:
                    stats.late_spans_sampled += facts[at + 2]
                    held.kept.append(index)
                    continue
                if trace_id in dropped:
                    stats.late_spans_not_sampled += facts[at + 2]
                    continue
                if len(pending) >= self.num_traces:
                    stats.traces_evicted += 1
                    self._decide(*pending.popitem(last=False), now_ns, out)
                trace = pending[trace_id] = _Pending(now_ns)
            trace.merge(facts, at)
            trace.held += (held, index)
            held.waiting += 1
            self._pending_spans += facts[at + 2]
        if not held.waiting:
            self._release(held, out)
        return out

    def tick(self, now_ns: int) -> list[Any]:
        """Decide every trace whose decision wait is over; return the batches released."""
        self._last_now = now_ns
        out: list[Any] = []
        pending, deadline = self._pending, now_ns - self.decision_wait_ns
        while pending:
            trace_id, trace = next(iter(pending.items()))
            if trace.first_seen_ns > deadline:
                break
            del pending[trace_id]
            self._decide(trace_id, trace, now_ns, out)
        return out

    def drain(self, now_ns: int | None = None) -> list[Any]:
        """Decide every buffered trace now (on shutdown); return the batches released."""
        now = self._last_now if now_ns is None else now_ns
        out: list[Any] = []
        while self._pending:
            self._decide(*self._pending.popitem(last=False), now, out)
        return out

    def decide(self, trace_id: str, trace: TraceData, now_ns: int) -> bool:
        """The policies' verdict on one trace (counted per policy), without buffering."""
        counts = self.stats.policy_decisions
        vetoed = sampled = False
        for policy, keys in self._evaluated:
            decision = policy.evaluate(trace_id, trace, now_ns)
            counts[keys[decision]] += 1
            if decision is _VETO:
                vetoed = True
            elif decision in _SAMPLES:
                sampled = True
        return sampled and not vetoed

    def _decide(self, trace_id: str, trace: _Pending, now_ns: int, out: list[Any]) -> None:
        spans = trace.span_count
        self._pending_spans -= spans
        stats = self.stats
        keep = self.decide(trace_id, trace, now_ns)
        if keep:
            self.kept.add(trace_id)
            stats.traces_sampled += 1
            stats.spans_sampled += spans
        else:
            self.dropped.add(trace_id)
            stats.traces_not_sampled += 1
            stats.spans_not_sampled += spans
        waits = trace.held
        for k in range(0, len(waits), 2):
            held, index = waits[k], waits[k + 1]
            if keep:
                held.kept.append(index)
            held.waiting -= 1
            if not held.waiting:
                self._release(held, out)

    @staticmethod
    def _release(held: _Held, out: list[Any]) -> None:
        rows = held.release()
        if rows is not None:
            out.append(rows)
