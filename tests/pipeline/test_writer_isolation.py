"""One bad batch in a group commit fails alone: the writer retries each request separately.

The decoders refuse what the store cannot hold (ingest/checks.py); these batches bypass
them, as a decoder bug would, and go to a real DuckDB file through the real writer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from meshscope.clock import SystemClock
from meshscope.ingest.sink import UnavailableError, UnstorableError
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint, MetricType
from meshscope.model.spans import Span, SpanKind
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage

T0 = 1_700_000_000_000_000_000


def _span(i: int, service: str, kind: SpanKind, parent: int = 0) -> Span:
    return Span(
        f"{i // 2 + 1:032x}",
        f"{i + 1:016x}",
        "op",
        service,
        T0 + i,
        T0 + i + 1_000,
        f"{parent:016x}" if parent else "",
        kind,
    )


def _run_group(writer: BatchWriter, batches: Sequence[Batch]) -> list[BaseException | None]:
    """Queue every batch before the writer starts, so they form one group commit."""
    answers: list[BaseException | None] = [None] * len(batches)
    done = threading.Semaphore(0)

    def answer(i: int) -> object:
        def set_answer(error: BaseException | None) -> None:
            answers[i] = error
            done.release()

        return set_answer

    for i, batch in enumerate(batches):
        writer.enqueue(batch, answer(i))  # type: ignore[arg-type]
    writer.start()
    for _ in batches:
        assert done.acquire(timeout=30)
    return answers


def test_a_bad_batch_fails_alone_and_its_group_is_stored(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "iso.duckdb")
    pipeline = Pipeline(storage, SystemClock())
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600))
    client = _span(0, "web", SpanKind.CLIENT)
    server = _span(1, "api", SpanKind.SERVER, parent=1)  # pairs with `client` across batches
    batches = [
        Batch(spans=[client], logs=[LogRecord(T0, "first", "web")]),
        Batch(logs=[LogRecord(2**64 - 1, "too late", "bad")]),  # OverflowError in the commit
        Batch(spans=[server]),
        Batch(spans=[_span(4, "bad\ud800", SpanKind.SERVER)]),  # UnicodeEncodeError
        Batch(metrics=[MetricPoint("m", (("a", "1"),), T0, MetricType.GAUGE, 1.0)]),
        Batch(metrics=[MetricPoint("m", (("a", "2"),), 2**63, MetricType.GAUGE, 1.0)]),
    ]
    # One batch as an ingest worker hands it over, already prepared.
    batches.append(pipeline.prepare(Batch(logs=[LogRecord(T0 + 1, "prepared", "web")])))  # type: ignore[arg-type]
    try:
        answers = _run_group(writer, batches)
        assert [type(a).__name__ if a else None for a in answers] == [
            None,
            "UnstorableError",
            None,
            "UnstorableError",
            None,
            "UnstorableError",
            None,
        ]
        assert isinstance(answers[1], UnstorableError)  # a 400, naming the store's complaint
        assert "cannot be stored" in str(answers[1])
        # Everything acknowledged is readable, nothing refused is.
        assert storage.traces.span_counts() == {"web": 1, "api": 1}
        assert [r.body for r in storage.logs.find_logs(LogQuery(service="web", access=False))] == [
            "first",
            "prepared",
        ]
        assert [s.labels for s in storage.metrics.select("m", [], 0, 2**63 - 1)] == [(("a", "1"),)]
        # The call paired across two batches of the group is stored once (as an access log),
        # by the writer's next tick once the group's transaction has ended.
        deadline = time.monotonic() + 10
        while not storage.logs.find_logs(LogQuery(access=True)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(storage.logs.find_logs(LogQuery(access=True))) == 1
        assert writer.committed_items == 5
    finally:
        writer.stop()  # makes the group's metric updates (once its transaction has ended)
        storage.close()
    # Derived metrics were counted once, when the group was derived, not again on retry
    # (the span refused while its rows were encoded was not counted at all).
    calls = [p for p in pipeline.registry.collect(T0) if p.name == "calls_total"]
    assert sum(p.value for p in calls) == 2


def test_when_every_request_fails_alone_the_store_is_failing_503() -> None:
    storage = MemoryStorage()

    def broken(logs: Sequence[LogRecord]) -> None:
        if logs:
            raise OSError("disk full")

    storage.logs.write_logs = broken  # type: ignore[method-assign]
    writer = BatchWriter(Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=3600))
    try:
        answers = _run_group(writer, [Batch(logs=[LogRecord(T0 + i, "x", "a")]) for i in range(3)])
        assert all(isinstance(a, UnavailableError) for a in answers)
        assert not any(isinstance(a, UnstorableError) for a in answers)
    finally:
        writer.stop()


@pytest.mark.parametrize("bad_first", [True, False])
def test_the_writer_keeps_serving_after_isolating(tmp_path: Path, bad_first: bool) -> None:
    storage = DuckDBStorage(tmp_path / "after.duckdb")
    writer = BatchWriter(Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=3600))
    bad = Batch(logs=[LogRecord(T0, "bad\udfff", "a")])
    good = Batch(logs=[LogRecord(T0, "good", "a")])
    try:
        answers = _run_group(writer, [bad, good] if bad_first else [good, bad])
        assert sorted(type(a).__name__ for a in answers) == ["NoneType", "UnstorableError"]
        later: list[BaseException | None] = []
        writer.enqueue(Batch(logs=[LogRecord(T0 + 5, "later", "a")]), later.append)
        writer.stop()
        assert later == [None]
        assert [r.body for r in storage.logs.find_logs(LogQuery())] == ["good", "later"]
    finally:
        writer.stop()
        storage.close()
