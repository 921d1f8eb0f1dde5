"""Delta temporality -> cumulative, as Prometheus needs counters and histograms to be.

OTLP senders may report sums and histograms as deltas (the .NET and JS SDKs can, and so can
the Collector's `cumulativetodelta` processor). The metrics decoder is otherwise a pure
function, so the running totals live in a `DeltaToCumulative` the CALLER owns: create one per
receiver (process), pass it to every `decode_metrics_*` call, and keep it alive. Without one,
delta points are rejected as OTLP partial success with a message saying so.

Keys are (metric name, labels); totals for at most `max_series` series are kept, the least
recently updated ones are forgotten beyond that (they then restart from their next delta,
which Prometheus' `rate()` reads as a counter reset). Not thread-safe: one owner at a time.
"""

from __future__ import annotations

from collections import OrderedDict

from meshscope.model.metrics import Histogram, Labels

SeriesKey = tuple[str, Labels]


class DeltaToCumulative:
    """Running totals per series, turning delta sums and histograms into cumulative ones."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._sums: OrderedDict[SeriesKey, float] = OrderedDict()
        self._histograms: OrderedDict[SeriesKey, Histogram] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sums) + len(self._histograms)

    def add_sum(self, key: SeriesKey, delta: float) -> float:
        """Add `delta` to the series' total and return the new cumulative value."""
        total = self._sums.pop(key, 0.0) + delta
        self._sums[key] = total
        if len(self._sums) > self.max_series:
            self._sums.popitem(last=False)
        return total

    def add_histogram(self, key: SeriesKey, delta: Histogram) -> Histogram:
        """Add a delta histogram to the series' total; a change of bounds restarts the total."""
        previous = self._histograms.pop(key, None)
        if previous is None or previous.bounds != delta.bounds:
            total = delta
        else:
            total = Histogram(
                bounds=delta.bounds,
                counts=tuple(a + b for a, b in zip(previous.counts, delta.counts, strict=True)),
                sum=previous.sum + delta.sum,
                count=previous.count + delta.count,
            )
        self._histograms[key] = total
        if len(self._histograms) > self.max_series:
            self._histograms.popitem(last=False)
        return total
