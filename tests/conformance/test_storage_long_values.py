"""Long filter values and many series reach every store as they are: an answer (here
empty), never a store error. On ClickHouse the values and a selector's series fingerprints
are literals of the statement, which its default `max_query_size` (256 KiB) refused as a
syntax error (a 500); past meshscope's own bound it is a QueryTooLargeError (a 400)."""

from __future__ import annotations

import pytest

from meshscope.model.metrics import MetricPoint
from meshscope.store.base import (
    LabelMatcher,
    LogQuery,
    MatchOp,
    QueryTooLargeError,
    Storage,
    TraceQuery,
)
from meshscope.store.clickhouse.connection import MAX_QUERY_BYTES, Connection
from tests.conformance import clickhouse_server

LONG = "k" * 300_000  # over ClickHouse's default max_query_size once in the SQL


def test_long_filter_values_find_nothing(storage: Storage) -> None:
    storage.metrics.write_points([MetricPoint("up", (("job", "a"),), 10**18, value=1.0)])
    assert storage.traces.find_trace_ids(TraceQuery(attributes={LONG: "v"})) == []
    assert storage.traces.find_trace_ids(TraceQuery(service=LONG, operation=LONG)) == []
    assert storage.logs.find_logs(LogQuery(body_contains=(LONG,), service=LONG)) == []
    assert storage.metrics.select(LONG, [], 0, 2 * 10**18) == []
    assert (
        storage.metrics.select("up", [LabelMatcher("job", MatchOp.EQ, LONG)], 0, 2 * 10**18) == []
    )


def test_a_selector_of_many_series_reads_them_all(storage: Storage) -> None:
    count = 15_000  # ~21 bytes of SQL a fingerprint: past 256 KiB
    storage.metrics.write_points(
        [MetricPoint("wide", (("i", str(i)),), 10**18, value=float(i)) for i in range(count)]
    )
    not_x = [LabelMatcher("i", MatchOp.NE, "x")]
    found = storage.metrics.select_values("wide", not_x, 0, 2 * 10**18)
    assert len(found) == count
    assert sum(float(s.value.sum()) for s in found) == sum(range(count))
    assert len(storage.metrics.latest("wide", not_x, 10**18, 10**9)) == count


def test_a_statement_past_the_bound_is_a_400_error_not_a_store_failure() -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    conn = Connection(clickhouse_server.dsn(), "system")
    try:
        with pytest.raises(QueryTooLargeError):
            conn.rows("SELECT %(v)s", {"v": "x" * (MAX_QUERY_BYTES + 1)})
        with pytest.raises(QueryTooLargeError):  # the protocol cuts 16 MiB: never sent
            conn.rows("SELECT %(v)s", {"v": "x" * 2**24})
        assert conn.rows("SELECT length(%(v)s)", {"v": LONG}) == [(len(LONG),)]
    finally:
        conn.close()
    small = Connection(clickhouse_server.dsn(), "system", {"max_query_size": 1000})
    try:  # a server (or profile) bound below meshscope's: its refusal is a 400 too
        with pytest.raises(QueryTooLargeError):
            small.rows("SELECT %(v)s", {"v": "x" * 2000})
    finally:
        small.close()
