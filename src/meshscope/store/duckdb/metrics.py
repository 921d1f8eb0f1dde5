"""Metric series and samples in DuckDB.

`series` is small and kept in memory too: ids are assigned on first write (so id order is
first-write order) and label matchers run in Python with `LabelMatcher.matches`, exactly as
in every other backend. `samples` holds values and explicit-bucket histograms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType
from meshscope.store.base import (
    HistogramColumns,
    LabelMatcher,
    MetricFamily,
    SampleColumns,
    Series,
)
from meshscope.store.duckdb.database import Database, Txn

_LABELS = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
LATEST_FIRST_WINDOW_NS = 5 * 60 * 10**9
_SAMPLE_COLUMNS = (
    "series_id, time_ns, value, type, help, unit, bounds, counts, hist_sum, hist_count"
)


class DuckDBMetricStore:
    def __init__(self, db: Database) -> None:
        self._db = db
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
        # `_ids` grouped by name, with label dicts for the matchers; rebuilt when `_ids` is
        # replaced (it is never mutated), which the first item tells.
        self._by_name: tuple[object, dict[str, dict[int, tuple[Labels, dict[str, str]]]]] = (
            None,
            {},
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
        if new:
            txn.insert("series", _series_table(new))
            self._ids = {**known, **new}
            txn.on_rollback.append(lambda: setattr(self, "_ids", known))
        families = self._families
        fresh: dict[str, MetricFamily] = {}
        for point in points:
            if point.name not in families and point.name not in fresh:
                fresh[point.name] = MetricFamily(point.name, point.type, point.help, point.unit)
        if fresh:
            txn.insert("metric_families", _families_table(len(families), fresh))
            self._families = {**families, **fresh}
            txn.on_rollback.append(lambda: setattr(self, "_families", families))
        txn.insert("samples", _samples_table(ids, points))

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
                f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE series_id IN ({id_list})"
                " AND time_ns >= ? AND time_ns <= ? ORDER BY series_id, time_ns, rowid",
                [start_ns, end_ns],
            )
            .fetchall()
        )
        return _series_from_rows(name, wanted, rows)

    def _columns(
        self,
        name: str,
        matchers: Sequence[LabelMatcher],
        columns: str,
        where: str,
        start_ns: int,
        end_ns: int,
    ) -> tuple[dict[int, Labels], pa.Table | None]:
        """The rows of the matching series in [start_ns, end_ns], in insertion order (DuckDB
        keeps it for a query without ORDER BY: sorting 5M rows there costs 4x the scan)."""
        wanted = self._matching(name, matchers)
        if not wanted:
            return wanted, None
        id_list = ", ".join(str(series_id) for series_id in sorted(wanted))
        window = [max(start_ns, -(2**63)), min(end_ns, 2**63 - 1)]
        result = self._db.read().sql(
            f"SELECT series_id, time_ns, {columns} FROM samples"
            f" WHERE series_id IN ({id_list}) AND time_ns >= ? AND time_ns <= ? AND {where}",
            params=window,
        )
        return wanted, result.to_arrow_table()

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        """One query for all series, split at series boundaries (no per-row Python)."""
        wanted, table = self._columns(name, matchers, "value", "bounds IS NULL", start_ns, end_ns)
        if table is None or table.num_rows == 0:
            return []
        ids, times, values = (_numpy(table, column) for column in ("series_id", "time_ns", "value"))
        order, runs, times = _grouped(ids, times, list(wanted))
        values = values if order is None else values[order]
        _frozen(times)
        _frozen(values)
        return [
            SampleColumns(wanted[series_id], times[low:high], values[low:high])
            for series_id, low, high in runs
        ]

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        columns = "bounds, counts, hist_sum, hist_count"
        wanted, table = self._columns(
            name, matchers, columns, "bounds IS NOT NULL", start_ns, end_ns
        )
        if table is None or table.num_rows == 0:
            return []
        order, runs, _ = _grouped(
            table.column("series_id").to_numpy(), table.column("time_ns").to_numpy(), list(wanted)
        )
        if order is not None:
            table = table.take(pa.array(order))
        times = table.column("time_ns").to_numpy()
        sums = table.column("hist_sum").to_numpy()
        totals = table.column("hist_count").to_numpy()
        bounds = pa.concat_arrays(table.column("bounds").chunks)
        counts = pa.concat_arrays(table.column("counts").chunks)
        uniform = _uniform_bounds(bounds, counts)
        flat = counts.flatten().to_numpy()
        out: list[HistogramColumns] = []
        for series_id, low, high in runs:
            labels = wanted[series_id]
            if uniform is not None:
                width = len(uniform) + 1
                part = flat[low * width : high * width].reshape(high - low, width)
                rows = [(uniform, np.arange(low, high), part)]
            else:
                rows = _group_by_bounds(bounds, counts, low, high)
            for group_bounds, index, group_counts in rows:
                out.append(
                    HistogramColumns(
                        labels,
                        group_bounds,
                        _frozen(times[index]),
                        _frozen(group_counts),
                        _frozen(sums[index]),
                        _frozen(totals[index]),
                    )
                )
        return out

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        """Searched backwards from `at_ns` in growing windows (5 min, then 8x wider each
        time) for the series not found yet: live series are flushed every few seconds, so the
        first window, which the `time_ns` zonemaps narrow to the newest row groups, usually
        finds them all, and a day-long lookback costs about what a 5-minute one does. The
        search stops at the oldest sample stored (`min(time_ns)` comes from the statistics,
        not a scan), so a lookup before all data, such as the baseline of a range starting
        there, costs nothing."""
        wanted = self._matching(name, matchers)
        if not wanted:
            return []
        cursor = self._db.read()
        oldest = cursor.execute("SELECT min(time_ns) FROM samples").fetchone()
        if oldest is None or oldest[0] is None:
            return []
        low = max(0, at_ns - lookback_ns, oldest[0])
        high = at_ns
        window = LATEST_FIRST_WINDOW_NS
        remaining = sorted(wanted)
        rows: list[Any] = []
        while remaining and high >= low:
            start = max(low, high - window)
            id_list = ", ".join(str(series_id) for series_id in remaining)
            # The newest row of each series first (by rowid: cheap columns only), then only
            # those rows in full; fetching histograms of every row in the window costs 3x.
            found = cursor.execute(
                f"SELECT {_SAMPLE_COLUMNS} FROM samples SEMI JOIN ("
                "   SELECT max_by(rowid, (time_ns, rowid)) AS newest FROM samples"
                f"  WHERE series_id IN ({id_list}) AND time_ns >= $start AND time_ns <= $high"
                "   GROUP BY series_id"
                ") ON rowid = newest WHERE time_ns >= $start AND time_ns <= $high",
                {"start": start, "high": high},
            ).fetchall()
            rows += found
            seen = {row[0] for row in found}
            remaining = [series_id for series_id in remaining if series_id not in seen]
            high = start - 1
            window *= 8
        rows.sort(key=lambda row: row[0])
        return _series_from_rows(name, wanted, rows)

    def families(self) -> list[MetricFamily]:
        return list(self._families.values())


def _frozen(array: Any) -> Any:
    array.flags.writeable = False
    return array


def _numpy(table: pa.Table, column: str) -> npt.NDArray[Any]:
    return table.column(column).combine_chunks().to_numpy()  # type: ignore[no-any-return]


def _grouped(
    ids: npt.NDArray[Any], times: npt.NDArray[np.int64], wanted: Sequence[int]
) -> tuple[npt.NDArray[np.intp] | None, list[tuple[int, int, int]], npt.NDArray[np.int64]]:
    """How to sort rows (in insertion order) by series id, then time, then insertion: the
    permutation (None: already so), each series' (id, start, end) in the sorted rows, and the
    sorted times. A stable radix sort of dense 16-bit ids keeps each series' rows in insertion
    order, which is time order unless samples came late (then a full lexsort)."""
    chosen = np.array(sorted(wanted), np.int64)
    lookup = np.zeros(int(chosen[-1]) + 1, np.uint16 if len(chosen) <= 65536 else np.uint32)
    lookup[chosen] = np.arange(len(chosen))
    dense = lookup[ids]
    counts = np.bincount(dense, minlength=len(chosen))
    ends = np.cumsum(counts)
    runs = [
        (series_id, end - count, end)
        for series_id, count, end in zip(
            chosen.tolist(), counts.tolist(), ends.tolist(), strict=True
        )
        if count
    ]
    order: npt.NDArray[np.intp] | None = None
    sorted_times = times
    if not (dense[1:] >= dense[:-1]).all():
        order = np.argsort(dense, kind="stable")
        sorted_times = times[order]
    decreases = np.flatnonzero(sorted_times[1:] < sorted_times[:-1]) + 1
    if len(decreases) and not np.isin(decreases, ends).all():  # late samples
        order = np.lexsort((times, dense))
        sorted_times = times[order]
    return order, runs, sorted_times


def _uniform_bounds(bounds: pa.ListArray, counts: pa.ListArray) -> tuple[float, ...] | None:
    """The bounds every row has, when they all have the same (the usual case)."""
    widths = np.diff(bounds.offsets.to_numpy())
    width = int(widths[0])
    if not (widths == width).all() or not (np.diff(counts.offsets.to_numpy()) == width + 1).all():
        return None
    flat = bounds.flatten().to_numpy().reshape(len(bounds), width)
    if not (flat == flat[0]).all():
        return None
    return tuple(flat[0].tolist())


def _group_by_bounds(
    bounds: pa.ListArray, counts: pa.ListArray, low: int, high: int
) -> list[tuple[tuple[float, ...], npt.NDArray[np.intp], npt.NDArray[np.uint64]]]:
    """Rows low..high grouped by their bounds, in order of first row (bounds that change
    over a series' life)."""
    groups: dict[tuple[float, ...], list[int]] = {}
    for row in range(low, high):
        groups.setdefault(tuple(bounds[row].as_py()), []).append(row)
    return [
        (
            key,
            np.array(rows, np.intp),
            np.array([counts[row].as_py() for row in rows], np.uint64).reshape(len(rows), -1),
        )
        for key, rows in groups.items()
    ]


def _families_table(first_seq: int, fresh: dict[str, MetricFamily]) -> pa.Table:
    families = list(fresh.values())
    return pa.table(
        {
            "seq": pa.array(range(first_seq, first_seq + len(families)), pa.uint32()),
            "name": pa.array([f.name for f in families], pa.string()),
            "type": pa.array([f.type.value for f in families], pa.string()),
            "help": pa.array([f.help for f in families], pa.string()),
            "unit": pa.array([f.unit for f in families], pa.string()),
        }
    )


def _series_from_rows(name: str, wanted: dict[int, Labels], rows: list[Any]) -> list[Series]:
    """Rows ordered by series id (= first-write order), then time."""
    out: list[Series] = []
    last_id = None
    for row in rows:
        if row[0] != last_id:
            last_id = row[0]
            out.append(Series(name, wanted[last_id], []))
        out[-1].samples.append(_point(name, out[-1].labels, row))
    return out


def _series_table(new: dict[tuple[str, Labels], int]) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(list(new.values()), pa.uint32()),
            "name": pa.array([name for name, _ in new], pa.string()),
            "labels": pa.array(
                [[{"name": k, "value": v} for k, v in labels] for _, labels in new], _LABELS
            ),
        }
    )


