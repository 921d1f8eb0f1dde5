"""Calls stored as typed access-log rows read back exactly as `access_log(call)` renders them."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from meshscope.store.twophase import write_encoded

names = st.text(st.characters(codec="utf-8"), max_size=12)
hex_ids = st.integers(1, 2**128 - 1).map(lambda v: f"{v:032x}")
calls = st.builds(
    Call,
    source=names,
    target=names,
    time_ns=st.integers(0, 2**62),
    failed=st.booleans(),
    client_duration_ns=st.integers(0, 10**13),
    server_duration_ns=st.integers(0, 10**13),
    connection_type=st.sampled_from(["", "database", "virtual_node", "messaging_system"]),
    status_code=st.integers(0, 599),
    method=st.sampled_from(["", "GET", "POST"]),
    path=names,
    trace_id=hex_ids,
    span_id=st.integers(1, 2**64 - 1).map(lambda v: f"{v:016x}"),
)


@settings(max_examples=30, deadline=None)
@given(st.lists(calls, min_size=1, max_size=20))
def test_typed_access_logs_read_back_as_access_log_renders_them(batch: list[Call]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        _check_round_trip(Path(directory) / "a.duckdb", batch)


def _check_round_trip(path: Path, batch: list[Call]) -> None:
    storage = DuckDBStorage(path)
    try:
        storage.write_encoded([], calls=batch)
        found = storage.logs.find_logs(LogQuery(access=True))
        assert [record.time_ns for record in found] == sorted(call.time_ns for call in batch)
        # Records of one write at the same time come in no promised order (rows are grouped
        # by trace), so both sides are compared in one order.
        assert sorted(found, key=_order) == sorted(map(access_log, batch), key=_order)
        assert storage.logs.find_logs(LogQuery(access=False)) == []
    finally:
        storage.close()


def _order(record: LogRecord) -> tuple[int, str, str, str]:
    return record.time_ns, record.trace_id, record.span_id, record.body


def _call(i: int, source: str, status: int = 200) -> Call:
    return Call(
        source, "db", 1_000 + i, status >= 500, 2_000_000, 1_500_000, "", status, "GET", "/q",
        f"{i + 1:032x}", f"{i + 1:016x}",
    )  # fmt: skip


def test_access_logs_answer_the_same_queries_on_duckdb_and_memory(tmp_path: Path) -> None:
    batch = [_call(i, "api" if i % 2 else "web", 500 if i % 3 == 0 else 200) for i in range(9)]
    duckdb = DuckDBStorage(tmp_path / "a.duckdb")
    memory = MemoryStorage()
    try:
        for storage in (duckdb, memory):
            write_encoded(storage, [], calls=batch)
        queries = [
            LogQuery(),
            LogQuery(access=True, attributes={"source.service": "api"}),
            LogQuery(attributes={"http.response.status_code": "500"}),
            LogQuery(trace_id=f"{4:032x}"),
            LogQuery(service="db", body_contains=("web -> db",), newest_first=True, limit=2),
        ]
        for query in queries:
            assert duckdb.logs.find_logs(query) == memory.logs.find_logs(query), query
        assert duckdb.logs.log_counts() == memory.logs.log_counts() == {"db": 9}
        assert duckdb.expire(1_005) == 5
        assert duckdb.logs.log_counts() == {"db": 4}
    finally:
        duckdb.close()
