"""The ClickHouse backend's `modern` schema profile (ADR 0011): which servers get it, and its
DDL and the stores' queries on embedded ClickHouse 26.x (chdb-core), since the only server
here is 18.16. The full storage conformance suite also runs on it (backend
`clickhouse-modern`); these tests check what the suite cannot see: TTL, codecs, skip
indexes and LowCardinality in the system tables, and the TTL kept in step with the retention.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span, SpanKind
from meshscope.store.base import LabelMatcher, LogQuery, MatchOp, TraceQuery
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.schema import (
    COMPAT,
    EXPIRING,
    LEGACY_BY_TRACE,
    MODERN,
    profile_for,
    statements,
    ttl_days,
)
from meshscope.store.clickhouse.span_rows import encode_spans
from tests.conformance import chdb_session, clickhouse_server
from tests.store import clickhouse_access_checks

S = 1_000_000_000
DAY = 86_400 * S
END = 2**62


@pytest.mark.parametrize(
    ("version", "name"),
    [
        ("18.16.1", "compat"),  # Debian's server
        ("19.14.3.3", "compat"),  # ttl_only_drop_parts, but skip indexes still experimental
        ("20.1.2.4", "modern"),
        ("24.8.4.13", "modern"),
        ("26.9.2.1", "modern"),  # chdb-core 26.9
        ("", "compat"),
        ("unknown", "compat"),
    ],
)
def test_the_profile_follows_the_server_version(version: str, name: str) -> None:
    assert profile_for(version).name == name


CREATED_EXPIRING = [table for table, _ in EXPIRING if table != LEGACY_BY_TRACE]
"""The expiring tables a new database has (the legacy one only older databases have)."""


def test_the_ttl_keeps_whole_days_beyond_the_retention() -> None:
    assert [ttl_days(hours) for hours in (1, 24, 25, 168, 720)] == [2, 2, 3, 8, 31]


def test_the_compat_ddl_uses_nothing_18_16_lacks() -> None:
    ddl = "\n".join(statements("db", COMPAT, ttl_days=8))
    for feature in ("LowCardinality", "CODEC", "INDEX", "TTL", "ttl_only_drop_parts"):
        assert feature not in ddl


class Recording(chdb_session.ChdbConnection):
    """Keeps the SQL the stores send (as substituted for the server)."""

    def __init__(self, database: str) -> None:
        super().__init__(database)
        self.sent: list[str] = []

    def execute(self, sql: str, params: Any = None, arrays: bool = False, **kw: Any) -> Any:
        self.sent.append(chdb_session.substitute(sql, params))
        return super().execute(sql, params, arrays, **kw)


def _open(directory: Path, retention_hours: float | None = 168.0) -> ClickHouseStorage:
    reason = chdb_session.available()
    if reason:
        pytest.skip(reason)
    connection = Recording(clickhouse_server.database_for(directory))
    return ClickHouseStorage("", retention_hours=retention_hours, connection=connection)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    opened = _open(tmp_path)
    yield opened
    opened.drop()


def _rows(storage: ClickHouseStorage, sql: str) -> list[tuple[Any, ...]]:
    return storage._conn.rows(sql, {"db": storage._conn.database})


def _engines(storage: ClickHouseStorage) -> dict[str, str]:
    rows = _rows(storage, "SELECT name, engine_full FROM system.tables WHERE database = %(db)s")
    return dict(rows)


def test_chdb_gets_the_modern_profile(storage: ClickHouseStorage) -> None:
    assert storage.server_version.startswith("26.")
    assert storage.profile == MODERN


def test_expiring_tables_have_a_ttl_that_drops_whole_parts(storage: ClickHouseStorage) -> None:
    engines = _engines(storage)
    assert LEGACY_BY_TRACE not in engines  # never created in a new database
    for table in CREATED_EXPIRING:
        assert "TTL day + toIntervalDay(8)" in engines[table], table
        assert "ttl_only_drop_parts = 1" in engines[table], table
    for table in ("series", "families", "catalog"):
        assert "TTL" not in engines[table], table


def test_no_ttl_without_a_retention(tmp_path: Path) -> None:
    storage = _open(tmp_path, retention_hours=None)
    try:
        assert all("TTL" not in engine for engine in _engines(storage).values())
    finally:
        storage.drop()


def test_codecs_low_cardinality_and_the_trace_id_index(storage: ClickHouseStorage) -> None:
    columns = {
        (table, name): (kind, codec)
        for table, name, kind, codec in _rows(
            storage,
            "SELECT table, name, type, compression_codec FROM system.columns"
            " WHERE database = %(db)s",
        )
    }
    for table, name in [
        ("spans", "service"), ("spans", "name"),
        ("logs", "service"), ("series", "name"), ("samples", "name"), ("families", "name"),
        ("catalog", "service"), ("catalog", "name"), ("access_logs", "target"),
        ("access_logs", "source"), ("access_logs", "method"), ("access_logs", "connection_type"),
    ]:  # fmt: skip
        assert columns[table, name][0] == "LowCardinality(String)", (table, name)
    for (table, name), (_, codec) in columns.items():
        if name != "day":
            assert "ZSTD(1)" in codec, (table, name)
    assert columns["spans", "start_ns"][1] == "CODEC(Delta(8), ZSTD(1))"
    assert columns["spans", "duration_ns"][1] == "CODEC(T64, ZSTD(1))"
    assert columns["access_logs", "duration_ns"][1] == "CODEC(T64, ZSTD(1))"
    assert columns["access_logs", "time_ns"][1] == "CODEC(Delta(8), ZSTD(1))"
    assert columns["trace_spans", "trace_hi"][1] == "CODEC(Delta(8), ZSTD(1))"
    assert columns["samples", "time_ns"][1] == "CODEC(DoubleDelta, ZSTD(1))"
    indexes = _rows(
        storage,
        "SELECT table, name, type, expr FROM system.data_skipping_indices"
        " WHERE database = %(db)s ORDER BY table",
    )
    assert indexes == [
        ("access_logs", "trace_id", "bloom_filter", "trace_hi"),
        ("logs", "trace_id", "bloom_filter", "trace_hi"),
        ("spans", "trace_id", "bloom_filter", "trace_hi"),
    ]


def _trace(n: int) -> str:
    return f"{0x5EED0000 + n:032x}"


def test_the_stores_queries_run_on_the_modern_tables(storage: ClickHouseStorage) -> None:
    now = time.time_ns() - 3600 * S
    spans = [
        Span(_trace(n), f"{n + 1:016x}", "GET /cart" if n % 2 else "POST /pay", "cart",
             now + n * S, now + n * S + 5_000, kind=SpanKind.SERVER,
             attributes={"http.status_code": 200 + n % 3, "retry": n % 4 == 0},
             resource={"service.name": "cart", "k8s.pod.name": f"cart-{n % 2}"})
        for n in range(40)
    ]  # fmt: skip
    logs = [LogRecord(now + n * S, f"line {n}", "cart" if n % 2 else "web",
                      trace_id=_trace(n)) for n in range(40)]  # fmt: skip
    points = [
        MetricPoint("requests_total", (("route", route),), now + n * 15 * S, value=float(n))
        for n in range(20) for route in ("/a", "/b")
    ]  # fmt: skip
    storage.write_batch(spans=spans, logs=logs, points=points)
    # Trace by id (trace_spans, by its primary key).
    [found] = storage.traces.get_trace(_trace(7))
    assert found == spans[7]
    # Search by service, operation and an attribute (spans), ranked by the trace's start.
    query = TraceQuery(service="cart", operation="GET /cart", start_ns=0, end_ns=END,
                       attributes={"http.status_code": "201"}, limit=100)  # fmt: skip
    expected = [_trace(n) for n in range(39, -1, -1) if n % 2 and n % 3 == 1]
    assert storage.traces.find_trace_ids(query) == expected
    # Logs by service, and by trace id (the bloom filter's query).
    cart = storage.logs.find_logs(LogQuery(service="cart", start_ns=0, end_ns=END))
    assert [r.body for r in cart] == [f"line {n}" for n in range(1, 40, 2)]
    [by_trace] = storage.logs.find_logs(LogQuery(trace_id=_trace(8), start_ns=0, end_ns=END))
    assert by_trace == logs[8]
    # Series by name, then samples by fingerprint (a matcher narrows them: fingerprint IN).
    [series] = storage.metrics.select(
        "requests_total", [LabelMatcher("route", MatchOp.EQ, "/b")], 0, END
    )
    assert series.labels == (("route", "/b"),)
    assert [p.value for p in series.samples] == [float(n) for n in range(20)]
    sent = storage._conn.sent  # type: ignore[attr-defined]
    assert any("fingerprint IN (" in sql for sql in sent)
    # The trace-id lookup in logs can skip granules by the bloom filter.
    [logs_sql] = [
        sql for sql in sent if "FROM" in sql and ".logs WHERE" in sql and "trace_hi =" in sql
    ]
    plan = "\n".join(row[0] for row in storage._conn.rows(f"EXPLAIN indexes = 1 {logs_sql}"))
    assert "Skip" in plan
    assert "Name: trace_id" in plan


def _day_start(days_ago: int) -> int:
    today = dt.datetime.now(dt.UTC).date()
    midnight = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(), dt.UTC)
    return int(midnight.timestamp()) * S


def test_access_logs_read_back_as_access_log_renders_them(storage: ClickHouseStorage) -> None:
    clickhouse_access_checks.check_rendering(storage, _day_start(0))


def test_log_filters_find_access_logs(storage: ClickHouseStorage) -> None:
    clickhouse_access_checks.check_filters(storage, _day_start(0))


def test_partitions_are_dropped_by_expire_too(storage: ClickHouseStorage) -> None:
    # Within the TTL (8 days): expire() still drops whole days and deletes older rows.
    times = [_day_start(days_ago) + hour * 3600 * S for days_ago in (3, 2, 1) for hour in (6, 18)]
    storage.write_encoded(
        [encode_spans([Span(_trace(n), f"{n + 1:016x}", "op", "web", t, t + S,
                            resource={"service.name": "web"})
                       for n, t in enumerate(times)])],
        logs=[LogRecord(t, "line", "web") for t in times],
        points=[MetricPoint("m", (), t, value=1.0) for t in times],
        calls=[Call("api", "web", t, False, 1_000) for t in times],
    )  # fmt: skip
    # Spans (counted once), logs, access logs and samples of 5 of the 6 times.
    assert storage.expire(_day_start(1) + 12 * 3600 * S) == 4 * 5
    assert storage.traces.span_counts() == {"web": 1}
    assert storage.logs.log_counts() == {"web": 2}
    for table in CREATED_EXPIRING:
        [(parts,)] = _rows(
            storage,
            "SELECT uniqExact(partition) FROM system.parts WHERE database = %(db)s"
            f" AND table = '{table}' AND active AND rows > 0",
        )
        assert parts == 1, table


def test_rows_older_than_the_ttl_are_dropped_by_the_server(storage: ClickHouseStorage) -> None:
    old, recent = _day_start(20), _day_start(0)
    storage.write_batch(
        spans=[Span(_trace(1), "01", "op", "web", old, old + S),
               Span(_trace(2), "02", "op", "web", recent, recent + S)],
        logs=[LogRecord(old, "old", "web"), LogRecord(recent, "recent", "web")],
    )  # fmt: skip
    storage.write_encoded([], calls=[Call("api", "web", old, False, 1_000)])
    for table in ("spans", "trace_spans", "logs", "access_logs"):
        storage._conn.execute(f"OPTIMIZE TABLE {storage._conn.database}.{table} FINAL")
    assert storage.traces.span_counts() == {"web": 1}
    assert storage.traces.get_trace(_trace(1)) == []
    assert [r.body for r in storage.logs.find_logs(LogQuery(start_ns=0, end_ns=END))] == ["recent"]


def test_the_ttl_follows_a_changed_retention(tmp_path: Path) -> None:
    # Tables made without a TTL (no retention; or by the compat profile before an upgrade).
    _open(tmp_path, retention_hours=None).close()
    storage = _open(tmp_path, retention_hours=720.0)
    try:
        engines = _engines(storage)
        for table in CREATED_EXPIRING:
            assert "TTL day + toIntervalDay(31)" in engines[table], table
            assert "ttl_only_drop_parts = 1" in engines[table], table
        storage.close()
        storage = _open(tmp_path, retention_hours=48.0)
        assert "TTL day + toIntervalDay(3)" in _engines(storage)["spans"]
        storage.close()
        # Unchanged: no ALTER at all.
        storage = _open(tmp_path, retention_hours=48.0)
        assert not [sql for sql in storage._conn.sent if "ALTER" in sql]  # type: ignore[attr-defined]
    finally:
        storage.drop()
