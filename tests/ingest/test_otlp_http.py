"""OTLP/HTTP against a real uvicorn server, with the real OTel SDK exporters as clients."""

from __future__ import annotations

import base64
import gzip
import logging
import socket
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.ingest.otel_sdk import make_logs, make_spans, traces_request_bytes
from tests.ingest.sdk_checks import (
    assert_otlp_spans_stored,
    assert_sdk_logs_stored,
    assert_sdk_metrics_stored,
    sdk_metrics,
    span_hex,
    stored_span,
    trace_hex,
)
from tests.ingest.servers import (
    BrokenSink,
    OverloadedSink,
    PipelineSink,
    UnavailableSink,
    running_http,
)

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def sink() -> PipelineSink:
    return PipelineSink()


@pytest.fixture
def url(sink: PipelineSink) -> Iterator[str]:
    with running_http(sink) as base:
        yield base


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


@pytest.mark.parametrize("compression", [None, Compression.Gzip, Compression.Deflate])
def test_sdk_spans_arrive_intact(
    url: str, sink: PipelineSink, sdk_spans: list[ReadableSpan], compression: Compression | None
) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=compression)
    assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert_otlp_spans_stored(sink.storage, sdk_spans)
    assert sink.storage.catalog.services() == ["checkout"]


def test_sdk_logs_arrive_intact(url: str, sink: PipelineSink) -> None:
    records, _ = make_logs()
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs")
    assert exporter.export(records) is LogRecordExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]
    assert_sdk_logs_stored(sink.storage, records)


def test_sdk_metrics_arrive_intact(url: str, sink: PipelineSink) -> None:
    exporter = OTLPMetricExporter(endpoint=f"{url}/v1/metrics")
    assert exporter.export(sdk_metrics()) is MetricExportResult.SUCCESS
    exporter.shutdown()
    assert_sdk_metrics_stored(sink.storage)


