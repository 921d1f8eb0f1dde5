"""What only the DuckDB backend has: threads, chunked expiry, rollback of caches, schema."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span, SpanKind
from meshscope.store.base import Operation
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb import storage as storage_module


def _spans(batch: int, count: int) -> list[Span]:
    return [
        Span(f"{batch + 1:016x}{i + 1:016x}", f"{i + 1:016x}", "op", "svc", batch, batch + 1)
        for i in range(count)
    ]


@pytest.fixture
def store(tmp_path: Path) -> DuckDBStorage:
    return DuckDBStorage(tmp_path / "t.duckdb")


def test_readers_on_other_threads_see_committed_writes(store: DuckDBStorage) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                counts = store.traces.span_counts()
                assert counts.get("svc", 0) % 50 == 0  # whole batches only
                store.metrics.select("m", [], 0, 10**6)
                store.catalog.services()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    for batch in range(40):
        store.write_batch(
            _spans(batch, 50),
            points=[MetricPoint("m", (("b", str(batch)),), batch)],
            operations=[Operation(f"s{batch}", "op", SpanKind.SERVER)],
        )
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert store.traces.span_counts() == {"svc": 2000}
    assert len(store.metrics.select("m", [], 0, 10**6)) == 40
    store.close()


def test_expire_works_in_small_transactions(
    store: DuckDBStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "EXPIRE_CHUNK_ROWS", 7)
    for batch in range(5):
        store.traces.write_spans(_spans(batch, 10))
    assert store.expire(3) == 30
    assert store.traces.span_counts() == {"svc": 20}
    assert store.traces.get_trace(f"{1:016x}{1:016x}") == []
    assert store.traces.get_trace(f"{4:016x}{1:016x}") == [_spans(3, 1)[0]]
    store.close()


def test_failed_write_leaves_nothing_behind(store: DuckDBStorage) -> None:
    good = MetricPoint("m", (("a", "1"),), 1)
    bad_span = Span("zz-not-hex", "1", "op", "svc", 0, 1, resource={"r": 1})
    with pytest.raises(ValueError, match="invalid literal"):
        store.write_batch([*_spans(0, 3), bad_span], points=[good])
    # Fails after the series and the service were assigned in this transaction.
    bad_op = Operation("svc", "op", 300)  # type: ignore[arg-type]
    with pytest.raises(pa.ArrowInvalid):
        store.write_batch(points=[good], operations=[bad_op])
    assert store.traces.span_counts() == {}
    assert store.catalog.services() == []
    assert store.metrics.select("m", [], 0, 10) == []
    # The caches were rolled back too: the resource and series are written again.
    fine = Span(f"{1:032x}", f"{1:016x}", "op", "svc", 0, 1, resource={"r": 1})
    store.write_batch([fine], points=[good], operations=[Operation("svc", "", SpanKind.SERVER)])
    assert store.traces.get_trace(fine.trace_id) == [fine]
    assert [s.samples for s in store.metrics.select("m", [], 0, 10)] == [[good]]
    assert store.catalog.services() == ["svc"]
    store.close()


def test_closed_storage_refuses_use(store: DuckDBStorage) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.traces.span_counts()
    with pytest.raises(RuntimeError, match="closed"):
        store.traces.write_spans(_spans(0, 1))


def test_refuses_a_file_of_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    DuckDBStorage(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(ValueError, match="schema version 0"):
        DuckDBStorage(path)


def test_spans_read_together_do_not_share_attribute_dicts(store: DuckDBStorage) -> None:
    # One read decodes each distinct attribute set once; every span still gets its own dict.
    spans = [
        Span(f"{1:032x}", f"{i + 1:016x}", "op", "svc", i, i + 1, attributes={"k": "v", "n": 1})
        for i in range(3)
    ]
    store.traces.write_spans(spans)
    read = store.traces.get_trace(f"{1:032x}")
    assert [span.attributes for span in read] == [{"k": "v", "n": 1}] * 3
    read[0].attributes["k"] = "changed"
    assert [span.attributes["k"] for span in read] == ["changed", "v", "v"]


def test_a_write_rolled_back_leaves_the_trace_locator_as_it_was(store: DuckDBStorage) -> None:
    """The locator changes inside the write's transaction (ADR 0019): a transaction that fails
    after the spans are inserted takes its locator entries back with it."""
    store.traces.write_spans(_spans(1, 3))
    before = store.traces.locator.runs
    failed = _spans(2, 3)

    def write_then_fail() -> None:
        with store._db.transaction() as txn:
            store.traces.insert(txn, failed)
            assert len(store.traces.locator) == 6  # visible to the writer meanwhile
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        write_then_fail()
    assert store.traces.locator.runs is before
    assert store.traces.get_traces([s.trace_id for s in failed]) == {}
    assert len(store.traces.get_traces([s.trace_id for s in _spans(1, 3)])) == 3
