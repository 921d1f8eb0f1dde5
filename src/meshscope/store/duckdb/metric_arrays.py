"""Sample rows read from DuckDB (Arrow, in insertion order) as arrays per series.

Rows come back without ORDER BY (sorting 5M rows in DuckDB costs 4x the scan); they are
sorted into series here by a stable radix sort of dense series ids, which keeps each
series' rows in insertion order: time order unless samples came late (then a lexsort).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from meshscope.store.duckdb.blobs import narrow_lists

Array = npt.NDArray[Any]
Columns = tuple[Array, ...]
Bounds = tuple[float, ...]
HistogramGroup = tuple[Bounds, Columns]  # bounds, (times, counts, sums, totals)


def frozen(array: Any) -> Any:
    array.flags.writeable = False
    return array


def _numpy(table: pa.Table, column: str) -> Array:
    return table.column(column).combine_chunks().to_numpy()  # type: ignore[no-any-return]


def value_runs(table: pa.Table, ids: Sequence[int]) -> dict[int, Columns]:
    """(times, values) per series of a (series_id, time_ns, value) table whose ids are all
    in `ids`; read-only arrays."""
    if table.num_rows == 0:
        return {}
    series, times, values = (_numpy(table, column) for column in ("series_id", "time_ns", "value"))
    order, runs, times = grouped(series, times, ids)
    values = values if order is None else values[order]
    frozen(times)
    frozen(values)
    return {series_id: (times[low:high], values[low:high]) for series_id, low, high in runs}


def histogram_groups(
    table: pa.Table, ids: Sequence[int], bounds: Sequence[Bounds]
) -> dict[int, list[HistogramGroup]]:
    """Per series, its histogram rows grouped by bounds (groups in order of their first
    row), from a (series_id, time_ns, bounds_id, counts, hist_sum, hist_count) table (counts
    as narrow BLOBs, see blobs.py; `bounds` by bounds id)."""
    if table.num_rows == 0:
        return {}
    order, runs, _ = grouped(
        table.column("series_id").to_numpy(), table.column("time_ns").to_numpy(), ids
    )
    if order is not None:
        table = table.take(pa.array(order))
    times = table.column("time_ns").to_numpy()
    sums = table.column("hist_sum").to_numpy()
    totals = table.column("hist_count").to_numpy()
    bounds_ids = table.column("bounds_id").to_numpy()
    counts = narrow_lists(pa.concat_arrays(table.column("counts").chunks))
    offsets = counts.offsets.to_numpy()
    widths = np.diff(offsets)
    flat = counts.flatten().to_numpy()
    out: dict[int, list[HistogramGroup]] = {}
    for series_id, low, high in runs:
        groups: list[HistogramGroup] = []
        part = bounds_ids[low:high]
        chosen = [int(part[0])] if (part == part[0]).all() else _first_seen(part)
        for bounds_id in chosen:
            index = low + (
                np.flatnonzero(part == bounds_id) if len(chosen) > 1 else np.arange(high - low)
            )
            group_bounds = bounds[bounds_id]
            width = len(group_bounds) + 1
            if not (widths[index] == width).all():  # a corrupt row
                raise ValueError(f"histogram rows of series {series_id} do not fit their bounds")
            if len(chosen) == 1:  # the usual case: the rows' counts are contiguous
                group_counts = flat[offsets[low] : offsets[high]].reshape(high - low, width)
            else:
                group_counts = flat[offsets[index][:, None] + np.arange(width)]
            groups.append(
                (
                    group_bounds,
                    (
                        frozen(times[index]),
                        frozen(group_counts),
                        frozen(sums[index]),
                        frozen(totals[index]),
                    ),
                )
            )
        out[series_id] = groups
    return out


def _first_seen(values: Array) -> list[int]:
    """The distinct values in order of first appearance."""
    unique, first = np.unique(values, return_index=True)
    return [int(v) for v in unique[np.argsort(first)]]


def grouped(
    ids: Array, times: npt.NDArray[np.int64], wanted: Sequence[int]
) -> tuple[npt.NDArray[np.intp] | None, list[tuple[int, int, int]], npt.NDArray[np.int64]]:
    """How to sort rows (in insertion order) by series id, then time, then insertion: the
    permutation (None: already so), each series' (id, start, end) in the sorted rows, and the
    sorted times. A stable radix sort of dense 16-bit ids keeps each series' rows in insertion
    order, which is time order unless samples came late (then a full lexsort)."""
    chosen = np.array(sorted(wanted), np.int64)
    lookup = np.zeros(int(chosen[-1]) + 1, np.uint16 if len(chosen) <= 65536 else np.uint32)
    lookup[chosen] = np.arange(len(chosen))
    dense: npt.NDArray[np.unsignedinteger[Any]] = lookup[ids]  # type: ignore[assignment]
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


def joined(parts: list[Columns]) -> Columns:
    """Older (DuckDB) and newer (cache) parts of the same columns, in time order."""
    if len(parts) == 1:
        return parts[0]
    return tuple(frozen(np.concatenate(columns)) for columns in zip(*parts, strict=True))


def merged_groups(older: list[HistogramGroup], newer: list[HistogramGroup]) -> list[HistogramGroup]:
    """Groups of the same bounds joined, in order of their first point."""
    by_bounds: dict[tuple[float, ...], list[Columns]] = {}
    for bounds, columns in [*older, *newer]:
        by_bounds.setdefault(bounds, []).append(columns)
    groups = [(bounds, joined(parts)) for bounds, parts in by_bounds.items()]
    groups.sort(key=lambda group: int(group[1][0][0]))
    return groups
