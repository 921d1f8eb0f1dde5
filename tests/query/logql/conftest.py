"""The known lines of tests/loki_data in each real store (memory and a DuckDB file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.ingest.loki import decode_loki_json
from meshscope.store.base import Storage
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, json_push


@pytest.fixture(params=["memory", "duckdb"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened: Storage = (
        MemoryStorage() if request.param == "memory" else DuckDBStorage(tmp_path / "s.duckdb")
    )
    opened.logs.write_logs(decode_loki_json(json_push(LINES)).batch.logs)
    yield opened
    opened.close()
