"""Retention: whole days older than the cut go by `ALTER TABLE ... DROP PARTITION` (cheap,
on every server version); the rows of the cut's own day that are older go by `ALTER TABLE
... DELETE`, a mutation that rewrites that day's parts, awaited so that `expire` returning
means they are gone (18.16 has no `mutations_sync`)."""

from __future__ import annotations

import datetime as dt
import time

from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import EXPIRING, LATEST, LEGACY_BY_TRACE, exists

MUTATION_TIMEOUT_S = 120.0


def _utc_day(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns // 10**9, dt.UTC).date()


def expire(conn: Connection, before_ns: int) -> int:
    """Delete rows older than `before_ns` from every expiring table; the number of spans,
    log records and samples deleted (a span counts once, not once per span table)."""
    cut = _utc_day(before_ns)
    db = conn.database
    deleted = 0
    for table, column in EXPIRING:
        if not exists(conn, table):
            continue
        counted = table not in ("trace_spans", LEGACY_BY_TRACE, LATEST)
        days = conn.rows(
            "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s"
            " AND table = %(table)s AND active",
            {"db": db, "table": table},
        )
        for (partition,) in days:
            day = dt.date.fromisoformat(partition.strip("'"))
            if day >= cut:
                continue
            if counted:
                deleted += _count(conn, table, f"day = '{day.isoformat()}'")
            conn.execute(f"ALTER TABLE {db}.{table} DROP PARTITION '{day.isoformat()}'")
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
