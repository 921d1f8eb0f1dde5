"""What only the DuckDB backend has: threads, chunked expiry, rollback of caches, schema."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from meshscope.model.attributes import AttrValue
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span, SpanKind
from meshscope.store.base import MAX_TIME_NS, LogQuery, Operation
from meshscope.store.codec import resource_id
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb import storage as storage_module
from meshscope.store.duckdb.span_rows import encode_spans


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
    before = store.traces.locator.state
    failed = _spans(2, 3)

    def write_then_fail() -> None:
        with store._db.transaction() as txn:
            store.traces.insert(txn, failed)
            assert len(store.traces.locator) == 6  # visible to the writer meanwhile
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        write_then_fail()
    assert store.traces.locator.state is before
    assert store.traces.get_traces([s.trace_id for s in failed]) == {}
    assert len(store.traces.get_traces([s.trace_id for s in _spans(1, 3)])) == 3


def _span(n: int, resource: dict[str, AttrValue], trace: int = 0) -> Span:
    return Span(f"{trace or n:032x}", f"{n:016x}", "op", "svc", n, n + 1, resource=resource)


def test_resources_are_numbered_once_and_keep_their_number(tmp_path: Path) -> None:
    """Rows carry a resource's small number, `resources` its hash too (ADR 0020): numbers
    survive a reopen, a rolled-back write takes its new numbers back, logs share them."""
    path = tmp_path / "r.duckdb"
    named: list[dict[str, AttrValue]] = [{"service.name": name} for name in "abc"]
    a, b, c = named
    store = DuckDBStorage(path)
    store.traces.write_spans([_span(1, a), _span(2, b), _span(3, a), _span(4, {})])

    def write_then_fail() -> None:
        with store._db.transaction() as txn:
            store.traces.insert(txn, [_span(5, c)])
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        write_then_fail()
    store.close()
    store = DuckDBStorage(path)
    store.traces.write_spans([_span(6, c), _span(7, b)])
    store.logs.write_logs([LogRecord(8, "hello", "svc", resource=c)])
    assert [span.resource for n in (1, 2, 3, 4, 6, 7) for span in store.traces.get_trace(
        f"{n:032x}")] == [a, b, a, {}, c, b]  # fmt: skip
    (log,) = store.logs.find_logs(LogQuery())
    assert log.resource == c
    store.close()
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute("SELECT resource_id, resource_hash FROM resources ORDER BY 1").fetchall()
    assert rows == [(1, resource_id(a)), (2, resource_id(b)), (3, resource_id(c))]
    numbers = con.execute("SELECT span_id, resource_id FROM spans ORDER BY 1").fetchall()
    assert numbers == [(1, 1), (2, 2), (3, 1), (4, 0), (6, 3), (7, 2)]
    assert con.execute("SELECT resource_id FROM logs").fetchall() == [(3,)]


def test_encoded_rows_naming_an_unknown_resource_are_refused(store: DuckDBStorage) -> None:
    encoded = encode_spans([_span(1, {"service.name": "a"})])
    with pytest.raises(ValueError, match="without their attributes"):
        store.write_encoded([encoded._replace(resources=[])])
    assert store.traces.span_counts() == {}


def test_a_write_is_grouped_by_trace_so_ids_are_stored_once_per_run(tmp_path: Path) -> None:
    """Spans of 2,000 traces written interleaved (as the batches of several services mix
    them) are stored grouped by trace, each trace's spans in the order written, and so are
    the calls' access logs. DuckDB then keeps each id once per run (RLE) and the resource
    numbers bit-packed: the bytes per span of ADR 0020."""
    rng = random.Random(5)
    traces = [f"{rng.getrandbits(128):032x}" for _ in range(2000)]
    resources: list[dict[str, AttrValue]] = [{"service.name": f"s{i}"} for i in range(6)]
    spans = [
        Span(trace, f"{t * 8 + i + 1:016x}", "op", f"s{i}", 10 * t + i, 10 * t + i + 5,
             resource=resources[i])
        for i in range(6) for t, trace in enumerate(traces)
    ]  # fmt: skip
    calls = [
        Call(f"s{i}", f"s{i + 1}", 10 * t + i, False, trace_id=trace, span_id=f"{t * 8 + i:016x}")
        for i in range(1, 5) for t, trace in enumerate(traces)
    ]  # fmt: skip
    path = tmp_path / "g.duckdb"
    store = DuckDBStorage(path)
    store.write_encoded([encode_spans(spans)], calls=calls)
    store.close()  # checkpoints: the rows are compressed into the file
    con = duckdb.connect(str(path), read_only=True)
    for table, per_trace in (("spans", 6), ("access_logs", 4)):
        rows = con.execute(f"SELECT trace_hi, trace_lo, span_id FROM {table} ORDER BY rowid")
        found = [(f"{hi:016x}{lo:016x}", span_id) for hi, lo, span_id in rows.fetchall()]
        runs = [found[i : i + per_trace] for i in range(0, len(found), per_trace)]
        assert len(runs) == len(traces)
        assert sorted(run[0][0] for run in runs) == sorted(traces)
        for run in runs:  # one trace per run, in the order written
            assert {trace for trace, _ in run} == {run[0][0]}
            assert [span_id for _, span_id in run] == sorted(span_id for _, span_id in run)
        compressions = dict(
            con.execute(
                "SELECT column_name, list(DISTINCT compression) FROM pragma_storage_info(?)"
                " WHERE column_name IN ('trace_hi', 'trace_lo', 'resource_id')"
                " AND segment_type <> 'VALIDITY' GROUP BY 1",
                [table],
            ).fetchall()
        )
        assert compressions["trace_hi"] == compressions["trace_lo"] == ["RLE"], compressions
        if table == "spans":
            assert "Uncompressed" not in compressions["resource_id"], compressions


def test_recent_index_rows_fold_into_one_row_per_trace(tmp_path: Path) -> None:
    """Each write adds a `trace_index_recent` row per trace in it; past `fold_rows` rows, they
    become one `trace_index` row per trace in the same transaction (ADR 0020). A rolled-back
    write folds nothing, retention starts folded rows at each trace's oldest span left, and
    after a reopen every trace is found whole from both tables."""
    path = tmp_path / "f.duckdb"
    store = DuckDBStorage(path, fold_rows=10)
    ids = [f"{n:032x}" for n in (11, 12, 13, 14)]

    def write(step: int) -> list[Span]:  # one span of each trace, as one service sends them
        return [Span(t, f"{step * 8 + i + 1:016x}", "op", "svc", 100 * step + i, 100 * step + i + 1)
                for i, t in enumerate(ids)]  # fmt: skip

    def counts(con: duckdb.DuckDBPyConnection | None = None) -> tuple[int, int]:
        ((main, recent),) = (
            (con or store._db.read())
            .execute(
                "SELECT (SELECT count(*) FROM trace_index),"
                " (SELECT count(*) FROM trace_index_recent)"
            )
            .fetchall()
        )
        return main, recent

    store.traces.write_spans(write(0))
    store.traces.write_spans(write(1))
    assert counts() == (0, 8)

    def fold_then_fail() -> None:
        with store._db.transaction() as txn:
            store.traces.insert(txn, write(9))
            assert counts(txn.con) == (4, 0)  # folded, inside the transaction
            raise RuntimeError("after the fold")

    with pytest.raises(RuntimeError, match="after the fold"):
        fold_then_fail()
    assert counts() == (0, 8)
    store.traces.write_spans(write(2))  # 12 rows: folded
    assert counts() == (4, 0)
    con = store._db.read()
    rows = con.execute("SELECT min_start, max_start FROM trace_index ORDER BY 1").fetchall()
    assert rows == [(i, 200 + i) for i in range(4)]
    store.traces.write_spans(write(3))
    assert counts() == (4, 4)
    # Retention cuts the folded rows: they now start at each trace's oldest span left.
    store.expire(150)
    rows = con.execute("SELECT min_start, max_start FROM trace_index ORDER BY 1").fetchall()
    assert rows == [(200 + i, 200 + i) for i in range(4)]
    assert store.traces.locator.ranges_of([(0, n) for n in (11, 12, 13, 14)]) == {
        (0, 11 + i): (200 + i, 300 + i) for i in range(4)
    }
    store.close()
    reopened = DuckDBStorage(path, fold_rows=10)
    try:
        found = reopened.traces.get_traces(ids)
        assert {t: [s.start_ns for s in spans] for t, spans in found.items()} == {
            t: [200 + i, 300 + i] for i, t in enumerate(ids)
        }
        reopened.expire(MAX_TIME_NS)  # everything, at the far end of time
        assert reopened.traces.get_traces(ids) == {} and len(reopened.traces.locator) == 0
    finally:
        reopened.close()


def test_a_write_of_empty_selections_stores_nothing_and_fails_nothing(
    store: DuckDBStorage,
) -> None:
    """Tail sampling hands the writer selections of encoded rows, some of them empty."""
    encoded = encode_spans([_span(1, {"service.name": "a"}), _span(2, {"service.name": "b"})])
    store.write_encoded([encoded.select(np.array([False, False]))])
    store.write_encoded(
        [encoded.select(np.array([False, True])), encoded.select(np.zeros(2, bool))]
    )
    assert store.traces.span_counts() == {"svc": 1}
    assert [s.span_id for s in store.traces.get_trace(f"{2:032x}")] == [f"{2:016x}"]
