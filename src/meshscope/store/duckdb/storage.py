"""DuckDBStorage: every pillar in one DuckDB file owned by this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import duckdb

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
from meshscope.store.duckdb.metrics import DEFAULT_SAMPLE_CACHE_BYTES, DuckDBMetricStore
from meshscope.store.duckdb.resources import Resources
from meshscope.store.duckdb.span_rows import EncodedSpans, encode_columns, encode_spans
from meshscope.store.duckdb.trace_locator import SPILL_ENTRIES
from meshscope.store.duckdb.traces import FOLD_ROWS, DuckDBTraceStore
from meshscope.store.duckdb.warmup import WarmUp, default_budget, parse_size, warm_up

EXPIRE_CHUNK_ROWS = 50_000
"""Rows deleted per transaction by `expire`, so writers wait at most one small delete."""

LOW_LOAD_CHECKPOINT_BYTES = 16 * 2**20
"""At low load the log is checkpointed once it holds this much (DuckDB's default threshold):
the 512 MB threshold (database.py) is sized for 40k spans/s and is not reached for days at
10 spans/s, while the log grows ~350 KB per small commit (docs/adr/0006, revision 3)."""
LOW_LOAD_CHECKPOINT_INTERVAL_S = 60.0
"""...but not more often than this: each checkpoint costs ~0.5 MB of writes plus a rewrite of
the trace index (ADR 0006)."""

_EXPIRE = (
    ("spans", "start_ns"),
    ("logs", "time_ns"),
    ("access_logs", "time_ns"),
    ("samples", "time_ns"),
)


class StoreMemory(NamedTuple):
    """A DuckDB store's memory: what DuckDB accounts for (its buffer pool and more, bounded by
    `storage.duckdb.memory_limit`); outside that limit, the trace locator's entries and the
    bytes it holds in memory, and the metric sample cache's bytes (bounded by
    `storage.duckdb.sample_cache`: ADR 0009). And on disk beside the store file, the bytes of
    the locator's spilled runs (files with no name: ADR 0019)."""

    duckdb_bytes: int
    locator_entries: int
    locator_bytes: int
    sample_cache_bytes: int
    locator_file_bytes: int


class DuckDBStorage:
    def __init__(
        self,
        path: str | Path,
        checkpoint_threshold: str = DEFAULT_CHECKPOINT_THRESHOLD,
        memory_limit: str | None = None,
        sample_cache_bytes: int = DEFAULT_SAMPLE_CACHE_BYTES,
        fold_rows: int = FOLD_ROWS,
        spill_entries: int = SPILL_ENTRIES,
    ) -> None:
        """`memory_limit`: DuckDB's buffer pool bound (`'50%'` of RAM, `'4GB'`); None keeps
        DuckDB's default (80% of RAM). `sample_cache_bytes`: the bound of the metric store's
        sample cache (0: off; ADR 0009). `fold_rows`: the trace index rows of the latest
        writes folded into one per trace past this many (traces.FOLD_ROWS; tests fold often).
        `spill_entries`: trace locator runs this long are moved to files in the store's
        directory (trace_locator.SPILL_ENTRIES; tests spill small ones)."""
        self.path = Path(path)
        self._db = Database(self.path, checkpoint_threshold)
        if memory_limit is not None:
            try:
                self._db.read().execute(f"SET memory_limit = '{_size_literal(memory_limit)}'")
            except (duckdb.Error, ValueError) as error:
                self._db.close()
                raise ValueError(f"memory limit {memory_limit!r}: {error}") from None
        with self._db.transaction() as txn:
            for statement in ACCESS_STATEMENTS:
                txn.con.execute(statement)
        self._resources = Resources(self._db)
        self.traces = DuckDBTraceStore(self._db, self._resources, fold_rows, spill_entries)
        self.logs = DuckDBLogStore(self._db, self._resources)
        self.metrics = DuckDBMetricStore(self._db, sample_cache_bytes)
        self.catalog = DuckDBCatalogStore(self._db)
        self._checkpointed_at = time.monotonic()
        self._wal_seen = self._db.wal_bytes()

    def maintain(self) -> None:
        """Called by the writer when the load is low: checkpoint once the log has grown past
        LOW_LOAD_CHECKPOINT_BYTES, at most every LOW_LOAD_CHECKPOINT_INTERVAL_S (a log that
        shrank since the last call was checkpointed by DuckDB: that counts)."""
        now = time.monotonic()
        wal = self._db.wal_bytes()
        if wal < self._wal_seen:
            self._checkpointed_at = now
        self._wal_seen = wal
        if wal < LOW_LOAD_CHECKPOINT_BYTES:
            return
        if now - self._checkpointed_at < LOW_LOAD_CHECKPOINT_INTERVAL_S:
            return
        self._db.checkpoint()
        self._checkpointed_at = time.monotonic()
        self._wal_seen = self._db.wal_bytes()

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
    column_encoder = staticmethod(encode_columns)
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
            if table == "samples":
                self.metrics.expired(before_ns)
        with self._db.transaction() as txn:
            self.traces.expire_index(txn, before_ns)
        return deleted

    def memory(self) -> StoreMemory:
        """What this store holds in memory (`StoreMemory`)."""
        locator = self.traces.locator
        return StoreMemory(
            self._db.memory_bytes(),
            len(locator),
            locator.nbytes,
            self.metrics.cache.nbytes,
            locator.file_bytes,
        )

    def warm_up(self, stop: threading.Event | None = None) -> WarmUp:
        """Load the newest spans' blocks into the buffer pool, up to half the memory limit
        (store/duckdb/warmup.py; `stop` ends it between two 10-minute windows), then every
        metric series into the sample cache (ADR 0009) unless stopped."""
        con = self._db.read()
        result = warm_up(con, default_budget(con), stop)
        if stop is None or not stop.is_set():
            self.metrics.warm_cache()
        return result

    def close(self) -> None:
        self._db.close()


def _size_literal(text: str) -> str:
    """`text` if it is a percentage or a size DuckDB reads; ValueError otherwise (it goes
    into SQL text, so nothing else may pass)."""
    stripped = text.strip()
    number = stripped[:-1].strip()
    if stripped.endswith("%") and number.replace(".", "", 1).isdigit():
        return f"{number}%"
    parse_size(stripped)
    return stripped
