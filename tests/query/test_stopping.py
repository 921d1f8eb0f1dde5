"""A store statement that never checks the query budget is stopped when the budget is spent
(`meshscope.stopping`): DuckDB's statement is interrupted, ClickHouse's killed (and bounded
by `max_execution_time` on the server), and a read route answers 503 for it. The statements
here would run for minutes (10^11 rows scanned); each test waits at most 60 s for them to
stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import duckdb
import pytest
from clickhouse_driver import errors as ch_errors
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from meshscope import stopping
from meshscope.api.handlers import status_of, threaded
from meshscope.query.budget import Budget, QueryLimits, running
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.duckdb.database import Database
from tests.conformance import clickhouse_server

LONG_DUCKDB = "SELECT count(*) FROM range(100000000000) t(a) WHERE a % 7 = 3"
LONG_CLICKHOUSE = "SELECT count() FROM numbers(100000000000) WHERE number % 7 = 3"
E = TypeVar("E", bound=Exception)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "stop.duckdb")
    yield database
    database.close()


def _budget(seconds: float) -> Budget:
    return Budget(QueryLimits(timeout_seconds=seconds))


def test_a_duckdb_statement_is_interrupted_at_the_deadline(db: Database) -> None:
    began = time.monotonic()
    with running(_budget(0.3)), pytest.raises(duckdb.InterruptException):
        db.read().execute(LONG_DUCKDB).fetchall()
    assert time.monotonic() - began < 60


def _cancelled_midway(statement: Callable[[], object], error: type[E]) -> E:
    """Run `statement` in a thread under an hour's budget, cancel the budget after 0.3 s (what a
    read handler does when the client disconnects); the `error` it stopped with."""
    budget = _budget(3600)  # the deadline alone would let it run for an hour
    failed: list[E] = []

    def query() -> None:
        with running(budget):
            try:
                statement()
            except error as stopped:
                failed.append(stopped)

    thread = threading.Thread(target=query)
    thread.start()
    time.sleep(0.3)
    budget.cancel()
    thread.join(60)
    assert not thread.is_alive() and len(failed) == 1
    return failed[0]


def test_a_duckdb_statement_is_interrupted_when_its_client_goes_away(db: Database) -> None:
    _cancelled_midway(lambda: db.read().execute(LONG_DUCKDB).fetchall(), duckdb.InterruptException)


def test_nothing_is_interrupted_after_the_budgeted_block(db: Database) -> None:
    with running(_budget(0.1)):
        cursor = db.read()  # registers the interrupt of this thread's cursor
    # The same cursor, no budget now, busy (~1 s) while the old budget runs out: it must not
    # be interrupted by it.
    assert cursor.execute("SELECT count(*) FROM range(300000000) t(a) WHERE a % 7 = 3").fetchall()
    assert stopping.remaining_s() == float("inf")


def test_the_watchdog_is_parked_while_nothing_registered_can_need_stopping(
    db: Database,
) -> None:
    with running(_budget(5.0)):
        db.read()  # a registration: the watchdog looks at it every POLL_S
        time.sleep(5 * stopping.POLL_S)
    first = stopping._WATCHDOG.sweeps
    assert first > 0
    time.sleep(6 * stopping.POLL_S)  # no block open: at most the sweep under way ends
    parked = stopping._WATCHDOG.sweeps
    assert parked <= first + 1
    time.sleep(6 * stopping.POLL_S)
    assert stopping._WATCHDOG.sweeps == parked


def test_a_read_route_answers_503_for_an_interrupted_statement(db: Database) -> None:
    def work(request: object) -> list[tuple[int]]:
        rows: list[tuple[int]] = db.read().execute(LONG_DUCKDB).fetchall()
        return rows

    handler = threaded(
        work,
        ok=lambda rows: JSONResponse({"rows": rows}),
        refuse=lambda error: Response(str(error), status_of(error)),
    )
    app = Starlette(routes=[Route("/slow", handler)])
    app.state.query_limits = QueryLimits(timeout_seconds=0.5)
    response = TestClient(app).get("/slow")
    assert response.status_code == 503
    assert "timed out" in response.text


@pytest.fixture
def clickhouse(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    yield from clickhouse_server.fresh_storage(tmp_path)


def test_a_clickhouse_statement_is_killed_at_the_deadline(clickhouse: ClickHouseStorage) -> None:
    began = time.monotonic()
    with running(_budget(0.5)), pytest.raises(ch_errors.ServerException) as raised:
        clickhouse._conn.rows(LONG_CLICKHOUSE)
    assert raised.value.code == ch_errors.ErrorCodes.QUERY_WAS_CANCELLED  # KILL QUERY
    assert time.monotonic() - began < 60
    # Without a budget nothing is sent: a short query still answers.
    assert clickhouse._conn.rows("SELECT count() FROM numbers(1000)") == [(1000,)]


def test_the_server_stops_a_clickhouse_statement_it_was_not_told_to_kill(
    clickhouse: ClickHouseStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`max_execution_time` bounds the statement on the server even when the kill cannot
    be sent."""
    monkeypatch.setattr(type(clickhouse._conn), "_kill_soon", lambda self, query_id: None)
    began = time.monotonic()
    with running(_budget(0.5)), pytest.raises(ch_errors.ServerException) as raised:
        clickhouse._conn.rows(LONG_CLICKHOUSE)
    assert raised.value.code == ch_errors.ErrorCodes.TIMEOUT_EXCEEDED
    assert time.monotonic() - began < 60


def test_a_clickhouse_statement_is_killed_when_its_client_goes_away(
    clickhouse: ClickHouseStorage,
) -> None:
    stopped = _cancelled_midway(
        lambda: clickhouse._conn.rows(LONG_CLICKHOUSE), ch_errors.ServerException
    )
    assert stopped.code == ch_errors.ErrorCodes.QUERY_WAS_CANCELLED


def test_kills_go_over_one_client(clickhouse: ClickHouseStorage) -> None:
    conn = clickhouse._conn

    def killed() -> None:
        with running(_budget(0.2)), pytest.raises(ch_errors.ServerException):
            conn.rows(LONG_CLICKHOUSE)

    killed()  # this thread's client and the kills' are open now
    opened = len(conn._clients)
    for _ in range(3):
        killed()
    assert len(conn._clients) == opened
