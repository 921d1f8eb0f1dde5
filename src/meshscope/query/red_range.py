"""RED over time: rate, error ratio and p50/p95/p99 per interval, for charts and sparklines.

The range is cut into `steps` intervals. Each series is looked up once per boundary (its last
sample at or before the instant, `MetricStore.latest`), and an interval's RED is the growth
between its two boundaries, summarised exactly as `query.red.red` does for one range (so its
rate covers the interval's samples, from the series' start when it started inside it). So a
day of a chart costs steps+1 lookups per metric, never a scan of every sample in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshscope.model.spans import SpanKind
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION
from meshscope.query import budget
from meshscope.query.increase import growth_since, snapshots
from meshscope.query.red import red_matchers, summarize
from meshscope.store.base import MetricStore

MAX_STEPS = 1000
MIN_INTERVAL_NS = 60 * 10**9
"""Derived metrics are flushed every 15 s by default: an interval shorter than a few flushes
would alternate between empty and double, so intervals are at least a minute long."""


def effective_steps(start_ns: int, end_ns: int, steps: int) -> int:
    """`steps`, reduced so that no interval is shorter than MIN_INTERVAL_NS (at least 1)."""
    return max(1, min(steps, MAX_STEPS, (end_ns - start_ns) // MIN_INTERVAL_NS))


@dataclass(frozen=True, slots=True)
class RedPoint:
    """RED of the interval that ends at `time_ns`."""

    time_ns: int
    rate: float
    error_ratio: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    percentile_error: float | None = None


@dataclass(slots=True)
class RedSeries:
    service: str
    operation: str
    points: list[RedPoint] = field(default_factory=list)


def boundaries(start_ns: int, end_ns: int, steps: int) -> list[int]:
    """steps+1 instants from start to end, evenly spaced."""
    return [start_ns + (end_ns - start_ns) * i // steps for i in range(steps + 1)]


def red_over_time(
    metrics: MetricStore,
    start_ns: int,
    end_ns: int,
    steps: int = 60,
    service: str = "",
    by_operation: bool = False,
    kind: SpanKind | None = SpanKind.SERVER,
) -> list[RedSeries]:
    """One series per service (and operation) with a point for every interval (see
    `effective_steps`); an interval without calls has rate 0 and no ratio or percentiles.
    Sorted like `red()`."""
    if end_ns <= start_ns or steps < 1:
        return []
    instants = boundaries(start_ns, end_ns, effective_steps(start_ns, end_ns, steps))
    matchers = red_matchers(service, kind)
    calls, durations = [], []
    for t in instants:  # a store read each: check the deadline between them
        budget.check()
        both = snapshots(metrics, [CALLS, DURATION], matchers, t)
        calls.append(both[CALLS])
        durations.append(both[DURATION])
    found: dict[tuple[str, str], RedSeries] = {}
    empty: list[tuple[int, set[tuple[str, str]]]] = []
    for i in range(1, len(instants)):
        reds = summarize(
            growth_since(calls[i - 1], calls[i], instants[i - 1]),
            growth_since(durations[i - 1], durations[i], instants[i - 1]),
            instants[i - 1],
            instants[i],
            by_operation,
        )
        seen = set()
        for red in reds:
            key = (red.service, red.operation)
            seen.add(key)
            series = found.setdefault(key, RedSeries(*key))
            series.points.append(
                RedPoint(
                    instants[i],
                    red.rate,
                    red.error_ratio,
                    red.p50_ms,
                    red.p95_ms,
                    red.p99_ms,
                    red.percentile_error,
                )
            )
        empty.append((i, seen))
    for key, series in found.items():  # quiet intervals: rate 0, in time order
        quiet = [RedPoint(instants[i], 0.0, None, None, None, None) for i, seen in empty
                 if key not in seen]  # fmt: skip
        series.points = sorted([*series.points, *quiet], key=lambda p: p.time_ns)
    return [found[key] for key in sorted(found)]
