"""A ClickHouse database made before `trace_spans` (ADR 0022): its spans stay in
`spans_by_trace`, a column per field. Opening it keeps them readable by trace id and in
search ranking beside the spans written since, and retention expires them, on the 18.16
server the tests start. And a `trace_spans` made before payload format 2 (with a `seq`
column, format-1 payloads) is read and written on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode
from meshscope.store.base import TraceQuery
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import LEGACY_BY_TRACE
from meshscope.store.clickhouse.span_rows import SEARCH, encode_spans
from meshscope.store.codec import id64, id128
from tests.conformance import clickhouse_server

S = 1_000_000_000
DAY = 86_400 * S
D0 = 1_702_080_000 * S  # 2023-12-09 00:00 UTC
TRACE = f"{0xABC:032x}"

# The table as schema.py created it before `trace_spans` (the compat profile).
LEGACY_DDL = """CREATE TABLE {db}.spans_by_trace (
    trace_hi UInt64, trace_lo UInt64, start_ns Int64, seq UInt64, end_ns Int64,
    span_id UInt64, parent_id UInt64, service String, name String, kind UInt8, status UInt8,
    status_message String, attr_keys Array(String), attr_values Array(String),
    attr_types String, res_keys Array(String), res_values Array(String), res_types String,
    scope_name String, scope_version String, trace_state String, flags UInt32,
    ev_time Array(Int64), ev_name Array(String), ev_keys Array(Array(String)),
    ev_values Array(Array(String)), ev_types Array(String), ln_hi Array(UInt64),
    ln_lo Array(UInt64), ln_span Array(UInt64), ln_keys Array(Array(String)),
    ln_values Array(Array(String)), ln_types Array(String),
    day Date DEFAULT toDate(toDateTime(intDiv(start_ns, 1000000000), 'UTC'))
) ENGINE = MergeTree PARTITION BY day ORDER BY (trace_hi, trace_lo, start_ns)
SETTINGS index_granularity = 1024"""


# `trace_spans` as schema.py created it before payload format 2 (the compat profile).
SEQ_DDL = """CREATE TABLE {db}.trace_spans (
    trace_hi UInt64, trace_lo UInt64, start_ns Int64, seq UInt64, span String,
    day Date DEFAULT toDate(toDateTime(intDiv(start_ns, 1000000000), 'UTC'))
) ENGINE = MergeTree PARTITION BY day ORDER BY (trace_hi, trace_lo, start_ns)
SETTINGS index_granularity = 1024"""


def format_1_payload(span: Span) -> bytes:
    """The payload written before format 2, packed as that code packed it."""
    ak, av, at = encode_attrs(span.attributes)
    rk, rv, rt = encode_attrs(span.resource)
    events = [[e.time_ns - span.start_ns, e.name, *encode_attrs(e.attributes)] for e in span.events]
    links = [[*id128(ln.trace_id), id64(ln.span_id), *encode_attrs(ln.attributes)]
             for ln in span.links]  # fmt: skip
    payload: bytes = msgpack.packb(
        [1, id64(span.span_id), id64(span.parent_span_id), span.end_ns - span.start_ns,
         span.service, span.name, int(span.kind), int(span.status_code), span.status_message,
         ak, av, at, rk, rv, rt, span.scope_name, span.scope_version, span.trace_state,
         span.flags, events, links],
        use_bin_type=True,
    )  # fmt: skip
    return payload


def legacy_row(span: Span, seq: int) -> dict[str, object]:
    """The old table's columns of one span, as the old encoder laid them out."""
    attrs, res = encode_attrs(span.attributes), encode_attrs(span.resource)
    events = [encode_attrs(e.attributes) for e in span.events]
    links = [encode_attrs(link.attributes) for link in span.links]
    hi, lo = id128(span.trace_id)
    return {
        "trace_hi": hi, "trace_lo": lo, "start_ns": span.start_ns, "seq": seq,
        "end_ns": span.end_ns, "span_id": id64(span.span_id),
        "parent_id": id64(span.parent_span_id), "service": span.service, "name": span.name,
        "kind": int(span.kind), "status": int(span.status_code),
        "status_message": span.status_message, "attr_keys": attrs[0],
        "attr_values": attrs[1], "attr_types": attrs[2], "res_keys": res[0],
        "res_values": res[1], "res_types": res[2], "scope_name": span.scope_name,
        "scope_version": span.scope_version, "trace_state": span.trace_state,
        "flags": span.flags, "ev_time": [e.time_ns for e in span.events],
        "ev_name": [e.name for e in span.events], "ev_keys": [e[0] for e in events],
        "ev_values": [e[1] for e in events], "ev_types": [e[2] for e in events],
        "ln_hi": [id128(link.trace_id)[0] for link in span.links],
        "ln_lo": [id128(link.trace_id)[1] for link in span.links],
        "ln_span": [id64(link.span_id) for link in span.links],
        "ln_keys": [a[0] for a in links], "ln_values": [a[1] for a in links],
        "ln_types": [a[2] for a in links],
    }  # fmt: skip


