"""DuckDB reads logs with a limit slice by slice (store/duckdb/logs.py); the answers agree
with the memory store's, whichever slice the limit is reached in, both directions."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from meshscope.model.logs import LogRecord
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb import logs as duckdb_logs
from meshscope.store.memory import MemoryStorage

S = 10**9
T0 = 1_700_000_000 * S


@pytest.mark.parametrize("slice_s", [1, 30])
def test_sliced_log_reads_agree_with_the_memory_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slice_s: int
) -> None:
    monkeypatch.setattr(duckdb_logs, "SLICE_NS", slice_s * S)
    monkeypatch.setattr(duckdb_logs, "SLICE_ROWS", 1)
    rng = random.Random(3)
    # Whole seconds, so records share times across slice edges and within slices.
    records = [
        LogRecord(
            time_ns=T0 + rng.randrange(600) * S,
            body=f"{rng.choice(['ok', 'timeout', 'slow'])} {n}",
            service=rng.choice(["web", "cart"]),
        )
        for n in range(400)
    ]
    memory = MemoryStorage()
    duck = DuckDBStorage(tmp_path / "l.duckdb")
    for part in (records[:200], records[200:]):
        memory.logs.write_logs(part)
        duck.logs.write_logs(part)
    for newest_first in (True, False):
        for limit in (1, 7, 100, 1000):
            for fields in ({}, {"service": "cart"}, {"body_contains": ("timeout",)}):
                for start_s, end_s in ((0, 600), (100, 350), (599, 10_000)):
                    query = LogQuery(
                        **fields,
                        start_ns=T0 + start_s * S,
                        end_ns=T0 + end_s * S,
                        limit=limit,
                        newest_first=newest_first,
                    )
                    assert duck.logs.find_logs(query) == memory.logs.find_logs(query), query
    duck.close()
