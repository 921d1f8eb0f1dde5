"""Open a storage backend by name: the one place that knows every backend."""

from __future__ import annotations

from pathlib import Path

from meshscope.store.base import Storage

KINDS = ("memory", "duckdb", "clickhouse")
"""Every storage backend by its `storage.kind` name."""


class StorageOpenError(Exception):
    """The store cannot be opened (a bad setting, or its server cannot be reached); the
    message says why, for one line at start-up."""


DEFAULT_DUCKDB_PATH = "meshscope.duckdb"


def open_storage(
    kind: str,
    path: str | None = None,
    memory_limit: str | None = None,
    sample_cache_bytes: int | None = None,
    clickhouse_dsn: str = "",
    clickhouse_database: str = "meshscope",
    retention_hours: float | None = None,
    clickhouse_shards: tuple[str, ...] = (),
    clickhouse_cluster: str = "",
) -> Storage:
    """`memory` (path ignored), `duckdb` (a file path; default `meshscope.duckdb`; its
    buffer pool bounded by `memory_limit`, DuckDB's default when None) or `clickhouse` (the
    server `clickhouse_dsn` names, tables in `clickhouse_database`; `retention_hours`
    becomes a TTL on servers whose profile has one, ADR 0011); with `clickhouse_shards`,
    the servers they name, the shards of `clickhouse_cluster` (ADR 0015)."""
    if kind == "clickhouse":
        from meshscope.store.clickhouse import ClickHouseStorage, ClickHouseUnavailableError
        from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage

        try:
            if clickhouse_shards:
                return ShardedClickHouseStorage(
                    clickhouse_shards, clickhouse_database, clickhouse_cluster, retention_hours
                )
            return ClickHouseStorage(clickhouse_dsn, clickhouse_database, retention_hours)
        except (ValueError, ClickHouseUnavailableError) as error:
            raise StorageOpenError(str(error)) from None
    if kind == "memory":
        from meshscope.store.memory import MemoryStorage

        return MemoryStorage()
    if kind == "duckdb":
        from meshscope.store.duckdb import DuckDBStorage

        target = Path(path or DEFAULT_DUCKDB_PATH)
        target.parent.mkdir(parents=True, exist_ok=True)
        if sample_cache_bytes is None:
            return DuckDBStorage(target, memory_limit=memory_limit)
        return DuckDBStorage(
            target, memory_limit=memory_limit, sample_cache_bytes=sample_cache_bytes
        )
    raise ValueError(f"unknown storage kind {kind!r}: expected one of {', '.join(KINDS)}")
