"""Loading series into the `SampleCache` from DuckDB (their first read after a restart).

A load runs inside a write transaction: no insert can commit between the DuckDB read and
the install, so the cache gets exactly what DuckDB holds (the price: inserts wait for the
load, once per series). A load may take half the cache's limit; a bigger one raises the
horizon first to the time from which the series' newest samples fit (a quantile of their
sample times, weighted by nothing: bytes per sample are averaged).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.metric_arrays import histogram_groups, value_runs
from meshscope.store.duckdb.sample_cache import SampleCache
from meshscope.store.duckdb.sample_rows import GROWTH, Rows, SeriesSamples

FLOAT_BYTES = 16  # time_ns + value
HISTOGRAM_BYTES = 24  # time_ns, sum, count; plus 8 per bucket


def load(db: Database, cache: SampleCache, ids: Sequence[int]) -> None:
    with db.transaction() as txn:
        cold = cache.missing(ids)  # another reader may have loaded some meanwhile
        if not cold:
            return
        con = txn.con
        id_list = ", ".join(str(series_id) for series_id in cold)
        where = f"series_id IN ({id_list}) AND time_ns >= ?"
        row = con.execute(
            f"SELECT count(*), coalesce(sum(len(counts)), 0), count(counts) FROM samples"
            f" WHERE {where}",
            [cache.horizon],
        ).fetchall()
        rows, buckets, histograms = row[0] if row else (0, 0, 0)
        size = rows * FLOAT_BYTES + buckets * 8 + histograms * (HISTOGRAM_BYTES - FLOAT_BYTES)
        room = cache.limit // 2
        if size * (GROWTH + 1) // GROWTH > room:
            keep = room / (size * (GROWTH + 1) / GROWTH)
            found = con.execute(
                f"SELECT quantile_disc(time_ns, ?) FROM samples WHERE {where}",
                [1 - keep, cache.horizon],
            ).fetchall()
            if found and found[0][0] is not None:
                cache.raise_horizon(int(found[0][0]) + 1)
        table = con.sql(
            "SELECT series_id, time_ns, value, bounds, counts, hist_sum, hist_count"
            f" FROM samples WHERE {where}",
            params=[cache.horizon],
        ).to_arrow_table()
        cache.install(_entries(table, cold))
        cache.fit()


def _entries(table: pa.Table, ids: list[int]) -> dict[int, SeriesSamples]:
    """Writable copies of each series' samples, one entry per id (empty when none)."""
    is_float = pc.is_null(table.column("bounds"))
    floats = value_runs(table.filter(is_float).select(["series_id", "time_ns", "value"]), ids)
    histograms = histogram_groups(table.filter(pc.invert(is_float)), ids)
    out: dict[int, SeriesSamples] = {}
    for series_id in ids:
        columns = floats.get(series_id)
        rows = None if columns is None else Rows.copy_of(columns)
        groups = {bounds: Rows.copy_of(c) for bounds, c in histograms.get(series_id, [])}
        out[series_id] = SeriesSamples(rows, groups)
    return out
