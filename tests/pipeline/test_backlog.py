"""Rows no request waits for survive a store outage: tail-kept spans and service-graph calls
whose write failed are written with the next one (they were lost)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from meshscope.clock import ManualClock
from meshscope.ingest.sink import UnavailableError
from meshscope.model.batch import Batch
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span, SpanKind
from meshscope.pipeline.backlog import Backlog
from meshscope.pipeline.chain import MAX_APART_WRITES, Pipeline, PipelineSettings
from meshscope.pipeline.derive.servicegraph import side_of
from meshscope.pipeline.prepared import Prepared
from meshscope.pipeline.sampling.config import from_mapping
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.base import LogQuery, StoreUnavailableError
from meshscope.store.memory import MemoryStorage

T0 = 1_700_000_000_000_000_000


class FlakyStorage(MemoryStorage):
    """A store whose writes raise while `down` is set, as a ClickHouse server that is gone."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def write_batch(self, *args: Any, **kwargs: Any) -> None:
        if self.down:
            raise StoreUnavailableError("ClickHouse at 127.0.0.1:9000: connection refused")
        super().write_batch(*args, **kwargs)


def _trace(i: int, call: bool = False) -> list[Span]:
    """web SERVER -> a CLIENT span of db (nothing answers it); with `call`, the CLIENT span is
    web's and a db SERVER span answers it: one call web -> db."""
    tid = f"{i + 1:032x}"
    root = Span(tid, f"{3 * i + 1:016x}", "GET /", "web", T0, T0 + 10**6, kind=SpanKind.SERVER)
    child = Span(tid, f"{3 * i + 2:016x}", "q", "web" if call else "db", T0 + 1, T0 + 10**5,
                 root.span_id, SpanKind.CLIENT)  # fmt: skip
    if not call:
        return [root, child]
    server = Span(tid, f"{3 * i + 3:016x}", "q", "db", T0 + 2, T0 + 10**4, child.span_id,
                  SpanKind.SERVER)  # fmt: skip
    return [root, child, server]


def _tail_pipeline(storage: MemoryStorage, clock: ManualClock) -> Pipeline:
    config = from_mapping({"tail": {"enabled": True, "decision_wait_seconds": 5, "policies": [
        {"name": "all", "type": "always_sample"}]}})  # fmt: skip
    return Pipeline(storage, clock, tail=TailSampler.from_config(config.tail))


def _access_logs(storage: MemoryStorage) -> list[LogRecord]:
    return storage.logs.find_logs(LogQuery(access=True))


def test_tail_kept_spans_whose_write_failed_are_written_by_the_next_tick() -> None:
    storage, clock = FlakyStorage(), ManualClock()
    pipeline = _tail_pipeline(storage, clock)
    pipeline.consume(Batch(spans=_trace(0)))  # acknowledged: buffered by the sampler
    clock.advance(6)
    storage.down = True
    try:
        pipeline.tick()
    except StoreUnavailableError:
        pass
    else:
        raise AssertionError("the write should have failed")
    assert pipeline.backlog.rows == 2 and storage.traces.span_counts() == {}
    storage.down = False
    pipeline.tick()  # nothing newly decided: the backlog alone
    assert storage.traces.span_counts() == {"web": 1, "db": 1}
    assert pipeline.backlog.rows == 0


