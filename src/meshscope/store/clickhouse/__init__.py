"""The ClickHouse backend: every pillar in a ClickHouse database, over the native protocol."""

from meshscope.store.clickhouse.storage import ClickHouseStorage, ClickHouseUnavailableError

__all__ = ["ClickHouseStorage", "ClickHouseUnavailableError"]
