"""Metric points in the Prometheus data model: a named series of labelled samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from meshscope.model.exphistogram import ExpHistogram

Labels = tuple[tuple[str, str], ...]
"""Label pairs sorted by name: hashable, canonical, cheap to compare."""


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted(mapping.items()))


class MetricType(Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative explicit-bucket histogram.

    `counts[i]` is the number of observations in bucket i (NOT cumulative); `bounds` are the
    upper bounds of all but the last bucket, which is +Inf, so len(counts) == len(bounds) + 1.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    def cumulative(self) -> list[tuple[float, int]]:
        """(le, cumulative count) pairs as Prometheus exposes them, ending with +Inf."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One sample of one series. Counters and histograms are cumulative."""

    name: str
    labels: Labels
    time_ns: int
    type: MetricType = MetricType.GAUGE
    value: float = 0.0
    histogram: Histogram | None = None
    help: str = ""
    unit: str = ""
    # When the cumulative series started counting (OTLP's start time); 0: unknown.
    start_ns: int = 0
    # The same observations as `histogram`, in an exponential histogram (span durations).
    exp_histogram: ExpHistogram | None = None

    def label(self, name: str) -> str:
        for key, value in self.labels:
            if key == name:
                return value
        return ""