def _otlp_json(spans: list[ReadableSpan]) -> bytes:
    """OTLP/JSON as the spec writes it: lowerCamelCase keys and hex ids."""
    document = MessageToDict(encode_spans(spans))
    _hex_ids(document)
    return orjson.dumps(document)


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def test_otlp_json_is_answered_in_json(
    url: str, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = httpx.post(f"{url}/v1/traces", content=_otlp_json(sdk_spans), headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert_otlp_spans_stored(sink.storage, sdk_spans)


def _with_one_bad_span(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    request = encode_spans(spans)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02"
    return request


def test_partial_success_in_protobuf(
    url: str, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    body = _with_one_bad_span(sdk_spans).SerializeToString()
    response = httpx.post(f"{url}/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert answer.partial_success.error_message.startswith("rejected 1 spans: ")
    assert_otlp_spans_stored(sink.storage, sdk_spans[1:])


def test_partial_success_in_json(url: str, sdk_spans: list[ReadableSpan]) -> None:
    document = MessageToDict(_with_one_bad_span(sdk_spans))
    response = httpx.post(f"{url}/v1/traces", content=orjson.dumps(document), headers=JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1
    assert partial["errorMessage"].startswith("rejected 1 spans: ")


def test_large_request_is_decoded_off_the_loop_and_kept(url: str, sink: PipelineSink) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for index in range(3000):
        spans.add(
            trace_id=bytes.fromhex(trace_hex(index + 1)),
            span_id=bytes.fromhex(span_hex(index + 1)),
            name=f"op-{index % 7}",
            start_time_unix_nano=1_700_000_000_000_000_000 + index,
            end_time_unix_nano=1_700_000_000_000_001_000 + index,
        )
    body = gzip.compress(request.SerializeToString())
    headers = {**PROTOBUF, "Content-Encoding": "gzip"}
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers)
    assert response.status_code == 200
    assert sink.storage.traces.span_counts() == {"unknown_service": 3000}


def _status(response: httpx.Response) -> tuple[int, str]:
    """The google.rpc.Status of a failure answer, in the answer's own content type."""
    if response.headers["content-type"] == "application/json":
        document = response.json()
        return document["code"], document["message"]
    status = status_pb2.Status.FromString(response.content)
    return status.code, status.message


def _gzip_bomb() -> bytes:
    """1 GiB of zeros in about 1 MB: eight gzip members of 128 MiB each."""
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    parts = [member.compress(chunk) for _ in range(128)]
    parts.append(member.flush())
    return b"".join(parts) * 8


VALID = traces_request_bytes(make_spans())
BAD_CASES: list[tuple[str, bytes, dict[str, str], int, int, str]] = [
    ("protobuf", b"\x0a\xff\xff\xff", PROTOBUF, 400, 3, "invalid protobuf"),
    ("truncated", VALID[: len(VALID) // 2], PROTOBUF, 400, 3, "invalid protobuf"),
    ("json", b'{"resourceSpans": [', JSON, 400, 3, "invalid JSON"),
    ("json-type", b"[1, 2]", JSON, 400, 3, "expected an object"),
    ("content-type", VALID, {"Content-Type": "text/plain"}, 415, 3, "Content-Type"),
    ("no-type", VALID, {}, 415, 3, "Content-Type"),
    ("encoding", VALID, {**PROTOBUF, "Content-Encoding": "br"}, 415, 3, "Content-Encoding"),
    ("gzip", b"\x1f\x8bnot gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, 3, "gzip"),
    (
        "gzip-truncated",
        gzip.compress(VALID)[:-20],
        {**PROTOBUF, "Content-Encoding": "gzip"},
        400,
        3,
        "truncated",
    ),
    ("deflate", b"\x00garbage", {**JSON, "Content-Encoding": "deflate"}, 400, 3, "deflate"),
    ("oversize", bytes(20 * 1024 * 1024 + 1), PROTOBUF, 413, 8, "exceeds the limit"),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "message"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_requests_get_a_status_and_the_server_stays_healthy(
    url: str,
    sink: PipelineSink,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: int,
    message: str,
) -> None:
    response = httpx.post(f"{url}/v1/traces", content=body, headers=headers)
    assert response.status_code == status
    got_code, got_message = _status(response)
    assert got_code == code
    assert message in got_message
    assert not sink.batches
    after = httpx.post(f"{url}/v1/traces", content=VALID, headers=PROTOBUF)
    assert after.status_code == 200
    assert len(sink.batches) == 1


def test_oversize_streamed_body_is_refused_without_content_length(url: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(25):
            yield bytes(1 << 20)

    response = httpx.post(f"{url}/v1/logs", content=chunks(), headers=PROTOBUF)
    assert response.status_code == 413
    assert httpx.post(f"{url}/v1/logs", content=b"", headers=PROTOBUF).status_code == 200


def test_gzip_bomb_is_refused_quickly_within_the_limit(url: str, sink: PipelineSink) -> None:
    bomb = _gzip_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    headers = {**JSON, "Content-Encoding": "gzip"}
    tracemalloc.start()  # the server runs in this process: its allocations are traced too
    try:
        response = httpx.post(f"{url}/v1/metrics", content=bomb, headers=headers, timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert peak < 26 * 1024 * 1024, f"peak {peak} bytes: the bomb was not capped at 20 MiB"
    assert _status(response) == (8, "decompressed request body exceeds the limit of 20971520 bytes")
    assert not sink.batches
    assert httpx.post(f"{url}/v1/metrics", content=b"{}", headers=JSON).status_code == 200


def test_only_post_is_allowed(url: str) -> None:
    assert httpx.get(f"{url}/v1/traces").status_code == 405


def test_overload_is_429_with_retry_after() -> None:
    sink = OverloadedSink(retry_after_s=7)
    with running_http(sink) as base:
        response = httpx.post(f"{base}/v1/traces", content=VALID, headers=PROTOBUF)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        code, message = _status(response)
        assert (code, message) == (8, "overloaded, retry later: queue full")
        empty = httpx.post(f"{base}/v1/traces", content=b"{}", headers=JSON)
        assert empty.status_code == 200  # nothing to store: the sink is not asked
    assert sink.calls == 1


def test_store_unavailable_is_503_with_retry_after() -> None:
    with running_http(UnavailableSink()) as base:
        response = httpx.post(f"{base}/v1/logs", content=b"{}", headers=JSON)
        assert response.status_code == 200
        _, body = make_logs()
        response = httpx.post(f"{base}/v1/logs", content=body, headers=PROTOBUF)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert _status(response) == (14, "storage unavailable, data not stored: disk full")


def test_unexpected_errors_are_500_logged_and_survived(caplog: pytest.LogCaptureFixture) -> None:
    sink = BrokenSink(failures=1)
    with caplog.at_level(logging.ERROR), running_http(sink) as base:
        response = httpx.post(f"{base}/v1/traces", content=VALID, headers=PROTOBUF)
        assert response.status_code == 500
        assert _status(response) == (13, "internal error: RuntimeError")
        assert httpx.post(f"{base}/v1/traces", content=VALID, headers=PROTOBUF).status_code == 200
    assert any("unexpected error receiving /v1/traces" in r.message for r in caplog.records)
    assert sink.received == 1


def test_stored_span_parent_is_the_remote_parent(
    url: str, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    httpx.post(f"{url}/v1/traces", content=traces_request_bytes(sdk_spans), headers=PROTOBUF)
    root = next(s for s in sdk_spans if s.name == "GET /api/cart")
    assert root.parent is not None
    assert stored_span(sink.storage, root).parent_span_id == span_hex(root.parent.span_id)


def test_keep_alive_connection_survives_an_early_413(url: str) -> None:
    with httpx.Client() as client:
        for _ in range(2):
            big = client.post(f"{url}/v1/traces", content=bytes(21 << 20), headers=PROTOBUF)
            assert big.status_code == 413
            assert client.post(f"{url}/v1/traces", content=VALID, headers=PROTOBUF).is_success


def test_client_gone_mid_body_leaves_the_server_healthy(url: str, sink: PipelineSink) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n" + VALID[:10]
        )
        raw.shutdown(socket.SHUT_WR)
        raw.recv(1000)  # wait for the server to close; no answer can reach a client that left
    assert not sink.batches
    assert httpx.post(f"{url}/v1/traces", content=VALID, headers=PROTOBUF).status_code == 200
