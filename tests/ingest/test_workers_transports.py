"""Every span transport goes through the ingest worker processes: OTLP/gRPC (what the OTel
Collector's default `otlp` exporter speaks) and Zipkin, not only OTLP/HTTP. Real clients (the
OTel SDK's gRPC and Zipkin exporters) against real servers, a real process pool and the real
writer over a DuckDB file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from meshscope.clock import SystemClock
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.workers import WorkerSink
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.pipeline.chain import Pipeline
from meshscope.store.base import Operation
from meshscope.store.codec import id64, id128
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.memory import MemoryStorage
from meshscope.store.span_columns import SpanColumns
from tests.ingest.otel_sdk import make_logs, make_spans
from tests.ingest.sdk_checks import assert_otlp_spans_stored, assert_sdk_logs_stored
from tests.ingest.servers import HOST, running_grpc, running_http, worker_sink

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[WorkerSink]:
    with worker_sink(Pipeline(DuckDBStorage(tmp_path / "t.duckdb"), SystemClock())) as sink:
        yield sink


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


def test_otlp_grpc_traces_and_logs_are_decoded_by_the_workers(
    sink: WorkerSink, sdk_spans: list[ReadableSpan]
) -> None:
    records, _ = make_logs()
    with running_grpc(sink) as port:
        spans = OTLPSpanExporter(
            endpoint=f"http://{HOST}:{port}", compression=grpc.Compression.Gzip
        )
        assert spans.export(sdk_spans) is SpanExportResult.SUCCESS
        spans.shutdown()
        logs = OTLPLogExporter(endpoint=f"http://{HOST}:{port}")
        assert logs.export(records) is LogRecordExportResult.SUCCESS
        logs.shutdown()
    assert sink.prepared_bodies == {"traces": 1, "logs": 1, "zipkin": 0}
    storage = sink.writer.pipeline.storage
    assert_otlp_spans_stored(storage, sdk_spans)
    assert_sdk_logs_stored(storage, records)


def test_zipkin_spans_are_decoded_by_the_workers(
    sink: WorkerSink, sdk_spans: list[ReadableSpan]
) -> None:
    with running_http(sink) as url:
        exporter = ZipkinExporter(endpoint=f"{url}/api/v2/spans")
        assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
        exporter.shutdown()
        bad = httpx.post(f"{url}/api/v2/spans", content=b"not json", timeout=10)
    assert bad.status_code == 400, bad.text
    assert sink.prepared_bodies["zipkin"] == 1
    stored = sink.writer.pipeline.storage.traces.span_counts()
    assert sum(stored.values()) == len(sdk_spans)


def test_grpc_and_http_store_the_same_requests_alike(tmp_path: Path) -> None:
    """The same pre-encoded requests over OTLP/gRPC into one store and OTLP/HTTP into another:
    the same spans per service; refusals of undecodable bytes alike (INVALID_ARGUMENT / 400)."""
    bodies = build_requests(4, 100, services=4, seed=11)
    counts = []
    for transport in ("grpc", "http"):
        storage = DuckDBStorage(tmp_path / f"{transport}.duckdb")
        with worker_sink(Pipeline(storage, SystemClock())) as sink:
            if transport == "grpc":
                with running_grpc(sink) as port, grpc.insecure_channel(f"{HOST}:{port}") as channel:
                    export = channel.unary_unary(TRACE_EXPORT)
                    for body in bodies:
                        export(body, timeout=10)
                    with pytest.raises(grpc.RpcError) as raised:
                        export(b"\x0a\xff\xff\xff\xff", timeout=10)
                    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            else:
                with running_http(sink) as url:
                    headers = {"Content-Type": "application/x-protobuf"}
                    for body in bodies:
                        answer = httpx.post(f"{url}/v1/traces", content=body, headers=headers)
                        assert answer.status_code == 200
                    bad = httpx.post(
                        f"{url}/v1/traces", content=b"\x0a\xff\xff\xff\xff", headers=headers
                    )
                    assert bad.status_code == 400
            assert sink.prepared_bodies["traces"] == len(bodies)
            counts.append(storage.traces.span_counts())
    assert counts[0] == counts[1]
    assert sum(counts[0].values()) == 400


def ids_of_columns(columns: SpanColumns) -> list[tuple[int, int, int]]:
    """A second backend's column encoder: (trace_hi, trace_lo, span_id) of every span."""
    return [(row[2], row[3], row[4]) for row in columns.rows]


def ids_of_spans(spans: Sequence[Span]) -> list[tuple[int, int, int]]:
    """Its span encoder: not to be used for OTLP traces, which workers walk into columns."""
    raise AssertionError("OTLP traces went through model spans")


class IdStorage(MemoryStorage):
    """A two-phase backend of its own, not DuckDB: it keeps what its encoder made."""

    span_encoder = staticmethod(ids_of_spans)
    column_encoder = staticmethod(ids_of_columns)

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[tuple[int, int, int]] = []

    def write_encoded(
        self,
        encoded_spans: Sequence[Any],
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
        calls: Sequence[Call] = (),
    ) -> None:
        for ids in encoded_spans:
            self.ids += ids
        self.write_batch(logs=logs, points=points, operations=operations)


def test_workers_encode_with_whatever_encoder_the_backend_declares() -> None:
    """The workers walk OTLP into backend-neutral columns and call the store's own encoder:
    a backend that is not DuckDB gets its rows from them, no model spans on the way."""
    bodies = build_requests(3, 100, services=3, seed=5)
    storage = IdStorage()
    with worker_sink(Pipeline(storage, SystemClock())) as sink:

        async def send() -> None:
            for body in bodies:
                await sink.submit_encoded("traces", body, "identity", json=False)

        asyncio.run(send())
        assert sink.prepared_bodies["traces"] == len(bodies)
    sent = [
        (*id128(span.trace_id), id64(span.span_id))
        for body in bodies
        for span in decode_otlp("traces", body).batch.spans
    ]
    assert storage.ids == sent
