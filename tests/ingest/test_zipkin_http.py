"""Zipkin v2 `POST /api/v2/spans` against a real uvicorn server, the OTel Zipkin exporter
as client."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from meshscope.model.spans import SpanKind, StatusCode
from tests.ingest.otel_sdk import make_spans
from tests.ingest.sdk_checks import span_hex, stored_span
from tests.ingest.servers import OverloadedSink, PipelineSink, UnavailableSink, running_http

JSON = {"Content-Type": "application/json"}
SPAN = (
    b'[{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2", "name": "get /api",'
    b' "kind": "SERVER", "timestamp": 1556604172355737, "duration": 1431,'
    b' "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},'
    b' "annotations": [{"timestamp": 1556604172355800, "value": "wire send"}],'
    b' "tags": {"http.method": "GET"}}]'
)


@pytest.fixture
def sink() -> PipelineSink:
    return PipelineSink()


@pytest.fixture
def url(sink: PipelineSink) -> Iterator[str]:
    with running_http(sink) as base:
        yield f"{base}/api/v2/spans"


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


def _micros(ns: int) -> int:
    return (ns + 500) // 1000 * 1000


def test_otel_zipkin_exporter_spans_arrive(
    url: str, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    exporter = ZipkinExporter(endpoint=url)
    assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    exporter.shutdown()
    for sent in sdk_spans:
        got = stored_span(sink.storage, sent)
        assert sent.parent is not None and sent.start_time is not None
        assert got.service == "checkout"
        assert got.name == sent.name
        assert got.parent_span_id == span_hex(sent.parent.span_id)
        assert got.kind is SpanKind[sent.kind.name]
        assert got.status_code is StatusCode[sent.status.status_code.name]
        assert got.start_ns == _micros(sent.start_time)
        assert [e.name for e in got.events] == [e.name for e in sent.events]
        for key, value in (sent.attributes or {}).items():
            if isinstance(value, str):
                assert got.attributes[key] == value
    server = next(s for s in sdk_spans if s.name == "GET /api/cart")
    stored = stored_span(sink.storage, server)
    assert stored.attributes["http.response.status_code"] == "200"
    assert stored.events[0].attributes == {"items": 3, "note": "ok"}


def test_accepted_is_202_with_an_empty_body(url: str, sink: PipelineSink) -> None:
    response = httpx.post(url, content=SPAN, headers=JSON)
    assert (response.status_code, response.content) == (202, b"")
    (span,) = sink.storage.traces.get_trace("00000000000000005af7183fb1d4cf5f")
    assert (span.service, span.name, span.kind) == ("backend", "get /api", SpanKind.SERVER)
    assert span.attributes["http.method"] == "GET"
    assert [e.name for e in span.events] == ["wire send"]


def test_gzip_and_missing_content_type_are_accepted(url: str, sink: PipelineSink) -> None:
    response = httpx.post(url, content=gzip.compress(SPAN), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 202
    assert len(sink.batches) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (SPAN, {"Content-Type": "application/x-protobuf"}, 415, "proto3"),
        (SPAN, {"Content-Type": "text/plain"}, 415, "Content-Type"),
        (SPAN, {**JSON, "Content-Encoding": "zstd"}, 415, "Content-Encoding"),
        (b'{"traceId": "1"}', JSON, 400, "must be a JSON list"),
        (b"[{", JSON, 400, "invalid JSON"),
        (b'[{"traceId": "xyz", "id": "1"}]', JSON, 400, "span 0"),
        (b"\x1f\x8b\x08\x00broken", {**JSON, "Content-Encoding": "gzip"}, 400, "gzip"),
        (bytes(21 * 1024 * 1024), JSON, 413, "exceeds the limit"),
    ],
    ids=["proto3", "text", "zstd", "object", "json", "bad-id", "gzip", "oversize"],
)
def test_bad_requests_get_a_plain_text_reason(
    url: str, sink: PipelineSink, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert message in response.text
    assert not sink.batches
    assert httpx.post(url, content=SPAN, headers=JSON).status_code == 202


def test_overload_is_429_with_retry_after() -> None:
    with running_http(OverloadedSink(retry_after_s=3)) as base:
        response = httpx.post(f"{base}/api/v2/spans", content=SPAN, headers=JSON)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.text == "overloaded, retry later: queue full"


def test_store_unavailable_is_503_with_retry_after() -> None:
    with running_http(UnavailableSink()) as base:
        response = httpx.post(f"{base}/api/v2/spans", content=SPAN, headers=JSON)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