OLD = [
    Span(TRACE, f"{1:016x}", "GET /cart", "web", D0, D0 + 5 * S, kind=SpanKind.SERVER,
         status_code=StatusCode.ERROR, status_message="boom",
         attributes={"http.status_code": 500, "retry": True, "none": None},
         events=(SpanEvent(D0 + S, "exception", {"exception.type": "ValueError"}),),
         links=(SpanLink(f"{0xDEF:032x}", f"{7:016x}", {"w": 1.5}),),
         resource={"service.name": "web"}, scope_name="lib", trace_state="v=1", flags=1),
    Span(TRACE, f"{2:016x}", "SELECT", "db", D0 + S, D0 + 2 * S, f"{1:016x}",
         resource={"service.name": "db"}),
]  # fmt: skip


def opened_with(
    tmp_path: Path, ddl: str, table: str, columns: dict[str, list[object]]
) -> ClickHouseStorage:
    """A database made with `ddl`, `columns` (OLD's spans) inserted into its `table`, then
    opened, with OLD's search rows (the search table's layout did not change)."""
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    database = clickhouse_server.database_for(tmp_path)
    conn = Connection(clickhouse_server.dsn(), database)
    conn.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    conn.execute(ddl.format(db=database))
    conn.insert(table, columns)
    conn.close()
    storage = ClickHouseStorage(clickhouse_server.dsn(), database)
    storage._conn.insert("spans", encode_spans(OLD).table(SEARCH))
    return storage


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    """A database with the old table and two spans of TRACE in it, then opened."""
    rows = [legacy_row(span, seq) for seq, span in enumerate(OLD, start=1)]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    storage = opened_with(tmp_path, LEGACY_DDL, LEGACY_BY_TRACE, columns)
    try:
        yield storage
    finally:
        storage.drop()


def test_old_spans_are_read_beside_new_ones(legacy: ClickHouseStorage) -> None:
    new = Span(TRACE, f"{3:016x}", "charge", "pay", D0 + S // 2, D0 + S, f"{1:016x}")
    legacy.write_batch(spans=[new])
    assert legacy.traces.get_trace(TRACE) == [OLD[0], new, OLD[1]]
    # Search ranks the trace by its first span, which only the old table has.
    other = Span(f"{0x123:032x}", f"{4:016x}", "charge", "pay", D0 + 2 * S, D0 + 3 * S)
    legacy.write_batch(spans=[other])
    query = TraceQuery(service="pay", start_ns=0, end_ns=D0 + DAY, limit=2)
    assert legacy.traces.find_trace_ids(query) == [other.trace_id, TRACE]
    assert legacy.traces.first_starts([id128(TRACE)]) == {id128(TRACE): D0}


def test_retention_expires_the_old_table_too(legacy: ClickHouseStorage) -> None:
    later = D0 + DAY
    legacy.write_batch(spans=[Span(TRACE, f"{3:016x}", "charge", "pay", later, later + S)])
    assert legacy.expire(later) == 2  # the old spans, counted once each (search rows)
    [kept] = legacy.traces.get_trace(TRACE)
    assert kept.span_id == f"{3:016x}"
    [(left,)] = legacy._conn.rows(f"SELECT count() FROM {legacy._conn.database}.spans_by_trace")
    assert left == 0


def test_reads_go_on_once_the_old_table_is_dropped(legacy: ClickHouseStorage) -> None:
    new = Span(TRACE, f"{3:016x}", "charge", "pay", D0 + S // 2, D0 + S, f"{1:016x}")
    legacy.write_batch(spans=[new])
    legacy._conn.execute(f"DROP TABLE {legacy._conn.database}.{LEGACY_BY_TRACE}")
    assert legacy.traces.get_trace(TRACE) == [new]
    query = TraceQuery(service="pay", start_ns=0, end_ns=D0 + DAY, limit=2)
    assert legacy.traces.find_trace_ids(query) == [TRACE]
    assert legacy.expire(D0 + DAY) == 3  # the search rows of both old spans and the new one


def test_a_trace_table_with_seq_and_format_1_payloads(tmp_path: Path) -> None:
    columns: dict[str, list[object]] = {
        "trace_hi": [id128(s.trace_id)[0] for s in OLD],
        "trace_lo": [id128(s.trace_id)[1] for s in OLD],
        "start_ns": [s.start_ns for s in OLD],
        "seq": [7, 8],
        "span": [format_1_payload(s) for s in OLD],
    }
    storage = opened_with(tmp_path, SEQ_DDL, "trace_spans", columns)
    try:
        new = Span(TRACE, f"{3:016x}", "charge", "pay", D0 + S // 2, D0 + S, f"{1:016x}")
        storage.write_batch(spans=[new])
        assert storage.traces.get_trace(TRACE) == [OLD[0], new, OLD[1]]
        query = TraceQuery(service="pay", start_ns=0, end_ns=D0 + DAY, limit=2)
        assert storage.traces.find_trace_ids(query) == [TRACE]
        [(seq, payload)] = storage._conn.rows(
            f"SELECT seq, span FROM {storage._conn.database}.trace_spans"
            f" WHERE start_ns = {new.start_ns}",
            binary=True,
        )
        assert seq == 0 and msgpack.unpackb(payload)[0] == 2  # new rows: no seq, format 2
    finally:
        storage.drop()
