"""`/api/meshscope/logs`: newest first, by service, minimum severity and text, paged reads."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.log_search import log_search_routes, newest_logs
from meshscope.model.attributes import AttrValue
from meshscope.model.logs import LogRecord, Severity
from meshscope.store.base import LogQuery
from meshscope.store.factory import open_storage
from meshscope.store.memory import MemoryLogStore
from tests.ui.known_data import ERROR_EVERY, FROM_MS, TO_MS, TRACES, known_app, trace_id

RANGE = {"start": FROM_MS, "end": TO_MS}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with known_app() as app:
        yield TestClient(app.ui)


def test_newest_first_with_trace_ids(client: TestClient) -> None:
    data = client.get("/api/meshscope/logs", params={**RANGE, "service": "cart"}).json()["data"]
    assert len(data) == TRACES + TRACES // ERROR_EVERY + 1
    times = [int(r["timeUnixNano"]) for r in data]
    assert times == sorted(times, reverse=True)
    assert data[0]["body"] == f"reserved items for order {TRACES - 1}"
    assert data[0]["traceID"] == trace_id(TRACES - 1)


def test_severity_text_and_limit(client: TestClient) -> None:
    params = {**RANGE, "severity": "error", "limit": "3"}
    data = client.get("/api/meshscope/logs", params=params).json()["data"]
    assert [r["body"] for r in data] == [f"payment declined for order {n}" for n in (36, 32, 28)]
    data = client.get("/api/meshscope/logs", params={**RANGE, "q": "order 3"}).json()["data"]
    assert {r["body"].split()[-1] for r in data} == {"3", *map(str, range(30, 40))}
    assert client.get("/api/meshscope/logs", params={"service": "nobody"}).json()["data"] == []


def test_trace_keeps_only_that_traces_records(client: TestClient) -> None:
    params = {**RANGE, "trace": trace_id(8).upper()}  # an error trace: two records
    data = client.get("/api/meshscope/logs", params=params).json()["data"]
    assert [r["body"] for r in data] == [
        "payment declined for order 8",
        "reserved items for order 8",
    ]
    assert {r["traceID"] for r in data} == {trace_id(8)}


@pytest.mark.parametrize(
    "params",
    [{"severity": "loud"}, {"limit": "0"}, {"limit": "5000"}, {"access": "maybe"},
     {"start": "10", "end": "5"}, {"end": "soon"}, {"trace": "not-a-trace"},
     {"trace": "1" * 33}],
)  # fmt: skip
def test_bad_parameters_are_400(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/api/meshscope/logs", params=params)
    assert response.status_code == 400
    assert response.json()["error"]


def test_paging_keeps_every_record_at_a_shared_instant() -> None:
    store = MemoryLogStore()
    # 700 records at one instant, 600 at the next: pages of 500 must split both instants.
    records = [LogRecord(1000, f"a{i}", "s", Severity.INFO) for i in range(700)]
    records += [LogRecord(2000, f"b{i}", "s", Severity.WARN) for i in range(600)]
    store.write_logs(records)
    everything = newest_logs(store, LogQuery(end_ns=3000), Severity.UNSPECIFIED, 2000, page=500)
    assert len(everything) == 1300 and len({r.body for r in everything}) == 1300
    assert [r.time_ns for r in everything] == [2000] * 600 + [1000] * 700
    warn = newest_logs(store, LogQuery(end_ns=3000), Severity.WARN, 2000, page=500)
    assert len(warn) == 600


def test_ids_with_leading_zeros_keep_every_digit(tmp_path: Path) -> None:
    """DuckDB keeps ids as integers: the JSON must still carry 32 and 16 hex digits."""
    storage = open_storage("duckdb", str(tmp_path / "store.duckdb"))
    try:
        trace, span = "00f1" + "0" * 12 + "0e2d3c4b5a697887", "0bab262c5160c1d7"
        storage.logs.write_logs(
            [LogRecord(1500 * 10**6, "x", "s", Severity.INFO, "INFO", trace, span)]
        )
        client = TestClient(Starlette(routes=log_search_routes(storage)))
        data = client.get("/api/meshscope/logs", params={"start": 1000, "end": 2000}).json()["data"]
        assert [(r["traceID"], r["spanID"]) for r in data] == [(trace, span)]
    finally:
        storage.close()


def test_a_record_with_nan_or_bytes_attributes_is_answered(tmp_path: Path) -> None:
    """One record with a NaN or infinite attribute (OTLP allows any double) and one with
    bytes: the page still answers, those values as null and hex, as the trace-logs route."""
    storage = open_storage("duckdb", str(tmp_path / "store.duckdb"))
    try:
        odd: dict[str, AttrValue] = {
            "nan": math.nan,
            "inf": -math.inf,
            "raw": b"\x01\xff",
            "n": 2.5,
        }
        storage.logs.write_logs(
            [LogRecord(1500 * 10**6, "odd", "s", Severity.INFO, attributes=odd),
             LogRecord(1600 * 10**6, "plain", "s", Severity.INFO)]
        )  # fmt: skip
        client = TestClient(Starlette(routes=log_search_routes(storage)))
        response = client.get("/api/meshscope/logs", params={"start": 1000, "end": 2000})
        assert response.status_code == 200
        data = response.json()["data"]
        assert [r["body"] for r in data] == ["plain", "odd"]
        assert data[1]["attributes"] == {"nan": None, "inf": None, "raw": "01ff", "n": 2.5}
    finally:
        storage.close()
