"""Delta temporality -> cumulative, as Prometheus needs counters and histograms to be.

OTLP senders may report sums and histograms as deltas (the .NET and JS SDKs can, and so can
the Collector's `cumulativetodelta` processor). The metrics decoder is otherwise a pure
function, so the running totals live in a `DeltaToCumulative` the CALLER owns: create one per
receiver (process), pass it to every `decode_metrics_*` call, and keep it alive. Without one,
delta points are rejected as OTLP partial success with a message saying so.

Keys are (metric name, labels); totals for at most `max_series` series are kept, the least
recently updated ones are forgotten beyond that (they then restart from their next delta,
which Prometheus' `rate()` reads as a counter reset). Not thread-safe: one owner at a time.

A request's deltas count only once it is stored: its decode runs inside `recording()`, and
when the request is then refused (overloaded, store unavailable, a limit) `undo` takes its
deltas out again, so a client's retry does not count them twice. Requests decoded in the
meantime keep what they saw: a point stored then may include the refused request's delta
(as if it had come), the totals after it do not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from meshscope.model.metrics import Histogram, Labels

SeriesKey = tuple[str, Labels]


@dataclass(frozen=True, slots=True)
class Change:
    """One delta added to a series' total; `new`: the series had no total before."""

    key: SeriesKey
    delta: float | Histogram
    new: bool


class DeltaToCumulative:
    """Running totals per series, turning delta sums and histograms into cumulative ones."""

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._sums: OrderedDict[SeriesKey, float] = OrderedDict()
        self._histograms: OrderedDict[SeriesKey, Histogram] = OrderedDict()
        self._journal: list[Change] | None = None

    def __len__(self) -> int:
        return len(self._sums) + len(self._histograms)

    @contextmanager
    def recording(self) -> Iterator[list[Change]]:
        """The changes made inside the block, for `undo`."""
        changes: list[Change] = []
        self._journal = changes
        try:
            yield changes
        finally:
            self._journal = None

    def undo(self, changes: Sequence[Change]) -> None:
        """Take `changes` (from `recording`) out of the totals: their request was not stored.
        A series the changes started is forgotten if nothing else was added to it since."""
        for change in reversed(changes):
            if isinstance(change.delta, Histogram):
                self._undo_histogram(change.key, change.delta, change.new)
            elif change.key in self._sums:
                total = self._sums[change.key] - change.delta
                if change.new and total == 0:
                    del self._sums[change.key]
                else:
                    self._sums[change.key] = total

    def _undo_histogram(self, key: SeriesKey, delta: Histogram, new: bool) -> None:
        total = self._histograms.get(key)
        if total is None or total.bounds != delta.bounds:
            return  # restarted since with other bounds: nothing of `delta` is left in it
        less = Histogram(
            bounds=delta.bounds,
            counts=tuple(a - b for a, b in zip(total.counts, delta.counts, strict=True)),
            sum=total.sum - delta.sum,
            count=total.count - delta.count,
        )
        if new and less.count == 0 and not any(less.counts):
            del self._histograms[key]
        else:
            self._histograms[key] = less

    def add_sum(self, key: SeriesKey, delta: float) -> float:
        """Add `delta` to the series' total and return the new cumulative value."""
        if self._journal is not None:
            self._journal.append(Change(key, delta, key not in self._sums))
        total = self._sums.pop(key, 0.0) + delta
        self._sums[key] = total
        if len(self._sums) > self.max_series:
            self._sums.popitem(last=False)
        return total

    def add_histogram(
        self, key: SeriesKey, delta: Histogram, fits: Callable[[Histogram], bool] | None = None
    ) -> Histogram | None:
        """Add a delta histogram to the series' total; a change of bounds restarts the total.
        None, and nothing changed, when the new total does not `fits`."""
        previous = self._histograms.get(key)
        if previous is None or previous.bounds != delta.bounds:
            total = delta
        else:
            total = Histogram(
                bounds=delta.bounds,
                counts=tuple(a + b for a, b in zip(previous.counts, delta.counts, strict=True)),
                sum=previous.sum + delta.sum,
                count=previous.count + delta.count,
            )
        if fits is not None and not fits(total):
            return None
        if self._journal is not None:
            self._journal.append(Change(key, delta, previous is None))
        self._histograms.pop(key, None)
        self._histograms[key] = total
        if len(self._histograms) > self.max_series:
            self._histograms.popitem(last=False)
        return total
