"""The Loki push route over real HTTP (uvicorn on 127.0.0.1) into the real pipeline."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
import snappy
from starlette.applications import Starlette

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.loki_http import PUSH_PATH, loki_push_routes
from meshscope.ingest.lokipb.push_pb2 import PushRequest
from meshscope.ingest.sink import IngestSink
from meshscope.store.base import LogQuery
from tests.ingest.servers import OverloadedSink, PipelineSink, UnavailableSink
from tests.loki_data import LINES, json_push, protobuf_push
from tests.serving import serving


def _serve(sink: IngestSink, limits: IngestLimits | None = None) -> Iterator[str]:
    with serving(Starlette(routes=loki_push_routes(sink, limits))) as url:
        yield url + PUSH_PATH


@pytest.fixture
def sink() -> PipelineSink:
    return PipelineSink()


@pytest.fixture
def url(sink: PipelineSink) -> Iterator[str]:
    yield from _serve(sink)


def _stored(sink: PipelineSink) -> list[tuple[int, str, str]]:
    return [(r.time_ns, r.body, r.trace_id) for r in sink.storage.logs.find_logs(LogQuery())]


def _expected() -> list[tuple[int, str, str]]:
    return [(line.time_ns, line.body, line.trace_id) for line in LINES]


def test_protobuf_push_like_promtail_is_stored(url: str, sink: PipelineSink) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    response = httpx.post(url, content=protobuf_push(LINES), headers=headers)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert _stored(sink) == _expected()


def test_protobuf_push_saying_content_encoding_snappy_is_stored(
    url: str, sink: PipelineSink
) -> None:
    """Loki takes `Content-Encoding: snappy` as the body as it is (loki#3407: some clients
    send it); it was a 415, which clients do not retry."""
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "Snappy"}
    response = httpx.post(url, content=protobuf_push(LINES), headers=headers)
    assert response.status_code == 204, response.text
    assert _stored(sink) == _expected()


def test_json_push_plain_and_gzip(url: str, sink: PipelineSink) -> None:
    half = len(LINES) // 2
    response = httpx.post(
        url, content=json_push(LINES[:half]), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 204, response.text
    response = httpx.post(
        url,
        content=gzip.compress(json_push(LINES[half:])),
        headers={"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 204, response.text
    assert _stored(sink) == _expected()


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (
            b'{"streams":[{"stream":{"a":"b"},"values":[[1700000000000000000,"x"]]}]}',
            "application/json",
            "string of nanoseconds",
        ),
        (b"not json", "application/json", "invalid JSON"),
        (b"\x03abc", "application/x-protobuf", "snappy"),
    ],
)
def test_bad_bodies_get_a_plain_400(
    url: str, sink: PipelineSink, body: bytes, content_type: str, needle: str
) -> None:
    response = httpx.post(url, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert needle in response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert _stored(sink) == []


def test_too_large_and_bad_encoding() -> None:
    sink = PipelineSink()
    for url in _serve(sink, IngestLimits(max_body_bytes=1000, max_compressed_bytes=100_000)):
        big = gzip.compress(json_push(LINES))
        response = httpx.post(
            url,
            content=big,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 413
        request = PushRequest()
        request.streams.add(labels='{a="b"}').entries.add(line=b"x" * 5000)
        small = snappy.compress(request.SerializeToString())
        assert len(small) < 1000
        response = httpx.post(url, content=small)  # snappy that would inflate past the limit
        assert response.status_code == 413 and "exceeds" in response.text
        response = httpx.post(url, content=b"x", headers={"Content-Encoding": "br"})
        assert response.status_code == 415
    assert _stored(sink) == []


@pytest.mark.parametrize(
    ("failing", "status", "retry"), [(OverloadedSink(7), 429, "7"), (UnavailableSink(), 503, "5")]
)
def test_overload_and_unavailable_say_retry_after(
    failing: IngestSink, status: int, retry: str
) -> None:
    for url in _serve(failing):
        response = httpx.post(url, content=protobuf_push(LINES[:3]))
        assert response.status_code == status
        assert response.headers["Retry-After"] == retry
