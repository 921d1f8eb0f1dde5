"""DuckDBStorage: every pillar in one DuckDB file owned by this process."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import Operation
from meshscope.store.duckdb.access_logs import STATEMENTS as ACCESS_STATEMENTS
from meshscope.store.duckdb.access_logs import access_table
from meshscope.store.duckdb.catalog import DuckDBCatalogStore
from meshscope.store.duckdb.database import DEFAULT_CHECKPOINT_THRESHOLD, Database
from meshscope.store.duckdb.logs import DuckDBLogStore
from meshscope.store.duckdb.metrics import DuckDBMetricStore
from meshscope.store.duckdb.resources import Resources
from meshscope.store.duckdb.span_rows import EncodedSpans, encode_spans
from meshscope.store.duckdb.traces import DuckDBTraceStore

EXPIRE_CHUNK_ROWS = 50_000
"""Rows deleted per transaction by `expire`, so writers wait at most one small delete."""

_EXPIRE = (
    ("spans", "start_ns"),
    ("logs", "time_ns"),
    ("access_logs", "time_ns"),
    ("samples", "time_ns"),
)


class DuckDBStorage:
    def __init__(
        self, path: str | Path, checkpoint_threshold: str = DEFAULT_CHECKPOINT_THRESHOLD
    ) -> None:
        self.path = Path(path)
        self._db = Database(self.path, checkpoint_threshold)
        with self._db.transaction() as txn:
            for statement in ACCESS_STATEMENTS:
                txn.con.execute(statement)
        self._resources = Resources(self._db)
        self.traces = DuckDBTraceStore(self._db, self._resources)
        self.logs = DuckDBLogStore(self._db, self._resources)
        self.metrics = DuckDBMetricStore(self._db)
        self.catalog = DuckDBCatalogStore(self._db)

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        """All of it in one transaction: durable together, or not at all."""
        self.write_encoded([encode_spans(spans)] if spans else [], logs, points, operations)

    span_encoder = staticmethod(encode_spans)
    """Pure: ingest workers encode spans with it; `write_encoded` commits the result."""

    def write_encoded(
        self,
        encoded_spans: Sequence[EncodedSpans],
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
        calls: Sequence[Call] = (),
    ) -> None:
        """`write_batch` with spans encoded by `encode_spans`, and calls between services
        stored as access logs (typed rows, see `access_logs`): one transaction."""
        with self._db.transaction(single_threaded=len(encoded_spans) > 1) as txn:
            self.traces.insert_encoded(txn, encoded_spans)
            self.logs.insert(txn, logs)
            if calls:
                txn.insert("access_logs", access_table(calls))
            self.metrics.insert(txn, points)
            self.catalog.insert(txn, operations)

    def expire(self, before_ns: int) -> int:
        deleted = 0
        for table, column in _EXPIRE:
            while True:
                with self._db.transaction() as txn:
                    row = txn.con.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table}"
                        f" WHERE {column} < ? LIMIT {EXPIRE_CHUNK_ROWS})",
                        [before_ns],
                    ).fetchone()
                count = int(row[0]) if row else 0
                deleted += count
                if count < EXPIRE_CHUNK_ROWS:
                    break
        with self._db.transaction() as txn:
            # An index row whose spans are all gone points at nothing.
            txn.con.execute("DELETE FROM trace_index WHERE max_start < ?", [before_ns])
        return deleted

    def close(self) -> None:
        self._db.close()
