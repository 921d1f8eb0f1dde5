"""Metric rows for DuckDB: Arrow tables to insert, and fetched rows back to `MetricPoint`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from meshscope.model.exphistogram import ExpHistogram
from meshscope.model.metrics import Histogram, Labels, MetricPoint, MetricType
from meshscope.store.base import MetricFamily, Series
from meshscope.store.duckdb.blobs import FLOAT, blob, narrow, narrow_numbers

SAMPLE_COLUMNS = (
    "series_id, time_ns, value, type, help, unit, bounds_id, counts, hist_sum, hist_count,"
    " start_ns, exp_scale, exp_offset, exp_counts, exp_zero, exp_min, exp_max"
)
"""The columns `point_of` reads, in its order."""
Bounds = tuple[float, ...]

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


def bounds_table(first_id: int, fresh: Sequence[Bounds]) -> pa.Table:
    return pa.table(
        {
            "bounds_id": pa.array(range(first_id, first_id + len(fresh)), pa.uint32()),
            "bounds": pa.array([blob(bounds, FLOAT) for bounds in fresh], pa.binary()),
        }
    )


def series_from_rows(
    family: MetricFamily, wanted: dict[int, Labels], rows: list[Any], bounds: Sequence[Bounds]
) -> list[Series]:
    """Rows ordered by series id (= first-write order), then time; `bounds` by bounds id."""
    out: list[Series] = []
    last_id = None
    for row in rows:
        if row[0] != last_id:
            last_id = row[0]
            out.append(Series(family.name, wanted[last_id], []))
        out[-1].samples.append(point_of(family, out[-1].labels, row, bounds))
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


def samples_table(
    ids: list[int],
    points: Sequence[MetricPoint],
    families: dict[str, MetricFamily],
    bounds_ids: dict[Bounds, int],
) -> pa.Table:
    """Rows of `points`: type, help and unit only where they differ from the family's
    (NULL: the family's), bucket bounds by id (`bounds_ids` has every point's)."""
    hists = [p.histogram for p in points]
    metadata = [families[p.name] for p in points]
    return pa.table(
        {
            "series_id": pa.array(ids, pa.uint32()),
            "time_ns": pa.array([p.time_ns for p in points], pa.int64()),
            "value": pa.array([p.value for p in points], pa.float64()),
            **_metadata_columns(points, metadata),
            "bounds_id": pa.array(
                [None if h is None else bounds_ids[h.bounds] for h in hists], pa.uint32()
            ),
            "counts": pa.array(
                [None if h is None else narrow(h.counts) for h in hists], pa.binary()
            ),
            "hist_sum": pa.array([None if h is None else h.sum for h in hists], pa.float64()),
            "hist_count": pa.array([None if h is None else h.count for h in hists], pa.uint64()),
            "start_ns": pa.array([p.start_ns or None for p in points], pa.int64()),
            **_exp_columns([p.exp_histogram for p in points]),
        }
    )


def _metadata_columns(
    points: Sequence[MetricPoint], families: list[MetricFamily]
) -> dict[str, pa.Array]:
    """The points' own type, help and unit where they are not their family's (rare)."""
    pairs = list(zip(points, families, strict=True))
    if all(p.type == f.type and p.help == f.help and p.unit == f.unit for p, f in pairs):
        return {}
    return {
        "type": pa.array(
            [None if p.type == f.type else p.type.value for p, f in pairs], pa.string()
        ),
        "help": pa.array([None if p.help == f.help else p.help for p, f in pairs], pa.string()),
        "unit": pa.array([None if p.unit == f.unit else p.unit for p, f in pairs], pa.string()),
    }


def _exp_columns(exps: list[ExpHistogram | None]) -> dict[str, pa.Array]:
    if all(e is None for e in exps):  # most points: cheaper than seven columns of nulls
        return {}
    return {
        "exp_scale": pa.array([None if e is None else e.scale for e in exps], pa.int8()),
        "exp_offset": pa.array([None if e is None else e.offset for e in exps], pa.int32()),
        "exp_counts": pa.array(
            [None if e is None else narrow(e.counts) for e in exps], pa.binary()
        ),
        "exp_zero": pa.array([None if e is None else e.zero_count for e in exps], pa.uint64()),
        "exp_min": pa.array([None if e is None else e.min for e in exps], pa.float64()),
        "exp_max": pa.array([None if e is None else e.max for e in exps], pa.float64()),
    }


def point_of(
    family: MetricFamily, labels: Labels, row: tuple[Any, ...], bounds: Sequence[Bounds]
) -> MetricPoint:
    """A point from a row of `SAMPLE_COLUMNS`."""
    _, time_ns, value, kind, help_text, unit, bounds_id, counts, hist_sum, hist_count = row[:10]
    start_ns, scale, offset, exp_counts, zero, low, high = row[10:]
    histogram = exp = None
    if counts is not None:
        histogram = Histogram(bounds[bounds_id], narrow_numbers(counts), hist_sum, hist_count)
    if scale is not None:
        exp = ExpHistogram(scale, offset, narrow_numbers(exp_counts), zero, low, high)
    return MetricPoint(
        name=family.name,
        labels=labels,
        time_ns=time_ns,
        type=family.type if kind is None else MetricType(kind),
        value=value,
        histogram=histogram,
        help=family.help if help_text is None else help_text,
        unit=family.unit if unit is None else unit,
        start_ns=start_ns or 0,
        exp_histogram=exp,
    )
