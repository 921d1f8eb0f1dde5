"""Loading series into the `SampleCache` from DuckDB (their first read after a restart).

Each group of series is read and installed inside one write transaction: no insert can
commit between the DuckDB read and the install, so the cache gets exactly what DuckDB holds
(the price: inserts wait for a group, once per series). A load may take half the cache's
limit; a bigger one raises the horizon first to the time from which the series' newest
samples fit (a quantile of their sample times; bytes per sample are averaged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.metric_arrays import Bounds, histogram_groups, value_runs
from meshscope.store.duckdb.sample_cache import SampleCache
from meshscope.store.duckdb.sample_rows import GROWTH, Rows, SeriesSamples

FLOAT_BYTES = 16  # time_ns + value
HISTOGRAM_EXTRA = 8  # time_ns, sum, count (24 B) plus 8 per bucket: 8 B above a float
CHUNK_BYTES = 16 << 20
"""Series are loaded in groups of about this many bytes (~1M float samples), one write
transaction each: inserts wait for one group (~0.2 s), not for the whole load."""


def load(
    db: Database, cache: SampleCache, ids: Sequence[int], bounds: Callable[[], Sequence[Bounds]]
) -> None:
    """Load the series of `ids` the cache lacks; `bounds` gives the bucket bounds by id as
    they are when the rows are read."""
    cold = cache.missing(ids)
    if not cold:
        return
    cursor = db.read()  # estimates only: the loads themselves run under the write lock
    sizes = dict.fromkeys(cold, 0)
    found = cursor.execute(
        "SELECT series_id, count(*), coalesce(sum((octet_length(counts) - 1)"
        " // CAST(('0x' || left(hex(counts), 2)) AS INTEGER)), 0), count(counts)"
        f" FROM samples WHERE {_where(cold)} GROUP BY series_id",
        [cache.horizon],
    ).fetchall()
    for series_id, rows, buckets, histograms in found:
        sizes[series_id] = rows * FLOAT_BYTES + buckets * 8 + histograms * HISTOGRAM_EXTRA
    total = sum(sizes.values()) * (GROWTH + 1) / GROWTH
    room = cache.limit // 2
    if total > room:
        quantile = cursor.execute(
            f"SELECT quantile_disc(time_ns, ?) FROM samples WHERE {_where(cold)}",
            [1 - room / total, cache.horizon],
        ).fetchall()
        if quantile and quantile[0][0] is not None:
            with db.transaction():
                cache.raise_horizon(int(quantile[0][0]) + 1)
    chunk: list[int] = []
    chunk_bytes = 0
    for series_id, size in sizes.items():
        chunk.append(series_id)
        chunk_bytes += size
        if chunk_bytes >= CHUNK_BYTES:
            _load_chunk(db, cache, chunk, bounds)
            chunk, chunk_bytes = [], 0
    if chunk:
        _load_chunk(db, cache, chunk, bounds)


def _load_chunk(
    db: Database, cache: SampleCache, ids: list[int], bounds: Callable[[], Sequence[Bounds]]
) -> None:
    with db.transaction() as txn:
        cold = cache.missing(ids)  # another reader may have loaded some meanwhile
        if not cold:
            return
        con = txn.con
        params = [cache.horizon]
        floats = con.sql(
            f"SELECT series_id, time_ns, value FROM samples WHERE {_where(cold)}"
            " AND counts IS NULL",
            params=params,
        ).to_arrow_table()
        histograms = con.sql(
            "SELECT series_id, time_ns, bounds_id, counts, hist_sum, hist_count FROM samples"
            f" WHERE {_where(cold)} AND counts IS NOT NULL",
            params=params,
        ).to_arrow_table()
        cache.install(_entries(floats, histograms, cold, bounds()))
        cache.fit()


def _where(ids: list[int]) -> str:
    return f"series_id IN ({', '.join(str(series_id) for series_id in ids)}) AND time_ns >= ?"


def _entries(
    float_rows: pa.Table, histogram_rows: pa.Table, ids: list[int], bounds: Sequence[Bounds]
) -> dict[int, SeriesSamples]:
    """Writable copies of each series' samples, one entry per id (empty when none)."""
    floats = value_runs(float_rows, ids)
    histograms = histogram_groups(histogram_rows, ids, bounds)
    out: dict[int, SeriesSamples] = {}
    for series_id in ids:
        columns = floats.get(series_id)
        rows = None if columns is None else Rows.copy_of(columns)
        groups = {bounds: Rows.copy_of(c) for bounds, c in histograms.get(series_id, [])}
        out[series_id] = SeriesSamples(rows, groups)
    return out
