"""Metric series and samples in DuckDB, the newest samples cached as arrays (ADR 0009).

`series` is small and kept in memory too: ids are assigned on first write (so id order is
first-write order) and label matchers run in Python with `LabelMatcher.matches`, exactly as
in every other backend. `samples` holds values and explicit-bucket histograms. Array reads
(`select_values`, `select_histograms`) come from the `SampleCache` for the samples from its
horizon on and from DuckDB for older ones; a series is loaded into the cache on its first
read (new series start there empty), and inserts go to both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from meshscope.model.metrics import Labels, MetricPoint, MetricType
from meshscope.store.base import (
    HistogramColumns,
    LabelMatcher,
    MetricFamily,
    SampleColumns,
    Series,
)
from meshscope.store.duckdb.blobs import FLOAT
from meshscope.store.duckdb.database import Database, Txn
from meshscope.store.duckdb.metric_arrays import (
    histogram_groups,
    joined,
    merged_groups,
    value_runs,
)
from meshscope.store.duckdb.metric_rows import (
    SAMPLE_COLUMNS,
    Bounds,
    bounds_table,
    families_table,
    point_of,
    samples_table,
    series_from_rows,
    series_table,
)
from meshscope.store.duckdb.sample_cache import MAX_TIME, MIN_TIME, SampleCache
from meshscope.store.duckdb.sample_loader import load
from meshscope.store.duckdb.sample_rows import SeriesSamples

LATEST_FIRST_WINDOW_NS = 5 * 60 * 10**9
_LATEST_IDS = "_latest_series_ids"  # registered on the reading thread's own cursor
DEFAULT_SAMPLE_CACHE_BYTES = 256 * 2**20
_HISTOGRAM_COLUMNS = "bounds_id, counts, hist_sum, hist_count"


class DuckDBMetricStore:
    def __init__(self, db: Database, cache_bytes: int = DEFAULT_SAMPLE_CACHE_BYTES) -> None:
        """`cache_bytes`: the bound of the sample cache (0: no cache, every read scans)."""
        self._db = db
        self.cache = SampleCache(cache_bytes)
        rows = (
            db.read()
            .execute("SELECT series_id, name, labels FROM series ORDER BY series_id")
            .fetchall()
        )
        # Replaced, never mutated, so readers on other threads iterate a stable dict.
        self._ids: dict[tuple[str, Labels], int] = {
            (name, tuple((pair["name"], pair["value"]) for pair in labels)): series_id
            for series_id, name, labels in rows
        }
        families = (
            db.read().execute("SELECT name, type, help, unit FROM metric_families ORDER BY seq")
        ).fetchall()
        self._families: dict[str, MetricFamily] = {
            name: MetricFamily(name, MetricType(kind), help_text, unit)
            for name, kind, help_text, unit in families
        }
        stored = db.read().execute("SELECT bounds_id, bounds FROM histogram_bounds").fetchall()
        # Bucket bounds by id (ids are positions) and ids by bounds; replaced, never mutated.
        self._bounds: list[Bounds] = [()] * len(stored)
        for bounds_id, data in stored:
            self._bounds[bounds_id] = tuple(np.frombuffer(data, FLOAT).tolist())
        self._bounds_ids = {bounds: bounds_id for bounds_id, bounds in enumerate(self._bounds)}
        # `_ids` grouped by name, with label dicts for the matchers; rebuilt when `_ids` is
        # replaced (it is never mutated), which the first item tells.
        self._by_name: tuple[object, dict[str, dict[int, tuple[Labels, dict[str, str]]]]] = (
            None,
            {},
        )
        # Every series' newest sample (by time, then write order) and a lower bound of its
        # oldest sample's time, for `latest`: read once here, then kept by `insert` and
        # `expired` under the write lock (a reader's `get` sees the old or the new value).
        self._newest: dict[int, MetricPoint] = self._stored_newest()
        self._oldest: dict[int, int] = dict(
            db.read()
            .execute("SELECT series_id, min(time_ns) FROM samples GROUP BY series_id")
            .fetchall()
        )

    def write_points(self, points: Sequence[MetricPoint]) -> None:
        if points:
            with self._db.transaction() as txn:
                self.insert(txn, points)

    def insert(self, txn: Txn, points: Sequence[MetricPoint]) -> None:
        if not points:
            return
        known = self._ids
        new: dict[tuple[str, Labels], int] = {}
        next_id = len(known) + 1
        ids: list[int] = []
        for point in points:
            key = (point.name, point.labels)
            series_id = known.get(key) or new.get(key)
            if series_id is None:
                series_id = new[key] = next_id
                next_id += 1
            ids.append(series_id)
        cache = self.cache
        if new:
            txn.insert("series", series_table(new))
            self._ids = {**known, **new}
            txn.on_rollback.append(lambda: setattr(self, "_ids", known))
            if cache.limit:  # nothing in DuckDB yet: cached from the start
                created = list(new.values())
                cache.install({series_id: SeriesSamples() for series_id in created})
                txn.on_rollback.append(lambda: cache.forget(created))
        families = self._families
        fresh: dict[str, MetricFamily] = {}
        for point in points:
            if point.name not in families and point.name not in fresh:
                fresh[point.name] = MetricFamily(point.name, point.type, point.help, point.unit)
        if fresh:
            txn.insert("metric_families", families_table(len(families), fresh))
            self._families = {**families, **fresh}
            txn.on_rollback.append(lambda: setattr(self, "_families", families))
        self._note_bounds(txn, points)
        txn.insert("samples", samples_table(ids, points, self._families, self._bounds_ids))
        self._note_newest(txn, ids, points)
        if cache.limit:
            txn.on_rollback.append(cache.append(ids, points))
            cache.fit()

    def _note_newest(self, txn: Txn, ids: list[int], points: Sequence[MetricPoint]) -> None:
        """Points newer than (or as new as, written later than) their series' newest, or
        older than its oldest."""
        newest, oldest = self._newest, self._oldest
        replaced: dict[int, MetricPoint | None] = {}
        lowered: dict[int, int | None] = {}
        for series_id, point in zip(ids, points, strict=True):
            old = newest.get(series_id)
            if old is None or point.time_ns >= old.time_ns:
                replaced.setdefault(series_id, old)
                newest[series_id] = point
            first = oldest.get(series_id)
            if first is None or point.time_ns < first:
                lowered.setdefault(series_id, first)
                oldest[series_id] = point.time_ns

        def undo() -> None:
            for series_id, point in replaced.items():
                if point is None:
                    newest.pop(series_id, None)
                else:
                    newest[series_id] = point
            for series_id, first in lowered.items():
                if first is None:
                    oldest.pop(series_id, None)
                else:
                    oldest[series_id] = first

        txn.on_rollback.append(undo)

    def _note_bounds(self, txn: Txn, points: Sequence[MetricPoint]) -> None:
        """Give bucket bounds not seen before their ids (in `histogram_bounds`)."""
        known, listed = self._bounds_ids, self._bounds
        fresh: dict[Bounds, int] = {}
        for point in points:
            hist = point.histogram
            if hist is not None and hist.bounds not in known and hist.bounds not in fresh:
                fresh[hist.bounds] = len(listed) + len(fresh)
        if fresh:
            txn.insert("histogram_bounds", bounds_table(len(listed), list(fresh)))
            self._bounds_ids = {**known, **fresh}
            self._bounds = [*listed, *fresh]
            txn.on_rollback.append(lambda: setattr(self, "_bounds_ids", known))
            txn.on_rollback.append(lambda: setattr(self, "_bounds", listed))

    def expired(self, before_ns: int) -> None:
        """Samples older than `before_ns` were deleted from DuckDB: drop them here too."""
        with self._db.transaction():  # under the write lock, like every cache change
            self.cache.expire(before_ns)
            newest, oldest = self._newest, self._oldest
            for series_id in [i for i, point in newest.items() if point.time_ns < before_ns]:
                del newest[series_id]
                oldest.pop(series_id, None)
            for series_id in [i for i, first in oldest.items() if first < before_ns]:
                oldest[series_id] = before_ns  # a lower bound: its samples start later

    def _matching(self, name: str, matchers: Sequence[LabelMatcher]) -> dict[int, Labels]:
        ids = self._ids
        if self._by_name[0] is not ids:  # new series since the last call: index them again
            by_name: dict[str, dict[int, tuple[Labels, dict[str, str]]]] = {}
            for (series_name, labels), series_id in ids.items():
                by_name.setdefault(series_name, {})[series_id] = (labels, dict(labels))
            self._by_name = (ids, by_name)
        wanted: dict[int, Labels] = {}
        for series_id, (labels, values) in self._by_name[1].get(name, {}).items():
            if all(m.matches(values.get(m.name, "")) for m in matchers):
                wanted[series_id] = labels
        return wanted

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        wanted = self._matching(name, matchers)
        if not wanted:
            return []
        id_list = ", ".join(str(series_id) for series_id in sorted(wanted))
        rows = (
            self._db.read()
            .execute(
                f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE series_id IN ({id_list})"
                " AND time_ns >= ? AND time_ns <= ? ORDER BY series_id, time_ns, rowid",
                [start_ns, end_ns],
            )
            .fetchall()
        )
        return series_from_rows(self._family(name), wanted, rows, self._bounds)

    def warm_cache(self) -> None:
        """Load every series into the sample cache now (within its bound), so the first
        queries after a restart do not pay for it; for a background thread."""
        self._cached(sorted(self._ids.values()))

    def _cached(self, ids: list[int]) -> None:
        """Load the series of `ids` the cache has not got yet."""
        if self.cache.limit and self.cache.missing(ids):
            load(self._db, self.cache, ids, lambda: self._bounds)

    def _scan(
        self,
        ids: list[int],
        cached: Sequence[int],
        horizon: int,
        columns: str,
        where: str,
        start_ns: int,
        end_ns: int,
    ) -> tuple[list[int], pa.Table | None]:
        """The rows DuckDB must give: all of [start_ns, end_ns] for the series not cached,
        those before the horizon for the cached ones; in insertion order, no ORDER BY."""
        start, end = max(start_ns, MIN_TIME), min(end_ns, MAX_TIME)
        known = set(cached)
        scanned = ids if start < horizon else [i for i in ids if i not in known]
        if not scanned or start > end:
            return scanned, None
        if len(cached) == len(ids):
            end = min(end, horizon - 1)
        id_list = ", ".join(str(series_id) for series_id in scanned)
        query = (
            f"SELECT series_id, time_ns, {columns} FROM samples"
            f" WHERE series_id IN ({id_list}) AND time_ns >= ? AND time_ns <= ? AND {where}"
        )
        table = self._db.read().sql(query, params=[start, end]).to_arrow_table()
        if cached and end >= horizon:  # drop what the cache has
            mask = np.isin(table.column("series_id").to_numpy(), np.array(cached, np.int64))
            mask &= table.column("time_ns").to_numpy() >= horizon
            if mask.any():
                table = table.filter(pa.array(~mask))
        return scanned, table

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        wanted = self._matching(name, matchers)
        if not wanted:
            return []
        ids = sorted(wanted)
        self._cached(ids)
        horizon, cached = self.cache.values(ids, start_ns, end_ns)
        scanned, table = self._scan(
            ids, list(cached), horizon, "value", "counts IS NULL", start_ns, end_ns
        )
        older = {} if table is None else value_runs(table, scanned)
        out: list[SampleColumns] = []
        for series_id in ids:
            parts = [p for p in (older.get(series_id), cached.get(series_id)) if p is not None]
            if parts:
                times, values = joined(parts)
                out.append(SampleColumns(wanted[series_id], times, values))
        return out

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        wanted = self._matching(name, matchers)
        if not wanted:
            return []
        ids = sorted(wanted)
        self._cached(ids)
        horizon, cached = self.cache.histograms(ids, start_ns, end_ns)
        scanned, table = self._scan(
            ids, list(cached), horizon, _HISTOGRAM_COLUMNS, "counts IS NOT NULL", start_ns, end_ns
        )
        older = {} if table is None else histogram_groups(table, scanned, self._bounds)
        out: list[HistogramColumns] = []
        for series_id in ids:
            groups = merged_groups(older.get(series_id, []), cached.get(series_id, []))
            for bounds, (times, counts, sums, totals) in groups:
                out.append(HistogramColumns(wanted[series_id], bounds, times, counts, sums, totals))
        return out

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        return self.latest_of([name], matchers, at_ns, lookback_ns)[name]

    def latest_of(
        self, names: Sequence[str], matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> dict[str, list[Series]]:
        """Each matching series' newest sample in [at_ns - lookback_ns, at_ns], per name. From
        `_newest` (every series' newest sample, kept at insert) for the series whose newest
        sample is not after `at_ns`: at the end of a range reaching the present, all of them,
        and no DuckDB query; none for the series whose oldest sample is after `at_ns`; from
        DuckDB (`_newest_rows`, one query for every name) for the others."""
        newest, oldest = self._newest, self._oldest
        low = at_ns - lookback_ns
        found: dict[str, list[Series]] = {}
        older: dict[int, tuple[str, Labels]] = {}
        for name in dict.fromkeys(names):
            wanted = self._matching(name, matchers)
            out = found[name] = []
            for series_id in sorted(wanted):
                point = newest.get(series_id)
                if point is None:
                    continue  # no sample stored
                if point.time_ns > at_ns:
                    if oldest.get(series_id, at_ns) <= at_ns:  # else: born after at_ns
                        older[series_id] = (name, wanted[series_id])
                elif point.time_ns >= low:
                    out.append(Series(name, wanted[series_id], [point]))
        if older:
            for row in self._newest_rows(sorted(older), at_ns, lookback_ns):
                name, labels = older[row[0]]
                point = point_of(self._family(name), labels, row, self._bounds)
                found[name].append(Series(name, labels, [point]))
            ids = self._ids  # in series id order (first-write order), as from DuckDB
            for series in found.values():
                series.sort(key=lambda one: ids[(one.name, one.labels)])
        return found

    def _newest_rows(self, ids: list[int], at_ns: int, lookback_ns: int) -> list[Any]:
        """The newest row in [at_ns - lookback_ns, at_ns] of each series of `ids` that has
        one, by series id: searched backwards from `at_ns` in growing windows (5 min, then 8x
        wider each time) for the series not found yet: live series are flushed every few
        seconds, so the first window, which the `time_ns` zonemaps narrow to the newest row
        groups, usually finds them all, and a day-long lookback costs about what a 5-minute
        one does. The search stops at the oldest sample stored (`min(time_ns)` comes from the
        statistics, not a scan), so a lookup before all data, such as the baseline of a range
        starting there, costs nothing."""
        cursor = self._db.read()
        (oldest,) = cursor.execute("SELECT min(time_ns) FROM samples").fetchall()
        if oldest[0] is None:
            return []
        low = max(at_ns - lookback_ns, oldest[0])
        high = at_ns
        window = LATEST_FIRST_WINDOW_NS
        remaining = ids
        rows: list[Any] = []
        while remaining and high >= low:
            start = max(low, high - window)
            # The newest row of each series first (by rowid: cheap columns only), then only
            # those rows in full; fetching histograms of every row in the window costs 3x.
            # The ids as a joined Arrow column: an IN list of hundreds of literals filters
            # the window's rows 2-3x slower.
            cursor.register(_LATEST_IDS, pa.table({"id": pa.array(remaining, pa.uint32())}))
            try:
                found = cursor.execute(
                    f"SELECT {SAMPLE_COLUMNS} FROM samples SEMI JOIN ("
                    "   SELECT max_by(rowid, (time_ns, rowid)) AS newest FROM samples"
                    f"  SEMI JOIN {_LATEST_IDS} ON series_id = id"
                    "   WHERE time_ns >= $start AND time_ns <= $high GROUP BY series_id"
                    ") ON rowid = newest WHERE time_ns >= $start AND time_ns <= $high",
                    {"start": start, "high": high},
                ).fetchall()
            finally:
                cursor.unregister(_LATEST_IDS)
            rows += found
            seen = {row[0] for row in found}
            remaining = [series_id for series_id in remaining if series_id not in seen]
            high = start - 1
            window *= 8
        rows.sort(key=lambda row: row[0])
        return rows

    def _stored_newest(self) -> dict[int, MetricPoint]:
        """Every series' newest stored sample, found for all series at once (at open:
        `_newest` starts from these)."""
        (row,) = self._db.read().execute("SELECT max(time_ns) FROM samples").fetchall()
        if row[0] is None:
            return {}
        keys = {series_id: key for key, series_id in self._ids.items()}
        newest: dict[int, MetricPoint] = {}
        for found in self._newest_rows(sorted(keys), row[0], row[0]):
            name, labels = keys[found[0]]
            newest[found[0]] = point_of(self._family(name), labels, found, self._bounds)
        return newest

    def _family(self, name: str) -> MetricFamily:
        """`name`'s family (rows migrated from files older than `metric_families` carry their
        own metadata, so the fallback is never used for them)."""
        return self._families.get(name) or MetricFamily(name, MetricType.UNKNOWN)

    def families(self) -> list[MetricFamily]:
        return list(self._families.values())
