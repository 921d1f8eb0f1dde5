"""The single-writer sink: answers only after commit, group-commits, bounds its queue."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from itertools import pairwise

import pytest

from meshscope.clock import SystemClock
from meshscope.ingest.sink import OverloadedError, UnavailableError
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.memory import MemoryStorage


def span(i: int, service: str = "api") -> Span:
    return Span(f"{i:032x}", f"{i:016x}", "op", service, 1_000 + i, 2_000 + i)


class GatedStorage(MemoryStorage):
    """A memory store whose span writes wait for a gate, to hold the writer mid-commit."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.write_calls = 0
        inner = self.traces.write_spans

        def write_spans(spans: Sequence[Span]) -> None:
            self.gate.wait(10)
            self.write_calls += 1
            inner(spans)

        self.traces.write_spans = write_spans  # type: ignore[method-assign]


def test_submit_returns_after_the_batch_is_in_the_store() -> None:
    storage = MemoryStorage()
    writer = BatchWriter(Pipeline(storage, SystemClock()))
    writer.start()
    try:
        asyncio.run(writer.submit(Batch(spans=[span(1)], logs=[LogRecord(5, "hi", "api")])))
        assert storage.traces.get_trace(f"{1:032x}") == [span(1)]
        assert storage.logs.log_counts() == {"api": 1}
    finally:
        writer.stop()


def _gated_writer(max_pending_items: int) -> tuple[GatedStorage, BatchWriter]:
    """A started writer over a store whose span writes wait for its gate."""
    storage = GatedStorage()
    settings = WriterSettings(max_pending_items=max_pending_items, flush_interval_s=60)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    writer.start()
    return storage, writer


def test_waiting_batches_are_committed_together_and_overload_is_refused() -> None:
    storage, writer = _gated_writer(max_pending_items=10)

    async def scenario() -> None:
        first = asyncio.create_task(writer.submit(Batch(spans=[span(0)])))
        await asyncio.sleep(0.05)  # the writer now holds batch 0 at the gate
        waiting = [asyncio.create_task(writer.submit(Batch(spans=[span(i)]))) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError):
            await writer.submit(Batch(spans=[span(i) for i in range(10, 18)]))
        assert not first.done()  # not answered before its commit
        storage.gate.set()
        await asyncio.gather(first, *waiting)

    try:
        asyncio.run(scenario())
        assert storage.write_calls == 2  # batch 0, then 1..3 in one group commit
        assert sorted(storage.traces.span_counts().values()) == [4]
        assert writer.rejected_items == 8
    finally:
        writer.stop()


def test_a_batch_larger_than_the_queue_is_not_starved_by_small_ones() -> None:
    """Taken while the queue is at most half full (not only when it is empty); while more
    than half is in use it is refused, like any batch that does not fit."""
    storage, writer = _gated_writer(max_pending_items=10)

    async def scenario() -> None:
        first = asyncio.create_task(writer.submit(Batch(spans=[span(0)])))
        await asyncio.sleep(0.05)  # held at the gate: 1 item pending
        big = asyncio.create_task(writer.submit(Batch(spans=[span(i) for i in range(20, 40)])))
        await asyncio.sleep(0.05)
        assert not big.done()  # taken: 1 of 10 in use
        with pytest.raises(OverloadedError):  # 21 of 10 now: nothing more fits
            await writer.submit(Batch(spans=[span(50)]))
        storage.gate.set()
        await asyncio.gather(first, big)
        # With 6 of 10 in use, a batch larger than the queue is refused.
        storage.gate.clear()
        held = [asyncio.create_task(writer.submit(Batch(spans=[span(60 + i)]))) for i in range(6)]
        await asyncio.sleep(0.05)
        with pytest.raises(OverloadedError):
            await writer.submit(Batch(spans=[span(i) for i in range(70, 90)]))
        storage.gate.set()
        await asyncio.gather(*held)

    try:
        asyncio.run(scenario())
        assert sum(storage.traces.span_counts().values()) == 27
    finally:
        writer.stop()


def test_the_store_clocks_the_groups_batches_arriving_during_a_commit_go_next_together() -> None:
    storage = GatedStorage()
    writer = BatchWriter(Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=60))
    done: list[BaseException | None] = []
    writer.start()
    try:
        writer.enqueue(Batch(spans=[span(0)]), done.append)
        _until(lambda: writer.pending_items == 1 and not writer._jobs)  # at the gate
        for i in (1, 2, 3):  # one by one, each derived on arrival while the store is busy
            writer.enqueue(Batch(spans=[span(i)]), done.append)
            _until(lambda: not writer._jobs)
        assert done == [] and storage.write_calls == 0
        storage.gate.set()
        _until(lambda: len(done) == 4)
        assert done == [None] * 4
        assert storage.write_calls == 2 and writer.commits == 2  # batch 0, then 1..3
        assert storage.traces.span_counts() == {"api": 4}
    finally:
        writer.stop()


