"""Retention: whole days older than the cut go by `ALTER TABLE ... DROP PARTITION` (cheap,
on every server version); the rows of the cut's own day that are older go by `ALTER TABLE
... DELETE`, a mutation that rewrites that day's parts, awaited so that `expire` returning
means they are gone (18.16 has no `mutations_sync`). `resources` goes by whole days only: a
day's row serves every span of that day (ADR 0026)."""

from __future__ import annotations

import datetime as dt
import logging
import time

from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import (
    EXPIRING,
    LATEST,
    LEGACY_BY_TRACE,
    RESOURCES,
    exists,
)

MUTATION_TIMEOUT_S = 120.0

log = logging.getLogger(__name__)


def _utc_day(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns // 10**9, dt.UTC).date()


_ZERO_DATE = "0000-00-00"
"""How servers before 20.x show the Date of 1970-01-01 (a row whose time was 0 ns): its
partition's name. It raised ValueError here, which stopped retention for good."""


def _partition_day(text: str) -> dt.date | None:
    """The day a partition holds (tables are partitioned by `day`); None for a name that
    is not one (left alone, logged), so one odd partition never stops retention."""
    if text == _ZERO_DATE:
        return dt.date(1970, 1, 1)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        log.warning("clickhouse: partition %r is not a day; retention leaves it", text[:40])
        return None


def expire(conn: Connection, before_ns: int) -> int:
    """Delete rows older than `before_ns` from every expiring table; the number of spans,
    log records and samples deleted (a span counts once, not once per span table)."""
    cut = _utc_day(before_ns)
    db = conn.database
    deleted = 0
    for table, column in EXPIRING:
        if not exists(conn, table):
            continue
        counted = table not in ("trace_spans", LEGACY_BY_TRACE, LATEST, RESOURCES)
        days = conn.rows(
            "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s"
            " AND table = %(table)s AND active",
            {"db": db, "table": table},
        )
        for (partition,) in days:
            text = partition.strip("'")
            day = _partition_day(text)
            if day is None or day >= cut:
                continue
            if counted:
                deleted += _count(conn, table, f"day = '{text}'")
            conn.execute(f"ALTER TABLE {db}.{table} DROP PARTITION '{text}'")
        if not column:  # whole days only (`resources`)
            continue
        where = f"day = '{cut.isoformat()}' AND {column} < {int(before_ns)}"
        old = _count(conn, table, where)
        if old:
            conn.execute(f"ALTER TABLE {db}.{table} DELETE WHERE {where}")
            _await_mutations(conn, table)
            if counted:
                deleted += old
    return deleted


def _count(conn: Connection, table: str, where: str) -> int:
    [(count,)] = conn.rows(f"SELECT count() FROM {conn.database}.{table} WHERE {where}")
    return int(count)


def _await_mutations(conn: Connection, table: str) -> None:
    deadline = time.monotonic() + MUTATION_TIMEOUT_S
    while True:
        [(pending,)] = conn.rows(
            "SELECT count() FROM system.mutations WHERE database = %(db)s"
            " AND table = %(table)s AND is_done = 0",
            {"db": conn.database, "table": table},
        )
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"clickhouse: delete in {table} not done after 120 s")
        time.sleep(0.05)
