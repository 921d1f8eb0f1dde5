"""One DuckDB file, one owner: a write connection behind a lock and a cursor per reading thread.

Durability: DuckDB appends a transaction's changes to the write-ahead log (`<file>.wal`) and
syncs it (fsync, `fsync_mode` STANDARD by default) before COMMIT returns; a large insert may
skip the log and checkpoint straight into the data file, which is synced too. So every
`write_*` that returned survives a kill -9: the next open replays the log.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pyarrow as pa

from meshscope import stopping
from meshscope.store.duckdb.schema import MIGRATIONS, SCHEMA_VERSION, STATEMENTS

_names = itertools.count()


class StoreLockedError(RuntimeError):
    """The DuckDB file is open in another process (DuckDB allows one writer per file)."""

    def __init__(self, path: Path, pid: int) -> None:
        super().__init__(f"{path} is locked by process {pid}")
        self.path = path
        self.pid = pid


log = logging.getLogger(__name__)


class Txn:
    """An open write transaction. Caches changed inside it register how to undo that.

    Bulk inserts are sent to DuckDB together: `insert` registers its Arrow data and queues
    the statements, which run (after the queued BEGIN) in ONE `execute` with the COMMIT, or
    earlier whenever `con` is used directly, so statements still run in the order given.
    Each call into DuckDB costs Python work and a GIL hand-back that waits on the busy
    threads of the store owner; one call per transaction instead of ~8 cuts the fixed cost
    of a small group commit by ~40% (see docs/adr/0006).
    """

    __slots__ = ("_con", "_pending", "_registered", "on_rollback")

    def __init__(self, con: duckdb.DuckDBPyConnection, *statements: str) -> None:
        self._con = con
        self._pending: list[str] = list(statements)  # not yet sent, in order
        self._registered: list[str] = []
        self.on_rollback: list[Callable[[], None]] = []

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, for statements of one's own: queued ones are sent first."""
        self.flush()
        return self._con

    def insert(self, table: str, data: pa.Table) -> None:
        """Bulk insert through Arrow (never executemany): columns are matched by name."""
        if data.num_rows == 0:
            return
        name = f"_arrow_{next(_names)}"
        self._con.register(name, data)
        self._registered.append(name)
        self._pending.append(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")

    def flush(self, *then: str) -> None:
        """Send the queued statements (and `then`) in one call."""
        statements = [*self._pending, *then]
        self._pending.clear()
        if statements:
            self._con.execute(";\n".join(statements))

    def release(self) -> None:
        """Drop the Arrow data registered for this transaction's inserts."""
        for name in self._registered:
            with suppress(duckdb.Error):
                self._con.unregister(name)
        self._registered.clear()


DEFAULT_CHECKPOINT_THRESHOLD = "512MB"
"""WAL size that triggers a checkpoint. The log holds rows uncompressed (~665 B per benchmark
span), and every checkpoint rewrites the tables' partly filled row groups, leaving the old
blocks free in the file: at 40k spans/s DuckDB's 16 MiB default checkpoints several times a
second (110 vs 80 bytes/span, ingest stalls: 34k vs 49k spans/s, benchmarks/store.py), 128 MB
every ~5 s (the file 25% free blocks, ~135 bytes/span after benchmarks/ingest.py), 512 MB every
~20 s (6% free, ~106 bytes/span). The price: up to ~0.5 GB more resident memory before a
checkpoint (peak RSS 1.0 -> 1.2-1.4 GiB in the benchmark) and a longer log replay after a
crash (~2.4 s for a full 512 MB log)."""


class Database:
    def __init__(
        self, path: str | Path, checkpoint_threshold: str = DEFAULT_CHECKPOINT_THRESHOLD
    ) -> None:
        self.path = Path(path)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as error:
            found = re.search(r"Conflicting lock is held in .*\(PID (\d+)\)", str(error))
            if found is None:
                raise
            raise StoreLockedError(self.path, int(found.group(1))) from None
        self._con.execute("SET checkpoint_threshold = ?", [checkpoint_threshold])
        row = self._con.execute("SELECT current_setting('threads')").fetchone()
        self._threads = int(row[0]) if row else 1
        self._lock = threading.Lock()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._closed = False
        self._migrate()
        with self.transaction() as txn:
            for statement in STATEMENTS:
                txn.con.execute(statement)
            txn.con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
                [str(SCHEMA_VERSION)],
            )
        row = self.read().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = None if row is None else row[0]
            self.close()
            raise ValueError(f"{self.path}: schema version {found}, expected {SCHEMA_VERSION}")

    def _migrate(self) -> None:
        """Bring a file written by an older schema version to this one, one version at a
        time, each step in one transaction (a failed step leaves the file as it was)."""
        has_meta = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'meta'"
        ).fetchone()
        if not has_meta or not has_meta[0]:
            return  # a new file
        row = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else SCHEMA_VERSION
        while version in MIGRATIONS:
            log.info("migrating %s from schema version %d to %d", self.path, version, version + 1)
            with self.transaction() as txn:
                for step in MIGRATIONS[version]:
                    if isinstance(step, str):
                        txn.con.execute(step)
                    else:
                        step(txn.con)
                txn.con.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(version + 1)]
                )
            version += 1

    @contextmanager
    def transaction(self, single_threaded: bool = False) -> Iterator[Txn]:
        """Serialize writers; commit (durably) on success, roll back on error.

        `single_threaded`: run this (bulk) write on one DuckDB thread. Appending Arrow rows
        gains nothing from a second thread on a small machine but costs ~40% more CPU per
        row (5.0 vs 8.0 us/span, 2 cores), CPU the ingest workers need.
        """
        with self._lock:
            self._check_open()
            threads = self._threads if single_threaded else None
            txn = Txn(self._con, *(["SET threads = 1"] if threads else []), "BEGIN TRANSACTION")
            try:
                yield txn
                # All threads back before COMMIT: a COMMIT past the checkpoint threshold
                # checkpoints, which compresses row groups in parallel (0.30 vs 0.47 s for
                # 300k spans on 2 cores, same CPU), and commits wait for it.
                txn.flush(*([f"SET threads = {threads}"] if threads else []), "COMMIT")
            except BaseException:
                with suppress(duckdb.Error):
                    self._con.execute("ROLLBACK")
                if threads:
                    with suppress(duckdb.Error):
                        self._con.execute(f"SET threads = {threads}")
                for undo in reversed(txn.on_rollback):
                    undo()
                raise
            finally:
                txn.release()

    def read(self) -> duckdb.DuckDBPyConnection:
        """This thread's own cursor (a connection to the same database) for queries; in a
        read under a query budget, DuckDB interrupts its statement once the budget is spent
        (`meshscope.stopping`: it raises duckdb.InterruptException)."""
        self._check_open()
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._cursors_lock:
                cursor = self._con.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        stopping.on_stop(cursor, cursor.interrupt)  # a read past its deadline is interrupted
        return cursor

    def memory_bytes(self) -> int:
        """What DuckDB accounts for in memory (`duckdb_memory()`: buffer pool blocks,
        hash tables, ...), bounded by its `memory_limit`; not the process's RSS."""
        [(used,)] = (
            self.read()
            .execute("SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()")
            .fetchall()
        )
        return int(used)

    @property
    def wal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".wal")

    def wal_bytes(self) -> int:
        """The size of the write-ahead log now (0 when there is none)."""
        try:
            return self.wal_path.stat().st_size
        except OSError:
            return 0

    def checkpoint(self) -> None:
        """Write the log's changes into the file and empty the log (between transactions)."""
        with self._lock:
            self._check_open()
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        """Checkpoint, then close: no log is left beside the file after a clean stop (DuckDB
        checkpoints on close only when nothing else still holds the database open)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with self._cursors_lock:
                for cursor in self._cursors:
                    cursor.close()
                self._cursors.clear()
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error as error:  # the log stays and is replayed at the next open
                log.warning("checkpoint on close failed: %s", error)
            self._con.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: storage is closed")
