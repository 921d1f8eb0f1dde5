"""The newest samples of each series as arrays in memory, for DuckDBMetricStore (ADR 0009).

Like Prometheus's head block: reads of the cached part cost a binary search and a view
instead of a DuckDB scan and a regrouping of rows by series. The cache holds, for every
series it has *loaded*, all samples DuckDB holds with time >= `horizon`, float samples and
histograms (per bounds) as growable arrays sorted by time (equal times in insertion order).

Every change happens under the database's write lock (inside a write transaction: inserts,
loads, expiry), so changes never race each other; readers take views under `_lock`, so they
see whole batches. A view stays valid forever: arrays are only written beyond the size any
reader saw, or replaced. Bytes are counted by capacity; beyond `limit` the horizon moves up
(`fit`), dropping the oldest samples of every series: those are read from DuckDB again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from meshscope.model.metrics import MetricPoint

Array = npt.NDArray[Any]
Columns = tuple[Array, ...]  # time_ns first, then payload columns of the same length
Bounds = tuple[float, ...]
MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1
GROWTH = 4  # capacity grows by 1/GROWTH of the size: at most 25% slack
FIT_TO = 0.75  # `fit` frees down to this share of the limit


class Rows:
    """Columns whose first `size` rows are the samples; the rest is room for appends."""

    __slots__ = ("columns", "size")

    def __init__(self, columns: Columns, size: int) -> None:
        self.columns = columns
        self.size = size

    @property
    def times(self) -> Array:
        return self.columns[0][: self.size]

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for column in self.columns)

    def added(self, new: Columns) -> Rows:
        """These rows and `new` (sorted by time among themselves). In place, into the room
        after `size`, when `new` starts no earlier than the last row; merged otherwise."""
        size, count = self.size, len(new[0])
        if size and new[0][0] < self.columns[0][size - 1]:  # late samples
            merged = [
                np.concatenate((old[:size], more))
                for old, more in zip(self.columns, new, strict=True)
            ]
            order = np.argsort(merged[0], kind="stable")  # equal times: older rows first
            return Rows(tuple(column[order] for column in merged), size + count)
        columns = self.columns
        if size + count > len(columns[0]):
            capacity = max(size + count, size + size // GROWTH, 8)
            columns = tuple(_grown(column, size, capacity) for column in columns)
        for column, more in zip(columns, new, strict=True):
            column[size : size + count] = more
        return Rows(columns, size + count)

    def since(self, start_ns: int) -> Rows:
        """A compact copy of the rows from `start_ns` on."""
        low = int(np.searchsorted(self.times, start_ns, "left"))
        return Rows(
            tuple(column[low : self.size].copy() for column in self.columns), self.size - low
        )

    def window(self, start_ns: int, end_ns: int) -> Columns | None:
        times = self.times
        low = int(np.searchsorted(times, start_ns, "left"))
        high = int(np.searchsorted(times, end_ns, "right"))
        if high <= low:
            return None
        return tuple(_frozen(column[low:high]) for column in self.columns)


class SeriesSamples:
    """One series' cached samples: floats (time, value) and histograms per bounds (time,
    counts matrix, sum, count), bounds in order of first appearance."""

    __slots__ = ("floats", "histograms")

    def __init__(self, floats: Rows | None = None, histograms: dict[Bounds, Rows] | None = None):
        self.floats = floats
        self.histograms = histograms or {}

    def all_rows(self) -> Iterator[Rows]:
        if self.floats is not None:
            yield self.floats
        yield from self.histograms.values()

    @property
    def nbytes(self) -> int:
        return sum(rows.nbytes for rows in self.all_rows())

    def since(self, start_ns: int) -> SeriesSamples:
        floats = None if self.floats is None else self.floats.since(start_ns)
        return SeriesSamples(floats, {b: r.since(start_ns) for b, r in self.histograms.items()})


class SampleCache:
    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 0:
            raise ValueError(f"sample cache limit must be >= 0 bytes, not {limit_bytes}")
        self.limit = limit_bytes
        self.horizon = MIN_TIME
        self._entries: dict[int, SeriesSamples] = {}
        self._nbytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def missing(self, ids: Sequence[int]) -> list[int]:
        entries = self._entries
        return [series_id for series_id in ids if series_id not in entries]

    def _put(self, series_id: int, entry: SeriesSamples | None) -> None:
        old = self._entries.get(series_id)
        self._nbytes -= 0 if old is None else old.nbytes
        if entry is None:
            self._entries.pop(series_id, None)
        else:
            self._entries[series_id] = entry
            self._nbytes += entry.nbytes

    def install(self, loaded: dict[int, SeriesSamples]) -> None:
        """Series read from DuckDB (all their samples from `horizon` on), or new ones."""
        with self._lock:
            for series_id, entry in loaded.items():
                self._put(series_id, entry)

    def empty(self, ids: Sequence[int]) -> dict[int, SeriesSamples]:
        return {series_id: SeriesSamples() for series_id in ids}

    def forget(self, ids: Sequence[int]) -> None:
        with self._lock:
            for series_id in ids:
                self._put(series_id, None)

    def append(self, ids: Sequence[int], points: Sequence[MetricPoint]) -> Callable[[], None]:
        """Add the samples of loaded series (from `horizon` on); returns the undo."""
        count = len(points)
        id_array = np.fromiter(ids, np.int64, count)
        times = np.fromiter((p.time_ns for p in points), np.int64, count)
        values = np.fromiter((p.value for p in points), np.float64, count)
        is_histogram = np.fromiter((p.histogram is not None for p in points), np.bool_, count)
        order = np.lexsort((times, id_array))  # by series, then time, then insertion
        if times.min() < self.horizon:
            order = order[times[order] >= self.horizon]
        sorted_ids = id_array[order]
        cuts = (np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1).tolist()
        starts, ends = [0, *cuts], [*cuts, len(order)]
        any_histogram = bool(is_histogram.any())
        previous: dict[int, SeriesSamples] = {}
        with self._lock:
            for low, high in zip(starts, ends, strict=True):
                if high <= low:
                    continue
                series_id = int(sorted_ids[low])
                entry = self._entries.get(series_id)
                if entry is None:  # not loaded: DuckDB only
                    continue
                rows = order[low:high]
                previous.setdefault(series_id, entry)
                if not any_histogram:
                    self._put(series_id, _with_floats(entry, times[rows], values[rows]))
                else:
                    self._put(
                        series_id, _with_points(entry, rows, times, values, is_histogram, points)
                    )

        def undo() -> None:
            with self._lock:
                for series_id, entry in previous.items():
                    self._put(series_id, entry.since(MIN_TIME))  # a copy: views stay intact

        return undo

    def values(
        self, ids: Sequence[int], start_ns: int, end_ns: int
    ) -> tuple[int, dict[int, Columns | None]]:
        """The horizon, and for each loaded series of `ids` its (times, values) in
        [max(start_ns, horizon), end_ns] (None: none there)."""
        with self._lock:
            start = max(start_ns, self.horizon)
            out: dict[int, Columns | None] = {}
            for series_id in ids:
                entry = self._entries.get(series_id)
                if entry is not None:
                    found = None if entry.floats is None else entry.floats.window(start, end_ns)
                    out[series_id] = found
            return self.horizon, out

    def histograms(
        self, ids: Sequence[int], start_ns: int, end_ns: int
    ) -> tuple[int, dict[int, list[tuple[Bounds, Columns]]]]:
        """As `values`, for histograms: (bounds, (times, counts, sums, totals)) groups."""
        with self._lock:
            start = max(start_ns, self.horizon)
            out: dict[int, list[tuple[Bounds, Columns]]] = {}
            for series_id in ids:
                entry = self._entries.get(series_id)
                if entry is not None:
                    groups = out[series_id] = []
                    for bounds, rows in entry.histograms.items():
                        found = rows.window(start, end_ns)
                        if found is not None:
                            groups.append((bounds, found))
            return self.horizon, out

    def expire(self, before_ns: int) -> None:
        """DuckDB dropped the samples older than `before_ns`."""
        self._cut(before_ns)

    def raise_horizon(self, horizon: int) -> None:
        """Keep only samples from `horizon` on (older ones are read from DuckDB)."""
        if horizon > self.horizon:
            self.horizon = horizon
            self._cut(horizon)

    def _cut(self, before_ns: int) -> None:
        with self._lock:
            for series_id, entry in list(self._entries.items()):
                if any(rows.size and rows.columns[0][0] < before_ns for rows in entry.all_rows()):
                    self._put(series_id, entry.since(before_ns))

    def fit(self) -> None:
        """Over the limit: raise the horizon until the newest samples take FIT_TO of it."""
        while self._nbytes > self.limit:
            horizon = _horizon_for(list(self._entries.values()), int(self.limit * FIT_TO))
            if horizon <= self.horizon:
                horizon = self.horizon + 1
            self.raise_horizon(horizon)


def _horizon_for(entries: list[SeriesSamples], budget: int) -> int:
    """The oldest time from which the samples of `entries` take at most `budget` bytes
    (estimated from every k-th sample, k chosen to look at ~200k)."""
    rows = [r for entry in entries for r in entry.all_rows() if r.size]
    total = sum(r.size for r in rows)
    if not total:
        return MIN_TIME
    stride = max(1, total // 200_000)
    times = np.concatenate([r.times[::stride] for r in rows])
    weights = np.concatenate(
        [np.full(len(r.times[::stride]), r.nbytes / r.size * stride) for r in rows]
    )
    order = np.argsort(times)[::-1]  # newest first
    used = np.cumsum(weights[order])
    over = int(np.searchsorted(used, budget, "right"))
    if over >= len(order):
        return MIN_TIME
    return int(times[order[over]]) + 1


def _with_floats(entry: SeriesSamples, times: Array, values: Array) -> SeriesSamples:
    floats = Rows((times, values), len(times)) if entry.floats is None else None
    if floats is None:
        assert entry.floats is not None
        floats = entry.floats.added((times, values))
    return SeriesSamples(floats, entry.histograms)


def _with_points(
    entry: SeriesSamples,
    rows: Array,
    times: Array,
    values: Array,
    is_histogram: Array,
    points: Sequence[MetricPoint],
) -> SeriesSamples:
    plain = rows[~is_histogram[rows]]
    if len(plain):
        entry = _with_floats(entry, times[plain], values[plain])
    by_bounds: dict[Bounds, list[int]] = {}
    for row in rows[is_histogram[rows]].tolist():
        histogram = points[row].histogram
        assert histogram is not None
        by_bounds.setdefault(histogram.bounds, []).append(row)
    if not by_bounds:
        return entry
    histograms = dict(entry.histograms)
    for bounds, group in by_bounds.items():
        hists = [points[row].histogram for row in group]
        new = (
            times[group],
            np.array([h.counts for h in hists if h], np.uint64).reshape(len(group), -1),
            np.array([h.sum for h in hists if h], np.float64),
            np.array([h.count for h in hists if h], np.uint64),
        )
        old = histograms.get(bounds)
        histograms[bounds] = Rows(new, len(group)) if old is None else old.added(new)
    return SeriesSamples(entry.floats, histograms)


def _grown(column: Array, size: int, capacity: int) -> Array:
    grown = np.empty((capacity, *column.shape[1:]), column.dtype)
    grown[:size] = column[:size]
    return grown


def _frozen(array: Array) -> Array:
    array.flags.writeable = False
    return array
