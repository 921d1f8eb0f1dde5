"""Backends the storage conformance suite runs against.

Each backend declares the capabilities it lacks (like Jaeger's storage integration tests);
a test that needs one calls `need(backend, CAPABILITY)` and is skipped for that backend.
To add one, append a `Backend` whose `open` connects to a fresh database,
with `available` returning a reason to skip when its server is not reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshscope.store.base import Storage
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.conformance import chdb_session, clickhouse_server

REOPEN = "reopen"
"""Data survives close() and a new open of the same place."""


@dataclass(frozen=True)
class Backend:
    name: str
    open: Callable[[Path], Storage]
    cannot: frozenset[str] = field(default_factory=frozenset)
    available: Callable[[], str] = lambda: ""  # "" or the reason it cannot run here

    def __str__(self) -> str:
        return self.name


BACKENDS = [
    Backend("memory", lambda _dir: MemoryStorage(), cannot=frozenset({REOPEN})),
    Backend("duckdb", lambda directory: DuckDBStorage(directory / "store.duckdb")),
    # Trace index rows folded into one per trace every 3 index rows (ADR 0020) and folded
    # runs of 4 entries or more spilled to files (ADR 0019), so the suite's traces written in
    # several writes, expired and reopened meet folded rows and spilled runs.
    Backend(
        "duckdb-folding",
        lambda directory: DuckDBStorage(directory / "store.duckdb", fold_rows=3, spill_entries=4),
    ),
    # A real server (tests/conformance/clickhouse_server.py), a database per test directory.
    Backend(
        "clickhouse",
        lambda directory: ClickHouseStorage(
            clickhouse_server.dsn(), clickhouse_server.database_for(directory)
        ),
        available=clickhouse_server.available,
    ),
    # Two shards of the `mesh` cluster (ADR 0015): writes by trace id / fingerprint, reads
    # through Distributed tables, trace by id on its shard.
    Backend(
        "clickhouse-sharded",
        lambda directory: ShardedClickHouseStorage(
            clickhouse_server.shard_dsns(),
            clickhouse_server.database_for(directory),
            clickhouse_server.CLUSTER,
        ),
        available=clickhouse_server.available,
    ),
    # The `modern` profile (LowCardinality, codecs, skip indexes) on embedded ClickHouse 26.x:
    # the same store code, its SQL run in chdb (tests/conformance/chdb_session.py).
    Backend(
        "clickhouse-modern",
        lambda directory: ClickHouseStorage(
            "",
            connection=chdb_session.ChdbConnection(clickhouse_server.database_for(directory)),
        ),
        available=chdb_session.available,
    ),
]


def need(backend: Backend, capability: str) -> None:
    if capability in backend.cannot:
        pytest.skip(f"{backend.name} cannot: {capability}")
