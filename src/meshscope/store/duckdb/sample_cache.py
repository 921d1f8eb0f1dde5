"""The newest samples of each series as arrays in memory, for DuckDBMetricStore (ADR 0009).

Like Prometheus's head block: reads of the cached part cost a binary search and a view
instead of a DuckDB scan and a regrouping of rows by series. The cache holds, for every
series it has *loaded*, all samples DuckDB holds with time >= `horizon`, float samples and
histograms (per bounds) as growable arrays sorted by time (equal times in insertion order).

Every change happens under the database's write lock (inside a write transaction: inserts,
loads, expiry), so changes never interleave and an insert's undo restores exactly what it
changed; readers take views under `_lock`, so they see whole batches. Bytes are counted by
capacity; beyond `limit` the horizon moves up (`fit`), dropping the oldest samples of every
series: reads before the horizon go to DuckDB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from meshscope.model.metrics import Histogram, MetricPoint
from meshscope.store.duckdb.sample_rows import Array, Bounds, Columns, Rows, SeriesSamples

MIN_TIME = -(2**63)
MAX_TIME = 2**63 - 1
FIT_TO = 0.75  # `fit` frees down to this share of the limit
Change = tuple[Rows, Columns, int] | tuple[SeriesSamples, Bounds | None]
"""What to undo: Rows back to (columns, size), or rows new in an entry (None: floats)."""


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

    def install(self, loaded: dict[int, SeriesSamples]) -> None:
        """Series read from DuckDB (all their samples from `horizon` on), or new ones."""
        with self._lock:
            for series_id, entry in loaded.items():
                self._put(series_id, entry)

    def forget(self, ids: Sequence[int]) -> None:
        with self._lock:
            for series_id in ids:
                self._put(series_id, None)

    def _put(self, series_id: int, entry: SeriesSamples | None) -> None:
        old = self._entries.pop(series_id, None)
        self._nbytes -= 0 if old is None else old.nbytes
        if entry is not None:
            self._entries[series_id] = entry
            self._nbytes += entry.nbytes

    def append(self, ids: Sequence[int], points: Sequence[MetricPoint]) -> Callable[[], None]:
        """Add the samples of loaded series (from `horizon` on); returns the undo."""
        log: list[Change] = []
        histograms = [row for row, p in enumerate(points) if p.histogram is not None]
        with self._lock:
            if len(histograms) < len(points):
                self._add_floats(ids, points, histograms, log)
            if histograms:
                self._add_histograms(ids, points, histograms, log)

        def undo() -> None:
            with self._lock:
                for change in reversed(log):
                    if len(change) == 3:
                        self._nbytes += change[0].restore(change[1], change[2])
                    else:
                        self._nbytes += _drop(change[0], change[1])

        return undo

    def _add_floats(
        self, ids: Sequence[int], points: Sequence[MetricPoint], skip: list[int], log: list[Change]
    ) -> None:
        count = len(points)
        series = np.fromiter(ids, np.int64, count)
        times = np.fromiter((p.time_ns for p in points), np.int64, count)
        values = np.fromiter((p.value for p in points), np.float64, count)
        keep = times >= self.horizon
        keep[skip] = False
        if not keep.all():
            kept = np.flatnonzero(keep)
            series, times, values = series[kept], times[kept], values[kept]
        order = np.lexsort((times, series))  # by series, then time, then insertion
        series, times, values = series[order], times[order], values[order]
        cuts = (np.flatnonzero(series[1:] != series[:-1]) + 1).tolist()
        starts = [0, *cuts]
        entries = self._entries
        if len(starts) == len(series):  # one sample per series (a scrape): no slices
            for series_id, low, time_ns, value in zip(
                series.tolist(), starts, times.tolist(), values.tolist(), strict=True
            ):
                entry = entries.get(series_id)
                rows = None if entry is None else entry.floats
                if rows is not None:
                    columns, size = rows.columns, rows.size
                    grown = rows.add_float(time_ns, value)
                    if grown is not None:
                        log.append((rows, columns, size))
                        self._nbytes += grown
                        continue
                if entry is not None:
                    self._add(entry, None, (times[low : low + 1], values[low : low + 1]), log)
            return
        for series_id, low, high in zip(
            series[starts].tolist(), starts, [*cuts, len(series)], strict=True
        ):
            entry = entries.get(series_id)
            if entry is not None:
                self._add(entry, None, (times[low:high], values[low:high]), log)

    def _add_histograms(
        self, ids: Sequence[int], points: Sequence[MetricPoint], rows: list[int], log: list[Change]
    ) -> None:
        hists: list[Histogram] = [points[row].histogram for row in rows]  # type: ignore[misc]
        times = np.fromiter((points[row].time_ns for row in rows), np.int64, len(rows))
        sums = np.fromiter((h.sum for h in hists), np.float64, len(rows))
        totals = np.fromiter((h.count for h in hists), np.uint64, len(rows))
        widths = {len(h.counts) for h in hists}
        matrix = np.array([h.counts for h in hists], np.uint64) if len(widths) == 1 else None
        groups: dict[tuple[int, Bounds], list[int]] = {}
        horizon = self.horizon
        time_list, sum_list, total_list = times.tolist(), sums.tolist(), totals.tolist()
        for position, row in enumerate(rows):
            if time_list[position] >= horizon:
                groups.setdefault((ids[row], hists[position].bounds), []).append(position)
        for (series_id, bounds), positions in groups.items():
            entry = self._entries.get(series_id)
            if entry is None:
                continue
            cached = entry.histograms.get(bounds)
            if len(positions) == 1 and cached is not None and matrix is not None:
                at = positions[0]
                columns, size = cached.columns, cached.size
                grown = cached.add_one(time_list[at], matrix[at], sum_list[at], total_list[at])
                if grown is not None:
                    log.append((cached, columns, size))
                    self._nbytes += grown
                    continue
            index: slice | Array = slice(positions[0], positions[0] + 1)
            if len(positions) > 1:
                index = np.array(positions)
                index = index[np.argsort(times[index], kind="stable")]
            if matrix is not None:
                counts = matrix[index]
            else:
                chosen = [hists[p].counts for p in np.arange(len(rows))[index].tolist()]
                counts = np.array(chosen, np.uint64).reshape(len(chosen), -1)
            self._add(entry, bounds, (times[index], counts, sums[index], totals[index]), log)

    def _add(
        self, entry: SeriesSamples, bounds: Bounds | None, new: Columns, log: list[Change]
    ) -> None:
        rows = entry.floats if bounds is None else entry.histograms.get(bounds)
        if rows is None:
            rows = Rows.copy_of(new)
            if bounds is None:
                entry.floats = rows
            else:
                entry.histograms[bounds] = rows
            log.append((entry, bounds))
            self._nbytes += rows.nbytes
        else:
            log.append((rows, rows.columns, rows.size))
            self._nbytes += rows.add(new)

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
        """In place (an insert's undo may still refer to these Rows: restoring older rows
        below the horizon is harmless, reads start at the horizon)."""
        with self._lock:
            for entry in self._entries.values():
                for rows in entry.all_rows():
                    if rows.size and rows.columns[0][0] < before_ns:
                        self._nbytes += rows.drop_before(before_ns)

    def fit(self) -> None:
        """Over the limit: raise the horizon until the newest samples take FIT_TO of it."""
        while self._nbytes > self.limit:
            horizon = _horizon_for(list(self._entries.values()), int(self.limit * FIT_TO))
            self.raise_horizon(max(horizon, self.horizon + 1))


def _drop(entry: SeriesSamples, bounds: Bounds | None) -> int:
    rows = entry.floats if bounds is None else entry.histograms.pop(bounds)
    if bounds is None:
        entry.floats = None
    return -rows.nbytes if rows is not None else 0


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
