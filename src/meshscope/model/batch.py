"""A Batch is what a decoder produces and the pipeline consumes: some of each pillar."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshscope.model.calls import ProxyRequest
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span


@dataclass(slots=True)
class Batch:
    spans: list[Span] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    metrics: list[MetricPoint] = field(default_factory=list)
    requests: list[ProxyRequest] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.logs) + len(self.metrics) + len(self.requests)

    def extend(self, other: Batch) -> None:
        self.spans.extend(other.spans)
        self.logs.extend(other.logs)
        self.metrics.extend(other.metrics)
        self.requests.extend(other.requests)
