"""A batch made ready for the store owner: the per-span Python work done up front.

`prepare(batch, ...)` is the ONE function that reduces spans to what the owner needs, used
both in-process (`Pipeline.consume`) and in ingest worker processes: the store's encoded rows
(`meshscope.store.twophase`), each span's label key and duration for span metrics, the
compact pairing record of every span (pairing stays central: the two sides of a call usually
arrive in different requests), and the operations seen. Logs, metric points and proxied
requests travel as they are. Everything in a `Prepared` pickles cheaply (plain tuples, lists,
Arrow tables, NumPy arrays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshscope.model.batch import Batch
from meshscope.model.calls import ProxyRequest
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span, SpanKind
from meshscope.pipeline.derive.servicegraph import side_of
from meshscope.pipeline.derive.spanmetrics import SpanDurations, span_durations
from meshscope.pipeline.sampling.facts import SpanMatcher, TraceSummary, summarize
from meshscope.store.base import Operation
from meshscope.store.twophase import SpanEncoder

OperationKey = tuple[str, str, int]  # (service, name, kind)


@dataclass(slots=True)
class Prepared:
    span_count: int = 0
    encoded_spans: Any = None  # the store's encoding of the spans; None when there are none
    # `Side` fields, as plain tuples: one per span; in a cluster over a shared store, those
    # of the spans whose trace this node owns, and alone those a peer sent (ADR 0015).
    sides: list[tuple[Any, ...]] = field(default_factory=list)
    span_metrics: SpanDurations | None = None
    operations: list[OperationKey] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    requests: list[ProxyRequest] = field(default_factory=list)
    # With tail sampling: the traces of `encoded_spans` and each row's trace (`facts.py`).
    traces: TraceSummary | None = None

    @property
    def records_only(self) -> bool:
        """Whether this holds only a peer's pairing records (`sides` and no spans of its own)."""
        return not self.span_count and bool(self.sides)

    def __len__(self) -> int:
        spans = max(self.span_count, len(self.sides))  # a peer's pairing records: items too
        return spans + len(self.logs) + len(self.points) + len(self.requests)

    def operation_list(self) -> list[Operation]:
        """Catalog entries in order of appearance; a proxied call's source before its target."""
        return [Operation(service, name, SpanKind(kind)) for service, name, kind in self.op_keys()]

    def op_keys(self) -> list[OperationKey]:
        """`operation_list` as plain keys (cheap to deduplicate across many batches)."""
        keys = list(self.operations)
        internal = int(SpanKind.INTERNAL)
        for request in self.requests:
            if request.source:
                keys.append((request.source, "", internal))
            keys.append((request.service, "", internal))
        return keys


def prepare(
    batch: Batch,
    encode_spans: SpanEncoder,
    keep: Callable[[Sequence[Span]], list[Span]] | None = None,
    matcher: SpanMatcher | None = None,
) -> Prepared:
    """Derivation inputs come from every span; only the spans `keep` returns (head sampling)
    are encoded for the store, summarised for tail sampling when a `matcher` is given."""
    spans = batch.spans
    if not spans:
        return Prepared(logs=batch.logs, points=batch.metrics, requests=batch.requests)
    kept = keep(spans) if keep is not None else spans
    return Prepared(
        span_count=len(spans),
        encoded_spans=encode_spans(kept) if kept else None,
        sides=[tuple(side_of(span)) for span in spans],
        span_metrics=span_durations(spans),
        operations=list(dict.fromkeys([(s.service, s.name, int(s.kind)) for s in spans])),
        logs=batch.logs,
        points=batch.metrics,
        requests=batch.requests,
        traces=summarize(kept, matcher) if matcher is not None and kept else None,
    )