def _samples_table(ids: list[int], points: Sequence[MetricPoint]) -> pa.Table:
    hists = [p.histogram for p in points]
    bounds = [None if h is None else list(h.bounds) for h in hists]
    counts = [None if h is None else list(h.counts) for h in hists]
    return pa.table(
        {
            "series_id": pa.array(ids, pa.uint32()),
            "time_ns": pa.array([p.time_ns for p in points], pa.int64()),
            "value": pa.array([p.value for p in points], pa.float64()),
            "type": pa.array([p.type.value for p in points], pa.string()),
            "help": pa.array([p.help for p in points], pa.string()),
            "unit": pa.array([p.unit for p in points], pa.string()),
            "bounds": pa.array(bounds, pa.list_(pa.float64())),
            "counts": pa.array(counts, pa.list_(pa.uint64())),
            "hist_sum": pa.array([None if h is None else h.sum for h in hists], pa.float64()),
            "hist_count": pa.array([None if h is None else h.count for h in hists], pa.uint64()),
        }
    )


def _point(name: str, labels: Labels, row: tuple[Any, ...]) -> MetricPoint:
    _, time_ns, value, kind, help_text, unit, bounds, counts, hist_sum, hist_count = row
    histogram = None
    if bounds is not None:
        histogram = Histogram(tuple(bounds), tuple(counts), hist_sum, hist_count)
    return MetricPoint(
        name=name,
        labels=labels,
        time_ns=time_ns,
        type=MetricType(kind),
        value=value,
        histogram=histogram,
        help=help_text,
        unit=unit,
    )
