"""ClickHouseStorage: every pillar in one ClickHouse database (ADR 0011).

Writes are synchronous inserts: when a write returns, the rows are in ClickHouse. There are
no transactions, so `write_batch` inserts table by table (spans, logs, samples, catalog); a
failure part way leaves the earlier tables written and raises, and the caller's retry may
write those rows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import Operation
from meshscope.store.clickhouse import retention
from meshscope.store.clickhouse.catalog import ClickHouseCatalogStore
from meshscope.store.clickhouse.connection import ClickHouseUnavailableError, Connection
from meshscope.store.clickhouse.logs import ClickHouseLogStore
from meshscope.store.clickhouse.metrics import ClickHouseMetricStore
from meshscope.store.clickhouse.schema import profile_for, statements
from meshscope.store.clickhouse.traces import ClickHouseTraceStore

log = logging.getLogger(__name__)

__all__ = ["ClickHouseStorage", "ClickHouseUnavailableError"]


class ClickHouseStorage:
    def __init__(self, dsn: str, database: str = "meshscope") -> None:
        """Connects to the server `dsn` names (clickhouse://user:password@host:9000), creates
        `database` and its tables if missing. ValueError for a malformed DSN or database
        name, ClickHouseUnavailableError when the server cannot be reached."""
        self._conn = Connection(dsn, database)
        try:
            [(version,)] = self._conn.rows("SELECT version()")
            self.server_version: str = version
            self.profile = profile_for(version)
            for statement in statements(self._conn.database, self.profile):
                self._conn.execute(statement)
        except Exception:
            self._conn.close()
            raise
        log.info(
            "clickhouse storage opened",
            extra={"server_version": version, "profile": self.profile.name,
                   "database": database},
        )  # fmt: skip
        self.traces = ClickHouseTraceStore(self._conn)
        self.logs = ClickHouseLogStore(self._conn)
        self.metrics = ClickHouseMetricStore(self._conn)
        self.catalog = ClickHouseCatalogStore(self._conn)

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        self.traces.write_spans(spans)
        self.logs.write_logs(logs)
        self.metrics.write_points(points)
        self.catalog.note(operations)

    def expire(self, before_ns: int) -> int:
        return retention.expire(self._conn, before_ns)

    def drop(self) -> None:
        """Delete the database with everything in it, then close (tests, tear-down)."""
        self._conn.execute(f"DROP DATABASE IF EXISTS {self._conn.database}")
        self.close()

    def close(self) -> None:
        self._conn.close()
