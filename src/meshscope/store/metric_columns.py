"""Metric samples as arrays: built once per series from `MetricPoint` lists (the memory
store's cache) and cut to a time window with a binary search.

A `PointColumns` covers the first `covered` points of a series' list; points appended later
(in time order) extend it without converting the older ones again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from meshscope.model.metrics import Labels, MetricPoint
from meshscope.store.base import HistogramColumns, SampleColumns

Bounds = tuple[float, ...]


A = TypeVar("A", bound="np.ndarray[Any, Any]")


def frozen(array: A) -> A:
    """`array`, made read-only (the store's arrays are shared between readers)."""
    array.flags.writeable = False
    return array


@dataclass(slots=True)
class _HistogramArrays:
    time_ns: npt.NDArray[np.int64]
    counts: npt.NDArray[np.uint64]
    sum: npt.NDArray[np.float64]
    count: npt.NDArray[np.uint64]


@dataclass(slots=True)
class PointColumns:
    covered: int = 0
    time_ns: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))
    value: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0, np.float64))
    histograms: dict[Bounds, _HistogramArrays] = field(default_factory=dict)

    def extend(self, points: Sequence[MetricPoint]) -> None:
        """Add `points[self.covered:]`, which must not be older than the covered ones."""
        new = list(points[self.covered :])
        if not new:
            return
        self.covered += len(new)
        plain = [p for p in new if p.histogram is None]
        if plain:
            times = np.fromiter((p.time_ns for p in plain), np.int64, len(plain))
            values = np.fromiter((p.value for p in plain), np.float64, len(plain))
            self.time_ns = frozen(np.concatenate((self.time_ns, times)))
            self.value = frozen(np.concatenate((self.value, values)))
        if len(plain) == len(new):
            return
        by_bounds: dict[Bounds, list[MetricPoint]] = {}
        for p in new:
            if p.histogram is not None:
                by_bounds.setdefault(p.histogram.bounds, []).append(p)
        for bounds, group in by_bounds.items():
            hists = [p.histogram for p in group if p.histogram is not None]
            arrays = _HistogramArrays(
                np.fromiter((p.time_ns for p in group), np.int64, len(group)),
                np.array([h.counts for h in hists], np.uint64).reshape(len(group), -1),
                np.fromiter((h.sum for h in hists), np.float64, len(group)),
                np.fromiter((h.count for h in hists), np.uint64, len(group)),
            )
            old = self.histograms.get(bounds)
            if old is not None:
                arrays = _HistogramArrays(
                    np.concatenate((old.time_ns, arrays.time_ns)),
                    np.concatenate((old.counts, arrays.counts)),
                    np.concatenate((old.sum, arrays.sum)),
                    np.concatenate((old.count, arrays.count)),
                )
            for array in (arrays.time_ns, arrays.counts, arrays.sum, arrays.count):
                frozen(array)
            self.histograms[bounds] = arrays

    def values_in(self, labels: Labels, start_ns: int, end_ns: int) -> SampleColumns | None:
        low, high = _window(self.time_ns, start_ns, end_ns)
        if high <= low:
            return None
        return SampleColumns(labels, self.time_ns[low:high], self.value[low:high])

    def histograms_in(self, labels: Labels, start_ns: int, end_ns: int) -> list[HistogramColumns]:
        out: list[HistogramColumns] = []
        for bounds, h in self.histograms.items():
            low, high = _window(h.time_ns, start_ns, end_ns)
            if high > low:
                out.append(
                    HistogramColumns(
                        labels,
                        bounds,
                        h.time_ns[low:high],
                        h.counts[low:high],
                        h.sum[low:high],
                        h.count[low:high],
                    )
                )
        # Groups in order of their first point in the window.
        out.sort(key=lambda group: int(group.time_ns[0]))
        return out


def _window(times: npt.NDArray[np.int64], start_ns: int, end_ns: int) -> tuple[int, int]:
    start_ns, end_ns = max(start_ns, -(2**63)), min(end_ns, 2**63 - 1)
    low = int(np.searchsorted(times, start_ns, "left"))
    high = int(np.searchsorted(times, end_ns, "right"))
    return low, high
