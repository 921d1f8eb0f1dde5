"""Counter arithmetic over stored cumulative series."""

from __future__ import annotations

from collections.abc import Sequence

from meshscope.model.metrics import MetricPoint


def increase_since(samples: Sequence[MetricPoint], start_ns: int) -> float:
    """How much a cumulative counter grew from its last value before `start_ns` to its last value.

    A drop in value is a counter reset (the process restarted): counting resumes from 0.
    A series that begins inside the window counts from 0, as its first value is all new.
    """
    total = 0.0
    previous = 0.0
    for point in samples:
        value = point.value
        if point.time_ns < start_ns:
            previous = value
            continue
        total += value - previous if value >= previous else value
        previous = value
    return total


def latest_sum(series_samples: Sequence[Sequence[MetricPoint]]) -> float:
    """Sum of the last value of each series."""
    return sum(samples[-1].value for samples in series_samples if samples)