def test_expired_calls_whose_flush_failed_are_written_by_the_next_flush() -> None:
    storage, clock = FlakyStorage(), ManualClock()
    pipeline = Pipeline(storage, clock, PipelineSettings(servicegraph_ttl_ns=10**9))
    # A CLIENT span to a database no one reports: its call is made when it expires.
    client = _trace(0)[1]
    pipeline.consume(Batch(spans=[Span(client.trace_id, client.span_id, "q", "web", T0,
        T0 + 10**5, kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"})]))  # fmt: skip
    clock.advance(2)
    storage.down = True
    try:
        pipeline.flush()
    except StoreUnavailableError:
        pass
    else:
        raise AssertionError("the write should have failed")
    assert pipeline.backlog.rows == 1
    storage.down = False
    pipeline.flush()
    (log,) = _access_logs(storage)
    assert log.attributes["source.service"] == "web"
    assert log.attributes["destination.service"] == "postgresql"


def _call_totals(storage: MemoryStorage) -> dict[tuple[str, str], float]:
    """calls_total by service and traces_service_graph_request_total by server, as stored."""
    totals: dict[tuple[str, str], float] = {}
    for name, by in (("calls_total", "service_name"), ("traces_service_graph_request_total",
                                                        "server")):  # fmt: skip
        for series in storage.metrics.latest(name, [], 2**63 - 1, 2**63 - 1):
            key = (name, dict(series.labels)[by])
            totals[key] = totals.get(key, 0) + series.samples[-1].value
    return totals


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until `condition` holds, at most `seconds` (the asserts after it then fail)."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def _deliver(
    storage: FlakyStorage, sends: list[tuple[list[Span], bool]], pipeline: Pipeline | None = None
) -> list[BaseException | None]:
    """Each batch of spans through a BatchWriter on `storage`, one at a time (answered before
    the next), with the store down for those marked so; the answers. The writer is stopped
    at the end: the derived metrics and paired calls are written."""
    pipeline = pipeline or Pipeline(storage, ManualClock())
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600, tick_interval_s=3600))
    answers: list[BaseException | None] = []
    answered = threading.Semaphore(0)

    def done(error: BaseException | None) -> None:
        answers.append(error)
        answered.release()

    writer.start()
    try:
        for spans, down in sends:
            storage.down = down
            writer.enqueue(Batch(spans=spans), done)
            assert answered.acquire(timeout=30)
        storage.down = False
    finally:
        writer.stop()
    return answers


def test_a_group_refused_as_unavailable_is_counted_once_when_sent_again() -> None:
    """A request refused with 503 (the store is down) is sent again by its client. Its spans
    were counted in the span metrics and its pairs in the service graph the first time too,
    so each retry after an outage added them again; now a refused group's metric updates
    are not made, and what it derived is derived again from the retry."""
    spans = _trace(0, call=True)  # one call web -> db
    storage = FlakyStorage()
    answers = _deliver(storage, [(spans, True), (spans, False)])
    assert isinstance(answers[0], UnavailableError) and answers[1] is None
    totals = _call_totals(storage)
    assert totals[("calls_total", "db")] == 1 and totals[("calls_total", "web")] == 2
    assert totals[("traces_service_graph_request_total", "db")] == 1
    assert [log.attributes["destination.service"] for log in _access_logs(storage)] == ["db"]


@pytest.mark.parametrize("later", ["client", "server"])
def test_a_call_whose_second_side_came_in_a_refused_group_is_counted_once(later: str) -> None:
    """A call's two sides come in different requests (different services export them). When
    the second one's group is refused (the store is down) and its client sends it again,
    the call is counted once, from the retry. It was never counted when the later side was
    the client span: the refused group took its server span off the waiting list, and the
    retry found nothing waiting."""
    root, client, server = _trace(0, call=True)  # the call web -> db: client -> server
    first, second = ([root, server], [client]) if later == "client" else ([root, client], [server])
    storage = FlakyStorage()
    pipeline = Pipeline(storage, ManualClock())
    answers = _deliver(storage, [(first, False), (second, True), (second, False)], pipeline)
    assert answers[0] is None and isinstance(answers[1], UnavailableError) and answers[2] is None
    totals = _call_totals(storage)
    assert totals[("traces_service_graph_request_total", "db")] == 1
    assert [log.attributes["destination.service"] for log in _access_logs(storage)] == ["db"]
    assert pipeline.pairer.stats.refused == 1  # the refused side, forgotten until its retry
    assert pipeline.pairer.stats.paired == 1
    # Span metrics count the stored deliveries: web's root and client span, db's server.
    assert totals[("calls_total", "web")] == 2 and totals[("calls_total", "db")] == 1


def test_pairing_records_queued_in_a_refused_group_keep_their_calls() -> None:
    """A cluster owner queues the pairing records of spans its peers stored (nobody waits
    for them, nobody sends them again). A group of its own that holds them and is refused
    (its store down) still counts their calls, and writes them once the store is back;
    they were lost."""
    storage, clock = FlakyStorage(), ManualClock()
    pipeline = Pipeline(storage, clock)
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600, tick_interval_s=0.05))
    sides = [tuple(side_of(span)) for span in _trace(0, call=True)]
    writer.start()
    try:
        storage.down = True
        asyncio.run(writer.queue(Prepared(sides=sides)))
        _until(lambda: pipeline.pairer.stats.paired >= 1)
        time.sleep(0.2)  # the group is refused; a few ticks fail to write the call
        storage.down = False
        _until(lambda: bool(_access_logs(storage)))
    finally:
        writer.stop()
    assert [log.attributes["destination.service"] for log in _access_logs(storage)] == ["db"]
    assert _call_totals(storage)[("traces_service_graph_request_total", "db")] == 1


