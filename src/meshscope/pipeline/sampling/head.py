"""Head sampling: decisions from the trace id alone, identical wherever they are made.

`TraceIdRatioSampler` decides exactly like OpenTelemetry's `TraceIdRatioBased` sampler: a trace
is sampled when the lower 64 bits of its id, read as an unsigned integer, are below
`round(ratio * 2**64)`. The OTel SDKs, sidecars and meshscope therefore agree on every trace
id, and a trace sampled at ratio r is also sampled at every ratio above r (the decisions nest).

`ParentBasedSampler` follows the parent's decision when there is one (W3C `traceparent`
sampled flag) and asks the root sampler otherwise, like OTel's `ParentBased`.

`HeadSamplingFilter` is the pipeline-side stage (like the collector's probabilistic_sampler):
it keeps or drops whole traces by the same trace-id rule, so a trace is never split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshscope.model.batch import Batch
from meshscope.model.ids import TraceParent
from meshscope.model.spans import Span

TRACE_ID_LIMIT = (1 << 64) - 1


def ratio_bound(ratio: float) -> int:
    """The exclusive upper bound for the lower 64 bits of a sampled trace id (as OTel)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"sampling ratio must be within [0, 1], got {ratio}")
    return round(ratio * (TRACE_ID_LIMIT + 1))


def trace_id_low64(trace_id: str) -> int:
    """The lower 64 bits of a hex trace id (its last 16 hex digits; shorter ids are padded)."""
    return int(trace_id[-16:] or "0", 16)


class TraceIdRatioSampler:
    """Samples a `ratio` share of traces, decided from the trace id (OTel `TraceIdRatioBased`)."""

    __slots__ = ("bound", "ratio")

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.bound = ratio_bound(ratio)

    def should_sample(self, trace_id: str) -> bool:
        return trace_id_low64(trace_id) < self.bound

    def description(self) -> str:
        return f"TraceIdRatioBased{{{self.ratio}}}"


class ParentBasedSampler:
    """A sampled parent -> sample; an unsampled parent -> drop; no parent -> ask `root`."""

    __slots__ = ("root",)

    def __init__(self, root: TraceIdRatioSampler) -> None:
        self.root = root

    def should_sample(self, trace_id: str, parent: TraceParent | None = None) -> bool:
        if parent is not None:
            return parent.sampled
        return self.root.should_sample(trace_id)

    def traceparent_decision(self, trace_id: str, parent: TraceParent | None) -> int:
        """The W3C trace flags a new span of `trace_id` should carry (01 sampled, 00 not)."""
        return 0x01 if self.should_sample(trace_id, parent) else 0x00


@dataclass(slots=True)
class HeadSamplingStats:
    spans_kept: int = 0
    spans_dropped: int = 0


class HeadSamplingFilter:
    """The pipeline's head-sampling stage: keeps spans of sampled trace ids, drops the rest.

    Only spans are filtered; logs, metric points and proxied requests pass unchanged (they feed
    derived metrics and are not traces). Derivation runs before this stage.
    """

    def __init__(self, ratio: float) -> None:
        self.sampler = TraceIdRatioSampler(ratio)
        self.stats = HeadSamplingStats()

    def filter(self, spans: Sequence[Span]) -> list[Span]:
        kept = self.sampled(spans)
        self.stats.spans_kept += len(kept)
        self.stats.spans_dropped += len(spans) - len(kept)
        return kept

    def sampled(self, spans: Sequence[Span]) -> list[Span]:
        """The spans `filter` keeps, without counting them (the decision is the trace id's)."""
        bound = self.sampler.bound
        return [span for span in spans if trace_id_low64(span.trace_id) < bound]

    def filter_batch(self, batch: Batch) -> Batch:
        """A batch with only the sampled spans; the other pillars are the same lists."""
        return Batch(self.filter(batch.spans), batch.logs, batch.metrics, batch.requests)
