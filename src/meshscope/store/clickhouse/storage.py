"""ClickHouseStorage: every pillar in one ClickHouse database (ADR 0011).

Writes are synchronous inserts: when a write returns, the rows are in ClickHouse. Writes are
two-phase (`store.twophase`): ingest workers encode spans into both span tables' insert
columns (`span_rows.py`), and `write_encoded` inserts them with the rest; `write_batch` is the
same path with the encoding done here. There are no transactions, so a write inserts table by
table (spans by trace id, span search, access logs, logs, samples, catalog); a
failure part way leaves the earlier tables written and raises, and the caller's retry may
write those rows twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import Operation
from meshscope.store.clickhouse import retention
from meshscope.store.clickhouse.catalog import ClickHouseCatalogStore
from meshscope.store.clickhouse.connection import ClickHouseUnavailableError, Connection
from meshscope.store.clickhouse.logs import ClickHouseLogStore
from meshscope.store.clickhouse.metrics import ClickHouseMetricStore
from meshscope.store.clickhouse.schema import COMPAT, create
from meshscope.store.clickhouse.span_rows import (
    EncodedClickHouseSpans,
    encode_columns,
    encode_spans,
)
from meshscope.store.clickhouse.traces import ClickHouseTraceStore

log = logging.getLogger(__name__)

__all__ = ["ClickHouseStorage", "ClickHouseUnavailableError"]


class ClickHouseStorage:
    paired_calls_interval_s = 1.0
    """The calls paired from spans go in one access-log insert a second (`InsertsMakeParts`,
    ADR 0027): a group commit's insert would make a part of its own."""

    def __init__(
        self,
        dsn: str,
        database: str = "meshscope",
        retention_hours: float | None = None,
        *,
        connection: Connection | None = None,
        defer_unreachable: bool = False,
    ) -> None:
        """Connects to the server `dsn` names (clickhouse://user:password@host:9000), creates
        `database` and its tables if missing (the DDL of the server version's profile, with
        a TTL for `retention_hours` where the profile has one: schema.create). ValueError
        for a malformed DSN or database name, ClickHouseUnavailableError when the server
        cannot be reached, unless `defer_unreachable` (a shard of several): then `opened` is
        False and the tables are made before its first statement that reaches the server
        (`Connection.on_first_use`); until then every statement fails as unreachable.
        `connection`: an opened one to use instead (tests: chdb)."""
        self._conn = connection or Connection(dsn, database)
        self.opened = True
        self.server_version, self.profile = "", COMPAT
        try:
            self.server_version, self.profile = create(self._conn, retention_hours)
        except ClickHouseUnavailableError as error:
            if not defer_unreachable:
                self._conn.close()
                raise
            self.opened = False
            log.warning("clickhouse unreachable at start; its tables are made when it answers: %s",
                        error)  # fmt: skip
            self._conn.on_first_use(lambda: create(self._conn, retention_hours))
        except Exception:
            self._conn.close()
            raise
        else:
            log.info(
                "clickhouse storage opened",
                extra={"server_version": self.server_version, "profile": self.profile.name,
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
        """Table by table, no transaction (see the module docstring)."""
        self.write_encoded([encode_spans(spans)] if spans else [], logs, points, operations)

    span_encoder = staticmethod(encode_spans)
    column_encoder = staticmethod(encode_columns)
    """Pure: ingest workers encode spans with it; `write_encoded` inserts the result."""

    def write_encoded(
        self,
        encoded_spans: Sequence[EncodedClickHouseSpans],
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
        calls: Sequence[Call] = (),
    ) -> None:
        """`write_batch` with spans encoded by `encode_spans`, and calls between services
        stored as typed `access_logs` rows that log reads render as the records `access_log`
        makes (clickhouse/access_logs.py).
        Table by table, no transaction (see the module docstring)."""
        self.traces.write_encoded(encoded_spans)
        self.logs.write_logs(logs, calls)
        self.metrics.write_points(points)
        self.catalog.note(operations)

    def expire(self, before_ns: int) -> int:
        try:
            return retention.expire(self._conn, before_ns)
        finally:  # days of `resources` may be gone: write them again when spans come
            self.traces.forget_resources()

    def drop(self) -> None:
        """Delete the database with everything in it, then close (tests, tear-down)."""
        self._conn.execute(f"DROP DATABASE IF EXISTS {self._conn.database}")
        self.close()

    def close(self) -> None:
        self._conn.close()