def test_a_batch_sent_again_after_its_commit_pairs_its_calls_once() -> None:
    """A client that never got its answer sends the batch again after it was committed (or
    a cluster node re-sends an owner its pairing records): the call is paired once, in the
    service graph and the access logs. Span metrics count each delivery, as before (their
    sums come from the workers; the pairer knows spans by id, not by operation)."""
    storage, clock = FlakyStorage(), ManualClock()
    pipeline = Pipeline(storage, clock)
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600, tick_interval_s=3600))
    spans = _trace(0, call=True)  # one call web -> db
    answered = threading.Semaphore(0)
    writer.start()
    try:
        for _ in range(2):
            writer.enqueue(Batch(spans=spans), lambda error: answered.release())
            assert answered.acquire(timeout=30)
    finally:
        writer.stop()
    totals = _call_totals(storage)
    assert totals[("traces_service_graph_request_total", "db")] == 1
    assert totals[("calls_total", "db")] == 2  # each delivery's spans
    assert [log.attributes["destination.service"] for log in _access_logs(storage)] == ["db"]
    assert pipeline.pairer.stats.repeated == len(spans)


class _RecordingStorage(MemoryStorage):
    """Records the thread, spans and access logs of each write; each takes `delay_s` (so
    the store thread is busy while groups arrive)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.writes: list[tuple[str, int, int]] = []

    @property
    def access_writes(self) -> list[int]:
        return [access for _, _, access in self.writes if access]

    def write_batch(self, *args: Any, **kwargs: Any) -> None:
        spans = kwargs.get("spans", args[0] if args else ())
        logs = kwargs.get("logs", args[1] if len(args) > 1 else ())
        access = sum(record.is_access_log for record in logs)
        self.writes.append((threading.current_thread().name, len(spans), access))
        time.sleep(self.delay_s)
        super().write_batch(*args, **kwargs)


def test_calls_paired_in_many_groups_are_written_together_once_their_groups_are_stored() -> None:
    """A group's transaction holds its own rows, not the calls paired from its spans: those
    wait in the backlog once its transaction has ended and its updates are made, and the
    next tick writes the calls of every such group in one access-log insert (ADR 0027)."""
    storage, clock = _RecordingStorage(), ManualClock()
    pipeline = Pipeline(storage, clock)
    for i in range(3):
        derived, observations = pipeline.derive_deferred(
            [pipeline.prepare(Batch(spans=_trace(i, call=True)))]
        )
        assert derived.calls == [] and len(observations.paired) == 1
        pipeline.store(derived)
        pipeline.observe(observations)
    assert storage.access_writes == [] and pipeline.backlog.rows == 0  # waiting, not failed
    pipeline.tick()
    assert storage.access_writes == [3]
    assert {log.trace_id for log in _access_logs(storage)} == {f"{i + 1:032x}" for i in range(3)}
    pipeline.tick()  # written once
    assert storage.access_writes == [3]


_EVERY_50_MS = WriterSettings(
    flush_interval_s=3600, tick_interval_s=0.05, paired_calls_interval_s=0.05
)


def test_while_the_store_is_busy_waiting_calls_go_with_a_group_transaction() -> None:
    """Under load the paired calls go with a later group's transaction on the store thread
    (the writer thread goes on deriving), about once a tick, each call once."""
    storage = _RecordingStorage(delay_s=0.2)
    pipeline = Pipeline(storage, ManualClock())
    writer = BatchWriter(
        pipeline,
        WriterSettings(flush_interval_s=3600, tick_interval_s=0.05, paired_calls_interval_s=0.05),
    )
    answered = threading.Semaphore(0)
    writer.start()
    try:
        for i in range(10):
            writer.enqueue(Batch(spans=_trace(i, call=True)), lambda error: answered.release())
            time.sleep(0.1)
        for _ in range(10):
            assert answered.acquire(timeout=30)
    finally:
        writer.stop()
    carried = [w for w in storage.writes if w[0] == "meshscope-store" and w[1] and w[2]]
    assert carried, storage.writes  # spans of one group, calls paired in earlier ones
    assert sorted(log.trace_id for log in _access_logs(storage)) == [
        f"{i + 1:032x}" for i in range(10)
    ]


def test_calls_carried_by_a_group_refused_as_unavailable_are_kept() -> None:
    storage = FlakyStorage()
    pipeline = Pipeline(storage, ManualClock())
    pipeline.backlog.add(_paired(0))  # waiting, as after an earlier group
    writer = BatchWriter(
        pipeline,
        WriterSettings(flush_interval_s=3600, tick_interval_s=0.05, paired_calls_interval_s=0.05),
    )
    answers: list[BaseException | None] = []
    answered = threading.Semaphore(0)
    storage.down = True
    writer.start()
    try:

        def done(error: BaseException | None) -> None:
            answers.append(error)
            answered.release()

        writer.enqueue(Batch(spans=_trace(5)), done)
        assert answered.acquire(timeout=30) and isinstance(answers[0], Exception)  # 503
        deadline = time.monotonic() + 1  # (a tick may be retrying it at this moment)
        while pipeline.backlog.rows != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipeline.backlog.rows == 1  # the carried call, kept
        storage.down = False
        _until(lambda: bool(_access_logs(storage)))
    finally:
        writer.stop()
    assert [log.trace_id for log in _access_logs(storage)] == [f"{1:032x}"]


def test_waiting_calls_are_bounded_and_taken_after_the_failed_rows() -> None:
    backlog = Backlog(limit=3)
    calls = [call for i in range(4) for call in _paired(i)]
    backlog.add(calls)
    assert backlog.dropped == 1 and backlog.rows == 0
    backlog.keep([], calls[:1])  # a failed write's calls go before the waiting ones
    assert backlog.take([], calls[:1]) == ([], [calls[0], *calls[1:], calls[0]])


def _paired(i: int) -> list[Any]:
    pipeline = Pipeline(MemoryStorage(), ManualClock())
    prepared = pipeline.prepare(Batch(spans=_trace(i, call=True)))
    _, observations = pipeline.derive_deferred([prepared])
    return observations.paired


class _PickyStorage(FlakyStorage):
    """Refuses, as a column refuses a value (OverflowError), every write holding the access
    log of a call to `bad` or a span of `bad` (with `down_after_refusal`, going down at
    that moment); counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.down_after_refusal = False

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[Any] = (),
        operations: Sequence[Any] = (),
    ) -> None:
        self.writes += 1
        if not self.down and (
            any(span.service == "bad" for span in spans)
            or any(record.is_access_log and record.service == "bad" for record in logs)
        ):
            self.down = self.down_after_refusal
            raise OverflowError("int too big to convert")
        super().write_batch(spans, logs, points, operations)


