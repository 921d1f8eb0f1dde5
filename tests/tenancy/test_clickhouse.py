"""Tenancy on the ClickHouse backend (a real server): each tenant's rows in a database of its
own, reads through the tenant views see only theirs, and a restart finds the tenants again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meshscope.app import App, build
from meshscope.config import load_config
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind
from meshscope.store.base import TraceQuery
from meshscope.store.clickhouse.connection import Connection
from meshscope.tenancy.context import as_tenants
from meshscope.tenancy.places import clickhouse_database
from tests.conformance import clickhouse_server


def _app(database: str) -> App:
    env = {
        "MESHSCOPE_STORAGE__KIND": "clickhouse",
        "MESHSCOPE_STORAGE__CLICKHOUSE__DSN": clickhouse_server.dsn(),
        "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": database,
        "MESHSCOPE_PIPELINE__INGEST_WORKERS": "0",
        "MESHSCOPE_TENANCY__ENABLED": "true",
    }
    return build(load_config(env=env))


def _span(service: str, trace_id: str) -> Span:
    return Span(
        trace_id=trace_id, span_id="a1" * 8, parent_span_id="", name="op", service=service,
        kind=SpanKind.SERVER, start_ns=1_700_000_000 * 10**9, end_ns=1_700_000_001 * 10**9,
    )  # fmt: skip


async def _submit(app: App, tenant: str, batch: Batch) -> None:
    with as_tenants(tenant):
        await app.sink.submit(batch)


def test_tenants_have_databases_of_their_own(tmp_path: Path) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    database = clickhouse_server.database_for(tmp_path)
    app = _app(database)
    app.start()
    try:
        asyncio.run(_submit(app, "team.a", Batch(spans=[_span("alpha", "1" * 32)])))
        asyncio.run(_submit(app, "team_b", Batch(spans=[_span("bravo", "2" * 32)])))
        query = TraceQuery(start_ns=0, limit=10)
        with as_tenants("team.a"):
            assert app.storage.catalog.services() == ["alpha"]
            assert app.storage.traces.find_trace_ids(query) == ["1" * 32]
            assert app.storage.traces.get_trace("2" * 32) == []
        with as_tenants("team_b"):
            assert app.storage.catalog.services() == ["bravo"]
        with as_tenants("default"):
            assert app.storage.catalog.services() == []
    finally:
        app.stop()
    names = {
        row[0]
        for row in Connection(clickhouse_server.dsn(), database).execute(
            "SELECT name FROM system.databases"
        )
    }
    assert {clickhouse_database(database, t) for t in ("team.a", "team_b")} <= names
    again = _app(database)  # the tenants' databases are found at start
    try:
        assert again.stacks is not None
        assert sorted(s.tenant for s in again.stacks.all()) == ["default", "team.a", "team_b"]
        with as_tenants("team_b"):
            assert again.storage.traces.get_trace("2" * 32)[0].service == "bravo"
    finally:
        again.start()
        again.stop()
