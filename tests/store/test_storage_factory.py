from __future__ import annotations

from pathlib import Path

import pytest

from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.factory import open_storage
from meshscope.store.memory import MemoryStorage


def test_open_memory() -> None:
    storage = open_storage("memory", None)
    assert isinstance(storage, MemoryStorage)
    storage.close()


def test_open_duckdb_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "data" / "meshscope.duckdb"
    storage = open_storage("duckdb", str(path))
    assert isinstance(storage, DuckDBStorage)
    storage.close()
    assert path.exists()


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown storage kind 'cassandra'.*memory, duckdb"):
        open_storage("cassandra", None)