def test_a_failed_commit_is_reported_not_acknowledged() -> None:
    storage = MemoryStorage()

    def broken(spans: Sequence[Span]) -> None:
        if spans:
            raise OSError("disk full")

    storage.traces.write_spans = broken  # type: ignore[method-assign]
    writer = BatchWriter(Pipeline(storage, SystemClock()))
    writer.start()
    try:
        with pytest.raises(UnavailableError, match="disk full"):
            asyncio.run(writer.submit(Batch(spans=[span(1)])))
        # The writer survives and takes the next batch.
        asyncio.run(writer.submit(Batch(logs=[LogRecord(1, "ok", "api")])))
        assert storage.logs.log_counts() == {"api": 1}
    finally:
        writer.stop()


def test_stop_commits_what_is_queued_and_flushes_metrics() -> None:
    storage = MemoryStorage()
    writer = BatchWriter(Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=3600))
    done: list[BaseException | None] = []
    writer.start()
    writer.enqueue(Batch(spans=[span(1), span(2)]), done.append)
    writer.stop()
    assert done == [None]
    assert storage.traces.span_counts() == {"api": 2}
    calls = storage.metrics.select("calls_total", [], 0, 2**63 - 1)
    assert [s.samples[-1].value for s in calls] == [2.0]
    with pytest.raises(UnavailableError):
        writer.enqueue(Batch(spans=[span(3)]), done.append)


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_group_waits_for_batches_still_being_prepared_upstream() -> None:
    storage = MemoryStorage()
    writer = BatchWriter(
        Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=3600, linger_s=30)
    )
    upstream = [1]  # e.g. one body in an ingest worker's hands
    writer.expect_from(lambda: upstream[0])
    done: list[BaseException | None] = []
    writer.start()
    try:
        writer.enqueue(Batch(spans=[span(1)]), done.append)
        time.sleep(0.2)
        assert done == [] and writer.commits == 0  # held: more is on its way
        writer.enqueue(Batch(spans=[span(2)]), done.append)  # it arrives
        upstream[0] = 0
        writer.nudge()
        _until(lambda: len(done) == 2)
        assert done == [None, None]
        assert writer.commits == 1  # one group, one store transaction
        assert storage.traces.span_counts() == {"api": 2}
    finally:
        writer.stop()


def test_the_wait_for_company_is_bounded_and_skipped_when_nothing_comes() -> None:
    storage = MemoryStorage()
    writer = BatchWriter(
        Pipeline(storage, SystemClock()), WriterSettings(flush_interval_s=3600, linger_s=0.2)
    )
    upstream = [0]
    writer.expect_from(lambda: upstream[0])
    done: list[BaseException | None] = []
    writer.start()
    try:
        writer.enqueue(Batch(spans=[span(1)]), done.append)
        _until(lambda: len(done) == 1)  # nothing upstream: committed at once
        upstream[0] = 5  # upstream never delivers: the group goes after linger_s anyway
        writer.enqueue(Batch(spans=[span(2)]), done.append)
        _until(lambda: len(done) == 2)
        assert done == [None, None] and writer.commits == 2
    finally:
        writer.stop()


def test_a_full_queue_ends_the_wait() -> None:
    storage = MemoryStorage()
    settings = WriterSettings(flush_interval_s=3600, linger_s=30, linger_items=2)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    writer.expect_from(lambda: 1)  # more would always be coming
    done: list[BaseException | None] = []
    writer.start()
    try:
        writer.enqueue(Batch(spans=[span(1)]), done.append)
        writer.enqueue(Batch(spans=[span(2)]), done.append)
        _until(lambda: len(done) == 2)
        assert writer.commits == 1
    finally:
        writer.stop()


def test_linger_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="linger_s"):
        WriterSettings(linger_s=-1)


def test_commit_window_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="commit_window_s"):
        WriterSettings(commit_window_s=-0.5)


def _paced(writer: BatchWriter, count: int, gap_s: float) -> list[float]:
    """Enqueue `count` one-span batches `gap_s` apart (as independent SDKs send, each on its
    own schedule, not waiting for the previous answer); the times they were answered."""
    answered: list[float] = []
    begin = time.monotonic()
    for i in range(count):
        delay = begin + i * gap_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        writer.enqueue(
            Batch(spans=[span(100 + i)]), lambda _error: answered.append(time.monotonic())
        )
    _until(lambda: len(answered) == count)
    return answered


def test_the_commit_window_lets_requests_arriving_close_together_share_a_commit() -> None:
    storage = MemoryStorage()
    settings = WriterSettings(flush_interval_s=3600, commit_window_s=0.6)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    writer.start()
    try:
        _paced(writer, 9, 0.2)  # 5 requests/s: a window of 0.6 s gathers 3 or 4 each
        assert storage.traces.span_counts() == {"api": 9}
        # Without the window each request is its own commit (9); the first goes alone.
        assert writer.commits <= 4
        assert writer.commit_window.paid_holds >= 2
    finally:
        writer.stop()


