"""Ingest worker processes: bodies decoded and prepared in a real process pool, committed by
the real writer over DuckDB, with the same derived signals as the in-process path."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.api.selfmetrics import WorkerCollector
from meshscope.clock import SystemClock
from meshscope.ingest.body import BodyError
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.sink import OverloadedError
from meshscope.ingest.workers import PIPE_BYTES, WorkerSettings, WorkerSink
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter, WriterSettings
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from tests.ingest.servers import running_http, worker_sink

JSON = "application/json"

NOW = 1_800_000_000 * 10**9


class FixedClock:
    def now_ns(self) -> int:
        return NOW


@pytest.fixture(scope="module")
def bodies() -> list[bytes]:
    return build_requests(3, 200, services=5, seed=3)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[WorkerSink]:
    pipeline = Pipeline(DuckDBStorage(tmp_path / "w.duckdb"), FixedClock())
    with worker_sink(pipeline, WorkerSettings(processes=1, max_inflight_bytes=10**6)) as sink:
        yield sink


def test_worker_prepared_bodies_store_and_derive_like_the_in_process_path(
    sink: WorkerSink, bodies: list[bytes]
) -> None:
    async def send() -> None:
        for body in bodies:
            decoded = await sink.submit_encoded("traces", gzip.compress(body), "gzip", json=False)
            assert decoded.rejected == 0 and not decoded.batch.spans

    asyncio.run(send())
    writer = sink.writer
    assert isinstance(writer, BatchWriter)
    writer.stop()  # its last group's metric updates are made once its commit has ended
    reference = Pipeline(MemoryStorage(), FixedClock())
    for body in bodies:
        reference.consume(decode_otlp("traces", body).batch)
    stored = sink.writer.pipeline.storage
    assert stored.traces.span_counts() == reference.storage.traces.span_counts()
    one = decode_otlp("traces", bodies[0]).batch.spans[0].trace_id
    assert stored.traces.get_trace(one) == reference.storage.traces.get_trace(one)
    access = LogQuery(access=True)
    assert stored.logs.find_logs(access) == reference.storage.logs.find_logs(access)
    assert sink.writer.pipeline.registry.collect(NOW) == reference.registry.collect(NOW)
    assert stored.catalog.services() == reference.storage.catalog.services()


def test_undecodable_and_oversized_bodies_are_refused_by_the_worker(sink: WorkerSink) -> None:
    async def send(raw: bytes, encoding: str) -> int:
        try:
            await sink.submit_encoded("traces", raw, encoding, json=False)
        except BodyError as error:
            return error.status
        return 200

    assert asyncio.run(send(b"\xff\xff not protobuf", "identity")) == 400
    assert asyncio.run(send(b"not gzip", "gzip")) == 400
    bomb = gzip.compress(bytes(sink.max_body_bytes + 1))
    assert asyncio.run(send(bomb, "gzip")) == 413
    assert sink.inflight_bytes == 0


def test_bodies_past_the_inflight_bound_are_refused_at_once(
    sink: WorkerSink, bodies: list[bytes]
) -> None:
    big = bodies[0] * 8  # a valid body (concatenated messages merge), ~0.7 MB
    assert len(big) * 2 > sink.settings.max_inflight_bytes > len(big)

    async def two_at_once() -> list[BaseException | None]:
        results = await asyncio.gather(
            sink.submit_encoded("traces", big, "identity", json=False),
            sink.submit_encoded("traces", big, "identity", json=False),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    errors = asyncio.run(two_at_once())
    assert errors[0] is None
    assert isinstance(errors[1], OverloadedError)
    assert sink.inflight_bytes == 0
    [_, refused] = WorkerCollector(sink).collect()  # what /metrics shows
    assert {(s.name, s.labels["reason"], s.value) for s in refused.samples} == {
        ("meshscope_ingest_worker_refused_bodies_total", "inflight_bytes", 1),
        ("meshscope_ingest_worker_refused_bodies_total", "queue_full", 0),
    }


def test_no_worker_processes_decodes_in_process(tmp_path: Path, bodies: list[bytes]) -> None:
    storage = DuckDBStorage(tmp_path / "n.duckdb")
    writer = BatchWriter(Pipeline(storage, SystemClock()))
    sink = WorkerSink(writer, WorkerSettings(processes=0))
    writer.start()
    sink.start()
    try:
        asyncio.run(sink.submit_encoded("traces", bodies[0], "identity", json=False))
        assert sum(storage.traces.span_counts().values()) == 200
    finally:
        sink.stop()
        writer.stop()
        storage.close()


def test_over_http_a_saturated_pipeline_answers_429_with_retry_after(
    sink: WorkerSink, bodies: list[bytes]
) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    with running_http(sink) as base:
        ok = httpx.post(f"{base}/v1/traces", content=bodies[0], headers=headers)
        assert ok.status_code == 200
        bad = httpx.post(f"{base}/v1/traces", content=b"\xff\xff", headers=headers)
        assert bad.status_code == 400
        sink.inflight_bytes = sink.settings.max_inflight_bytes  # as if the pool were full
        try:
            busy = httpx.post(f"{base}/v1/traces", content=bodies[1], headers=headers)
        finally:
            sink.inflight_bytes = 0
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        again = httpx.post(f"{base}/v1/logs", content=b"{}", headers={"Content-Type": JSON})
        assert again.status_code == 200
    assert sum(sink.writer.pipeline.storage.traces.span_counts().values()) == 200


def test_a_full_writer_queue_marks_the_sink_saturated(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "q.duckdb")
    writer = BatchWriter(Pipeline(storage, SystemClock()), WriterSettings(max_pending_items=1))
    sink = WorkerSink(writer, WorkerSettings(processes=0))
    assert not sink.saturated()
    writer.enqueue(Batch(logs=[LogRecord(1, "x", "svc")]), lambda error: None)  # not started
    assert writer.saturated() and sink.saturated()
    writer.start()  # commits the queued batch; then the queue has room again
    writer.stop(timeout=5)
    try:
        assert not sink.saturated()
        assert storage.logs.log_counts() == {"svc": 1}
    finally:
        storage.close()


def test_bodies_in_the_workers_hands_are_committed_as_one_group(
    tmp_path: Path, bodies: list[bytes]
) -> None:
    storage = DuckDBStorage(tmp_path / "g.duckdb")
    settings = WriterSettings(flush_interval_s=3600, linger_s=30)  # waits for every body
    writer = BatchWriter(Pipeline(storage, FixedClock()), settings)
    sink = WorkerSink(writer, WorkerSettings(processes=1, max_inflight_bytes=10**7))
    writer.start()
    sink.start()

    async def send_all() -> None:
        await asyncio.gather(
            *(sink.submit_encoded("traces", body, "identity", json=False) for body in bodies),
            # refused by the worker: the writer is nudged instead of waiting for it
            sink.submit_encoded("traces", b"\xff\xff", "identity", json=False),
            return_exceptions=True,
        )

    try:
        asyncio.run(send_all())
        assert writer.commits == 1
        assert sum(storage.traces.span_counts().values()) == 200 * len(bodies)
        assert sink.preparing == 0
    finally:
        sink.stop()
        writer.stop()
        storage.close()


def test_a_value_past_the_stores_columns_is_rejected_not_a_crash(sink: WorkerSink) -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    span.start_time_unix_nano = span.end_time_unix_nano = 2**64 - 1  # int64 ns end in 2262
    body = request.SerializeToString()

    async def send() -> None:
        # Partial success, as the in-process decoder (and so OTLP/gRPC) answers these bytes.
        decoded = await sink.submit_encoded("traces", body, "identity", json=False)
        assert (decoded.rejected, len(decoded.batch)) == (1, 0)
        assert "below 2^63" in decoded.error_message
        # the worker and the pipeline keep serving
        (good,) = build_requests(1, 20, services=2, seed=9)
        await sink.submit_encoded("traces", good, "identity", json=False)

    asyncio.run(send())
    assert sum(sink.writer.pipeline.storage.traces.span_counts().values()) == 20


def test_workers_run_at_a_lower_cpu_priority_than_the_owner(sink: WorkerSink) -> None:
    owner = os.getpid()
    children = Path(f"/proc/{owner}/task/{owner}/children").read_text().split()
    workers = [int(pid) for pid in children if _is_worker(int(pid))]
    assert len(workers) == sink.settings.processes
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in workers] == [
        min(19, mine + sink.settings.nice)
    ]


def test_the_pools_pipes_hold_a_whole_prepared_request(
    sink: WorkerSink, bodies: list[bytes]
) -> None:
    """Both pipes (bodies in, prepared rows out) are widened past a request's size, so a
    worker's write does not wait for the owner's GIL (ADR 0006, revision 6); fails when a
    Python moves the executor's queues."""
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    expected = PIPE_BYTES if os.geteuid() == 0 or limit >= PIPE_BYTES else limit
    assert sink.pipe_bytes == [expected, expected]
    assert expected > 4 * max(map(len, bodies))  # room for several of these bodies

    async def send() -> None:  # and the pool still carries them
        for body in bodies:
            decoded = await sink.submit_encoded("traces", body, "identity", json=False)
            assert decoded.rejected == 0

    asyncio.run(send())
    assert sum(sink.writer.pipeline.storage.traces.span_counts().values()) == 600


def _is_worker(pid: int) -> bool:
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def test_worker_settings_refuse_a_nice_outside_0_to_19() -> None:
    with pytest.raises(ValueError, match="nice"):
        WorkerSettings(nice=-1)
    with pytest.raises(ValueError, match="nice"):
        WorkerSettings(nice=20)
