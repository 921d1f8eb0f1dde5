"""Chunked encoding of an export batch is one OTLP request with every item, in order, and
one resource block per service."""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.ingest.otlp import decode_otlp
from meshscope.model.logs import LogRecord, Severity
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.sidecar.encode import LogRequest, SpanRequest, encode_logs, encode_spans
from meshscope.sidecar.export import ENCODE_CHUNK, encode_in_chunks


def spans(n: int) -> list[Span]:
    return [
        Span(
            f"{i + 1:032x}",
            f"{i + 1:016x}",
            f"GET /items/{i % 3}",
            "web" if i % 2 else "api",
            1_000 + i,
            5_000 + i,
            kind=SpanKind.SERVER,
            status_code=StatusCode.ERROR if i % 7 == 0 else StatusCode.UNSET,
            attributes={"http.response.status_code": 500 if i % 7 == 0 else 200},
            resource={"service.name": "web" if i % 2 else "api"},
        )
        for i in range(n)
    ]


def test_chunked_spans_decode_like_one_encoding() -> None:
    batch = spans(3 * ENCODE_CHUNK + 5)
    body = asyncio.run(encode_in_chunks(SpanRequest(), batch))
    chunked = decode_otlp("traces", body).batch.spans
    whole = decode_otlp("traces", encode_spans(batch)).batch.spans
    assert len(chunked) == len(batch)
    key = lambda s: (s.span_id, s.service, s.name, s.start_ns, s.end_ns, s.status_code)  # noqa: E731
    assert sorted(map(key, chunked)) == sorted(map(key, whole))
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    assert len(request.resource_spans) == 2  # one per service, not one per chunk


def test_chunked_logs_keep_every_record() -> None:
    records = [
        LogRecord(10 + i, f"line {i}", "web", Severity.INFO, trace_id=f"{i + 1:032x}")
        for i in range(2 * ENCODE_CHUNK + 1)
    ]
    body = asyncio.run(encode_in_chunks(LogRequest(), records))
    decoded = decode_otlp("logs", body).batch.logs
    assert [(r.body, r.trace_id) for r in decoded] == [(r.body, r.trace_id) for r in records]
    assert body == encode_logs(records)


def test_empty_batch_encodes_to_an_empty_request() -> None:
    assert asyncio.run(encode_in_chunks(SpanRequest(), [])) == encode_spans([])
    assert decode_otlp("traces", b"").batch.spans == []
