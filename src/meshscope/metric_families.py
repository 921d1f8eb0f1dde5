"""Building meshscope's own `/metrics` families from counts kept in dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily


def counters(
    name: str,
    documentation: str,
    labels: Sequence[str],
    counts: Mapping[Any, float],
) -> CounterMetricFamily:
    """A counter family with one series per key of `counts` (a label value, or a tuple of
    them in `labels` order), in sorted order."""
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, count in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
    return family
