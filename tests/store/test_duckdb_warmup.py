"""Warming DuckDB's buffer pool after a restart (store/duckdb/warmup.py, store/warm.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb.warmup import WarmUp, parse_size, table_memory, warm_up
from meshscope.store.warm import Warmable, WarmUpThread

T0 = 1_700_000_000 * 10**9
MINUTE_NS = 60 * 10**9


def _spans(count: int, every_ns: int) -> list[Span]:
    return [
        Span(f"{i + 1:032x}", f"{i + 1:016x}", "GET /x", "svc", T0 + i * every_ns,
             T0 + i * every_ns + 1000, attributes={"i": i, "tier": "gold"})
        for i in range(count)
    ]  # fmt: skip


@pytest.fixture
def reopened(tmp_path: Path) -> DuckDBStorage:
    """A file with 3,000 spans over 150 minutes (15 warm-up windows), closed and reopened,
    so nothing of it is in DuckDB's buffer pool."""
    path = tmp_path / "w.duckdb"
    storage = DuckDBStorage(path)
    points = [MetricPoint("m", (("i", str(i)),), T0 + i, value=float(i)) for i in range(5)]
    storage.write_batch(spans=_spans(3000, 3 * 10**9), points=points)
    storage.close()
    return DuckDBStorage(path)


def test_warm_up_reads_every_span_newest_first_and_fills_the_buffer_pool(
    reopened: DuckDBStorage,
) -> None:
    con = reopened.traces._db.read()
    before = table_memory(con)
    ids = sorted(reopened.metrics._ids.values())
    assert ids and reopened.metrics.cache.missing(ids)  # a restart: nothing cached
    result = reopened.warm_up()
    assert not reopened.metrics.cache.missing(ids)  # then every series in the sample cache
    assert isinstance(result, WarmUp)
    assert (result.spans, result.complete) == (3000, True)
    assert result.buffer_bytes > before
    # Reads still answer the same after it.
    assert [s.span_id for s in reopened.traces.get_trace(f"{7:032x}")] == [f"{7:016x}"]
    reopened.close()


def test_budget_and_stop_end_a_warm_up_early(reopened: DuckDBStorage) -> None:
    con = reopened.traces._db.read()
    result = warm_up(con, budget_bytes=0)
    assert (result.spans, result.complete) == (0, False)
    stopped = threading.Event()
    stopped.set()
    result = warm_up(con, budget_bytes=10**12, stop=stopped)  # stopped before it began
    assert (result.spans, result.complete) == (0, False)
    reopened.close()


def test_warm_up_of_an_empty_store_is_complete(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "empty.duckdb")
    result = storage.warm_up()
    assert (result.spans, result.complete) == (0, True)
    storage.close()


def test_the_thread_runs_it_once_in_the_background(reopened: DuckDBStorage) -> None:
    assert isinstance(reopened, Warmable)
    thread = WarmUpThread(reopened)
    thread.start()
    thread.join(30)
    assert isinstance(thread.result, WarmUp) and thread.result.spans == 3000
    thread.stop()
    reopened.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("11.7 GiB", int(11.7 * 2**30)), ("2GB", 2 * 10**9), ("512 MiB", 512 * 2**20), ("0 bytes", 0)],
)
def test_sizes_as_duckdb_prints_them(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_memory_limit_is_applied_and_bad_ones_are_refused(tmp_path: Path) -> None:
    spaced = DuckDBStorage(tmp_path / "p.duckdb", memory_limit=" 25 %")  # as YAML may give it
    spaced.close()
    storage = DuckDBStorage(tmp_path / "m.duckdb", memory_limit="1GB")
    row = storage.traces._db.read().execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None and parse_size(row[0]) == pytest.approx(10**9, rel=0.1)
    storage.close()
    for bad in ("lots", "1GB'; DROP TABLE spans; --", "-5%"):
        with pytest.raises(ValueError, match="memory limit"):
            DuckDBStorage(tmp_path / "m.duckdb", memory_limit=bad)
    assert duckdb.connect(str(tmp_path / "m.duckdb")).execute(
        "SELECT count(*) FROM spans"
    ).fetchone() == (0,)


def test_serve_warms_a_reopened_file_in_the_background_unless_told_not_to(tmp_path: Path) -> None:
    from meshscope.app import build
    from meshscope.config import Config, DuckDBConfig, PipelineConfig, StorageConfig

    path = tmp_path / "served.duckdb"
    first = DuckDBStorage(path)
    first.write_batch(spans=_spans(500, 10**9))
    first.close()
    no_workers = PipelineConfig(ingest_workers=0)
    app = build(Config(storage=StorageConfig(path=str(path)), pipeline=no_workers))
    assert app.stack.warm_up is not None
    app.start()
    app.stack.warm_up.join(30)
    app.stop()
    assert isinstance(app.stack.warm_up.result, WarmUp) and app.stack.warm_up.result.spans == 500
    off = build(
        Config(
            storage=StorageConfig(path=str(path), duckdb=DuckDBConfig(warm_up=False)),
            pipeline=no_workers,
        )
    )
    assert off.stack.warm_up is None
    off.storage.close()
    memory = build(Config(storage=StorageConfig(kind="memory"), pipeline=no_workers))
    assert memory.stack.warm_up is None  # nothing to load
