"""Metric rows for DuckDB: Arrow tables to insert, and fetched rows back to `MetricPoint`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType
from meshscope.store.base import MetricFamily, Series
from meshscope.store.duckdb.blobs import FLOAT, UINT, blob, numbers

_LABELS = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))


def families_table(first_seq: int, fresh: dict[str, MetricFamily]) -> pa.Table:
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


def series_from_rows(name: str, wanted: dict[int, Labels], rows: list[Any]) -> list[Series]:
    """Rows ordered by series id (= first-write order), then time."""
    out: list[Series] = []
    last_id = None
    for row in rows:
        if row[0] != last_id:
            last_id = row[0]
            out.append(Series(name, wanted[last_id], []))
        out[-1].samples.append(point_of(name, out[-1].labels, row))
    return out


def series_table(new: dict[tuple[str, Labels], int]) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(list(new.values()), pa.uint32()),
            "name": pa.array([name for name, _ in new], pa.string()),
            "labels": pa.array(
                [[{"name": k, "value": v} for k, v in labels] for _, labels in new], _LABELS
            ),
        }
    )


def samples_table(ids: list[int], points: Sequence[MetricPoint]) -> pa.Table:
    hists = [p.histogram for p in points]
    bounds = [None if h is None else blob(h.bounds, FLOAT) for h in hists]
    counts = [None if h is None else blob(h.counts, UINT) for h in hists]
    return pa.table(
        {
            "series_id": pa.array(ids, pa.uint32()),
            "time_ns": pa.array([p.time_ns for p in points], pa.int64()),
            "value": pa.array([p.value for p in points], pa.float64()),
            "type": pa.array([p.type.value for p in points], pa.string()),
            "help": pa.array([p.help for p in points], pa.string()),
            "unit": pa.array([p.unit for p in points], pa.string()),
            "bounds": pa.array(bounds, pa.binary()),
            "counts": pa.array(counts, pa.binary()),
            "hist_sum": pa.array([None if h is None else h.sum for h in hists], pa.float64()),
            "hist_count": pa.array([None if h is None else h.count for h in hists], pa.uint64()),
            "start_ns": pa.array([p.start_ns or None for p in points], pa.int64()),
            **_exp_columns([p.exp_histogram for p in points]),
        }
    )


def _exp_columns(exps: list[ExpHistogram | None]) -> dict[str, pa.Array]:
    if all(e is None for e in exps):  # most points: cheaper than seven columns of nulls
        return {}
    return {
        "exp_scale": pa.array([None if e is None else e.scale for e in exps], pa.int8()),
        "exp_offset": pa.array([None if e is None else e.offset for e in exps], pa.int32()),
        "exp_counts": pa.array(
            [None if e is None else blob(e.counts, UINT) for e in exps], pa.binary()
        ),
        "exp_zero": pa.array([None if e is None else e.zero_count for e in exps], pa.uint64()),
        "exp_min": pa.array([None if e is None else e.min for e in exps], pa.float64()),
        "exp_max": pa.array([None if e is None else e.max for e in exps], pa.float64()),
    }


def point_of(name: str, labels: Labels, row: tuple[Any, ...]) -> MetricPoint:
    _, time_ns, value, kind, help_text, unit, bounds, counts, hist_sum, hist_count = row[:10]
    start_ns, scale, offset, exp_counts, zero, low, high = row[10:]
    histogram = exp = None
    if bounds is not None:
        histogram = Histogram(numbers(bounds, FLOAT), numbers(counts, UINT), hist_sum, hist_count)
    if scale is not None:
        exp = ExpHistogram(scale, offset, numbers(exp_counts, UINT), zero, low, high)
    return MetricPoint(
        name=name,
        labels=labels,
        time_ns=time_ns,
        type=MetricType(kind),
        value=value,
        histogram=histogram,
        help=help_text,
        unit=unit,
        start_ns=start_ns or 0,
        exp_histogram=exp,
    )