def _calls(count: int, bad: Sequence[int]) -> list[Call]:
    return [Call("web", "bad" if i in bad else f"s{i}", T0 + i, False) for i in range(count)]


def test_a_write_that_failed_on_a_value_drops_only_the_rows_that_fail_alone() -> None:
    """A value the store cannot hold (a bug upstream) would fail every write it went with:
    the write is made again in halves, so only those rows are dropped (counted), the other
    calls and tail-kept spans are stored, in a bounded number of writes."""
    storage, clock = _PickyStorage(), ManualClock()
    pipeline = _tail_pipeline(storage, clock)
    pipeline.consume(Batch(spans=_trace(0) + _trace(1)))  # kept, written at the tick
    clock.advance(6)
    pipeline.backlog.add(_calls(1000, bad=(17, 801)))
    storage.writes = 0
    pipeline.tick()
    stored = sorted(r.service for r in _access_logs(storage) if r.service.startswith("s"))
    assert stored == sorted(f"s{i}" for i in range(1000) if i not in (17, 801))
    assert storage.traces.span_counts() == {"web": 2, "db": 2}
    assert (pipeline.backlog.rows, pipeline.backlog.dropped) == (0, 2)
    assert storage.writes <= 1 + 2 * 2 * 10  # two bad calls among 2**10: two halves a level
    pipeline.flush()  # nothing of them left to fail it
    assert pipeline.backlog.dropped == 2


def test_writing_apart_is_bounded_when_every_row_fails() -> None:
    """A bug that makes every row unstorable costs MAX_APART_WRITES writes, not one per row:
    what still fails then is dropped whole."""
    storage, clock = _PickyStorage(), ManualClock()
    pipeline = Pipeline(storage, clock)
    pipeline.backlog.add(_calls(500, bad=range(500)))
    pipeline.tick()
    assert (pipeline.backlog.rows, pipeline.backlog.dropped) == (0, 500)
    assert storage.writes <= 1 + MAX_APART_WRITES + 1  # the last pair's second half too


def test_a_store_error_while_writing_apart_keeps_every_row() -> None:
    """The halves are written while the store fails (StoreUnavailableError): nothing is
    dropped, every row waits for the next write, which drops only the bad one."""
    storage, clock = _PickyStorage(), ManualClock()
    pipeline = Pipeline(storage, clock)
    pipeline.backlog.add(_calls(10, bad=(3,)))
    storage.down_after_refusal = True  # the halves find the server gone
    try:
        pipeline.tick()
    except StoreUnavailableError:
        pass
    else:
        raise AssertionError("the store error should be raised")
    assert (pipeline.backlog.rows, pipeline.backlog.dropped) == (10, 0)
    assert _access_logs(storage) == []
    storage.down = storage.down_after_refusal = False
    pipeline.tick()
    assert len(_access_logs(storage)) == 9
    assert (pipeline.backlog.rows, pipeline.backlog.dropped) == (0, 1)