def test_a_client_waiting_for_each_answer_is_not_held_after_one_probe() -> None:
    storage = MemoryStorage()
    settings = WriterSettings(flush_interval_s=3600, commit_window_s=0.5)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    writer.start()
    try:
        for i in range(20):  # one request at a time: nothing can ever join a held group
            asyncio.run(writer.submit(Batch(spans=[span(200 + i)])))
        window = writer.commit_window
        # One probe held one request; the other 19 were not held.
        assert window.holds == 1 and window.paid_holds == 0 and not window.on
        assert writer.commits == 20
    finally:
        writer.stop()


def test_a_full_batch_is_not_held_by_the_commit_window() -> None:
    storage = MemoryStorage()
    settings = WriterSettings(flush_interval_s=3600, commit_window_s=30, commit_window_items=3)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    done: list[BaseException | None] = []
    writer.start()
    try:
        writer.enqueue(Batch(spans=[span(1)]), done.append)  # first: nothing before it
        _until(lambda: len(done) == 1)
        writer.enqueue(Batch(spans=[span(i) for i in (2, 3, 4)]), done.append)
        _until(lambda: len(done) == 2)  # 3 items: goes at once, not after 30 s
        writer.enqueue(Batch(spans=[span(5)]), done.append)  # small, right after: held
        time.sleep(0.3)
        assert len(done) == 2 and writer.commit_window.holds == 0
        writer.enqueue(Batch(spans=[span(i) for i in (6, 7)]), done.append)  # now 3 items
        _until(lambda: len(done) == 4)
        assert writer.commits == 3 and writer.commit_window.paid_holds == 1
    finally:
        writer.stop()


def test_min_commit_interval_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_commit_interval_s"):
        WriterSettings(min_commit_interval_s=-0.1)


class TimedStorage(MemoryStorage):
    """A memory store that notes when each span write (one per group commit) began."""

    def __init__(self) -> None:
        super().__init__()
        self.began: list[float] = []
        inner = self.traces.write_spans

        def write_spans(spans: Sequence[Span]) -> None:
            self.began.append(time.monotonic())
            inner(spans)

        self.traces.write_spans = write_spans  # type: ignore[method-assign]


def test_groups_go_at_most_every_min_commit_interval_and_requests_meanwhile_share_one() -> None:
    """ADR 0030: while more batches are being prepared upstream (as under load), a store whose
    inserts make parts gets one group per interval however many requests come; without the
    floor each of these requests is its own commit."""
    storage = TimedStorage()
    settings = WriterSettings(flush_interval_s=3600, min_commit_interval_s=0.4, linger_s=0)
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    writer.expect_from(lambda: 1)  # ingest workers always preparing more
    writer.start()
    try:
        answered = _paced(writer, 30, 0.04)  # 25 requests/s for 1.2 s
        assert storage.traces.span_counts() == {"api": 30}
        began = storage.began
        assert len(began) == writer.commits
        # The floor is from one hand-over to the next; a write starts after its hand-over by
        # however long the store thread takes to run (tens of ms on a busy host, more at worst).
        # Without the floor these requests come 0.04 s apart.
        assert all(b - a >= 0.25 for a, b in pairwise(began)), list(pairwise(began))
        assert 2 <= writer.commits <= 5  # 1.2 s of requests: the first alone, then ~3 groups
        assert len(answered) == 30
    finally:
        writer.stop()


def test_the_floor_delays_no_lone_request_no_full_group_no_last_request_and_no_stop() -> None:
    storage = TimedStorage()
    settings = WriterSettings(
        flush_interval_s=3600, min_commit_interval_s=30, max_merge_items=3, linger_s=0
    )
    writer = BatchWriter(Pipeline(storage, SystemClock()), settings)
    preparing = [1]  # batches the ingest workers are preparing
    writer.expect_from(lambda: preparing[0])
    done: list[BaseException | None] = []
    writer.start()
    stopped = False
    try:
        writer.enqueue(Batch(spans=[span(1)]), done.append)  # nothing before it: at once
        _until(lambda: len(done) == 1)
        writer.enqueue(Batch(spans=[span(2)]), done.append)  # 30 s have not passed: waits
        time.sleep(0.3)
        assert len(done) == 1 and writer.commits == 1
        writer.enqueue(Batch(spans=[span(i) for i in (3, 4)]), done.append)  # 3 items: full
        _until(lambda: len(done) == 3)
        writer.enqueue(Batch(spans=[span(5)]), done.append)  # waits again ...
        time.sleep(0.3)
        assert len(done) == 3
        preparing[0] = 0  # ... until nothing more is coming: its clients wait for it
        writer.nudge()
        _until(lambda: len(done) == 4)
        preparing[0] = 1
        writer.enqueue(Batch(spans=[span(6)]), done.append)  # waits ...
        time.sleep(0.3)
        assert len(done) == 4
        writer.stop()  # ... but not past a stop
        stopped = True
        assert done == [None] * 5
        assert storage.traces.span_counts() == {"api": 6}
    finally:
        if not stopped:
            writer.stop()
