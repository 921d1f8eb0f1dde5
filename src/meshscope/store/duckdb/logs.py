"""Log records in DuckDB, appended in arrival order, read oldest first.

Reads go through the view `all_logs`: the `logs` table plus the typed `access_logs` rows the
pipeline writes for calls between services (rendered as the same records).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from meshscope.model.logs import LogRecord
from meshscope.store.base import MAX_TIME_NS, LogQuery
from meshscope.store.codec import AttrColumns, id64, id128, log_record
from meshscope.store.duckdb.database import Database, Txn
from meshscope.store.duckdb.filters import attribute_conditions
from meshscope.store.duckdb.packed import pack_columns, unpack
from meshscope.store.duckdb.resources import Resources
from meshscope.store.duckdb.trace_search import first_slice

SLICE_NS = 15 * 10**9
"""A read with a limit looks at this much of its range first, then 4x more each step (16x
while fewer than a quarter of the limit was found)..."""
SLICE_ROWS = 50_000  # ...and no shorter than holding about this many records
SLICED_RANGE_NS = 31 * 24 * 3600 * 10**9
"""...when its range is at most this long (reads of a trace's logs, whole time, are not)."""
_COLUMNS = """l.time_ns, l.body, l.service, l.severity, l.severity_text, l.trace_hi, l.trace_lo,
    l.span_id, l.attrs, l.attr_types, r.attrs, r.attr_types"""


class DuckDBLogStore:
    def __init__(self, db: Database, resources: Resources) -> None:
        self._db = db
        self._resources = resources

    def write_logs(self, logs: Sequence[LogRecord]) -> None:
        if logs:
            with self._db.transaction() as txn:
                self.insert(txn, logs)

    def insert(self, txn: Txn, logs: Sequence[LogRecord]) -> None:
        if not logs:
            return
        n = len(logs)
        t_hi, t_lo, span_id = [0] * n, [0] * n, [0] * n
        attrs = AttrColumns()
        for i, record in enumerate(logs):
            t_hi[i], t_lo[i] = id128(record.trace_id)
            span_id[i] = id64(record.span_id)
            attrs.add(record.attributes)
        packed, attr_types = pack_columns(attrs)
        table = pa.table(
            {
                "time_ns": pa.array([r.time_ns for r in logs], pa.int64()),
                "service": pa.array([r.service for r in logs], pa.string()),
                "severity": pa.array([int(r.severity) for r in logs], pa.uint8()),
                "severity_text": pa.array([r.severity_text for r in logs], pa.string()),
                "body": pa.array([r.body for r in logs], pa.string()),
                "trace_hi": pa.array(t_hi, pa.uint64()),
                "trace_lo": pa.array(t_lo, pa.uint64()),
                "span_id": pa.array(span_id, pa.uint64()),
                "access": pa.array([r.is_access_log for r in logs], pa.bool_()),
                "attrs": packed,
                "attr_types": attr_types,
                "resource_id": pa.array(
                    self._resources.ids(txn, [r.resource for r in logs]), pa.uint64()
                ),
            }
        )
        txn.insert("logs", table)

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        where = ["time_ns >= ?", "time_ns < ?"]
        params: list[Any] = [query.start_ns, query.end_ns]
        if query.trace_id:
            try:
                high, low = id128(query.trace_id)
            except ValueError:
                return []
            where.append("trace_hi = ? AND trace_lo = ?")
            params += [high, low]
        if query.span_id:
            try:
                span_id = id64(query.span_id)
            except ValueError:
                return []
            if not 0 < span_id < 2**64:
                return []
            where.append("span_id = ?")
            params.append(span_id)
        if query.service:
            where.append("service = ?")
            params.append(query.service)
        if query.access is not None:
            where.append("access" if query.access else "NOT access")
        for text in query.body_contains:
            where.append("contains(body, ?)")
            params.append(text)
        cursor = self._db.read()
        conditions, attr_params = attribute_conditions(cursor, query.attributes)
        where += conditions
        params += attr_params
        if query.limit <= 0 or query.trace_id or query.end_ns - query.start_ns > SLICED_RANGE_NS:
            limit = ""
            if query.limit > 0:
                limit = "LIMIT ?"
                params.append(query.limit)
            return self._select(cursor, where, params, limit, query.newest_first)
        # Newest (or oldest) slice first, growing 4x, until `limit` records are found: a
        # dense hour holds millions of records, and the newest 100 lie in its last seconds.
        found: list[LogRecord] = []
        low, high = query.start_ns, query.end_ns
        edge = high if query.newest_first else low + SLICE_NS
        width = first_slice(cursor, "all_logs", "time_ns", edge, SLICE_NS, SLICE_ROWS)
        while low < high and len(found) < query.limit:
            if query.newest_first:
                bounds = (max(low, high - width), high)
                high = bounds[0]
            else:
                bounds = (low, min(high, low + width))
                low = bounds[1]
            params[:2] = bounds
            found += self._select(
                cursor, where, [*params, query.limit - len(found)], "LIMIT ?", query.newest_first
            )
            width *= 4 if 4 * len(found) >= query.limit else 16
        return found

    def _select(
        self,
        cursor: duckdb.DuckDBPyConnection,
        where: list[str],
        params: list[Any],
        limit: str,
        newest_first: bool,
    ) -> list[LogRecord]:
        order = "DESC" if newest_first else ""
        # Filter in a subquery over the logs alone, so `attrs` means the record's own.
        # `all_logs` adds the typed access logs (see access_logs.py) to `logs`.
        sql = f"""SELECT {_COLUMNS} FROM (
                SELECT * FROM all_logs WHERE {" AND ".join(where)}
                ORDER BY time_ns {order}, src {order}, row {order} {limit}
            ) l LEFT JOIN resources r USING (resource_id)
            ORDER BY l.time_ns {order}, l.src {order}, l.row {order}"""
        # A resource repeats on every record of its stream: unpacked once per read, each
        # record given its own copy.
        resources: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        out = []
        for row in cursor.execute(sql, params).fetchall():
            key = (row[10], row[11])
            resource = resources.get(key)
            if resource is None:
                resource = resources[key] = unpack(row[10], row[11])
            out.append(log_record(row[:8], unpack(row[8], row[9]), dict(resource)))
        return out

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        rows = (
            self._db.read()
            .execute(
                "SELECT service, count(*) FROM all_logs WHERE time_ns >= ? AND time_ns < ?"
                " GROUP BY service ORDER BY service",
                [start_ns, end_ns],
            )
            .fetchall()
        )
        return dict(rows)