class _Rows(list[int]):
    """An encoding of len() rows."""


def test_the_backlog_is_bounded_and_counts_what_it_drops() -> None:
    backlog = Backlog(limit=10)
    encodings: Sequence[Any] = [_Rows(range(4)), _Rows(range(4))]
    backlog.keep(encodings, [])
    backlog.keep([_Rows(range(4))], [])  # the oldest first: this one is older
    assert backlog.rows == 8 and backlog.dropped == 4
    encoded, calls = backlog.take([], [])
    assert encoded == list(encodings) and calls == [] and backlog.rows == 0


def test_what_a_stop_cannot_write_is_spooled_and_taken_at_the_next_start(tmp_path: Path) -> None:
    """The store down at stop (a deploy stopping ClickHouse with meshscope): the tail-kept
    spans and the derived totals since the last flush were lost; they go to the spool beside
    the store, and the next start writes the spans and goes on from those totals."""
    storage, clock = FlakyStorage(), ManualClock()
    spool = tmp_path / "store.spool"
    config = from_mapping({"tail": {"enabled": True, "decision_wait_seconds": 60, "policies": [
        {"name": "all", "type": "always_sample"}]}})  # fmt: skip
    settings = PipelineSettings(spool_path=str(spool))
    pipeline = Pipeline(storage, clock, settings, tail=TailSampler.from_config(config.tail))
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600, tick_interval_s=3600))
    answered = threading.Semaphore(0)
    writer.start()
    writer.enqueue(Batch(spans=_trace(0)), lambda error: answered.release())
    assert answered.acquire(timeout=30)  # acknowledged; buffered by the sampler
    storage.down = True
    writer.stop()  # the drain and the last flush fail
    assert spool.exists() and storage.traces.span_counts() == {}

    storage.down = False
    again = Pipeline(storage, clock, settings, tail=TailSampler.from_config(config.tail))
    assert again.resume_derived() > 0  # the derived series, from the spooled totals
    assert not spool.exists()
    again.tick()
    assert storage.traces.span_counts() == {"web": 1, "db": 1}
    again.consume(Batch(spans=_trace(1)))
    again.flush()
    totals = storage.metrics.latest("calls_total", [], 2**63 - 1, 2**63 - 1)
    assert sum(s.samples[-1].value for s in totals) == 4  # 2 spans before the stop, 2 after


def test_an_unreadable_spool_is_set_aside_not_a_failed_start(tmp_path: Path) -> None:
    spool = tmp_path / "store.spool"
    spool.write_bytes(b"not a pickle")
    pipeline = Pipeline(MemoryStorage(), ManualClock(), PipelineSettings(spool_path=str(spool)))
    assert pipeline.resume_derived() == 0
    assert not spool.exists() and (tmp_path / "store.spool.unreadable").exists()


def test_a_call_whose_sides_arrive_either_side_of_a_restart_is_paired(tmp_path: Path) -> None:
    """The client's span before a graceful stop, the server's after the start (an SDK each,
    exporting every few seconds): the edge was never counted (0 of 20 in an audit); every
    stop now keeps the spans waiting for their pair."""
    storage, clock = FlakyStorage(), ManualClock()
    settings = PipelineSettings(spool_path=str(tmp_path / "store.spool"))
    trace = "ab" * 16
    client = Span(trace, "01" * 8, "GET", "web", T0, T0 + 10**6, kind=SpanKind.CLIENT)
    server = Span(trace, "02" * 8, "GET", "api", T0, T0 + 10**5, client.span_id,
                  SpanKind.SERVER)  # fmt: skip
    pipeline = Pipeline(storage, clock, settings)
    writer = BatchWriter(pipeline, WriterSettings(flush_interval_s=3600, tick_interval_s=3600))
    answered = threading.Semaphore(0)
    writer.start()
    writer.enqueue(Batch(spans=[client]), lambda error: answered.release())
    assert answered.acquire(timeout=30)
    writer.stop()  # graceful: the client's span waits in the spool
    again = Pipeline(storage, clock, settings)
    again.resume_derived()
    clock.advance(2)
    again.consume(Batch(spans=[server]))
    again.flush()
    edges = storage.metrics.latest("traces_service_graph_request_total", [], 2**63 - 1, 2**63 - 1)
    assert [(dict(s.labels)["client"], dict(s.labels)["server"], s.samples[-1].value)
            for s in edges] == [("web", "api", 1)]  # fmt: skip
