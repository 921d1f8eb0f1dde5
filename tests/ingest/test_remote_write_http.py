"""`POST /api/v1/write` on a real uvicorn server: hand-built requests for every answer, and the
real Prometheus binary (agent mode) scraping a prometheus_client target and remote-writing."""

from __future__ import annotations

import math
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cramjam
import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.ingest.limits import IngestLimits
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from meshscope.ingest.prompb.types_pb2 import MetricMetadata
from meshscope.ingest.remote_write_http import remote_write_routes
from meshscope.ingest.sink import IngestSink
from meshscope.model.metrics import MetricType
from meshscope.store.base import Series
from meshscope.store.memory import MemoryStorage
from tests.ingest.asgi_server import HOST, LockedPipelineSink, free_port, serving
from tests.ingest.servers import OverloadedSink, UnavailableSink

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


def write_url(sink: IngestSink, limits: IngestLimits | None = None) -> Iterator[str]:
    with serving(Starlette(routes=remote_write_routes(sink, limits))) as base:
        yield f"{base}/api/v1/write"


@pytest.fixture
def sink() -> LockedPipelineSink:
    return LockedPipelineSink()


@pytest.fixture
def url(sink: LockedPipelineSink) -> Iterator[str]:
    yield from write_url(sink)


def snappy(request: WriteRequest) -> bytes:
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def series_request(
    name: str, labels: dict[str, str], samples: list[tuple[int, float]]
) -> WriteRequest:
    request = WriteRequest()
    series = request.timeseries.add()
    for key, label_value in {"__name__": name, **labels}.items():
        series.labels.add(name=key, value=label_value)
    for ts_ms, value in samples:
        series.samples.add(value=value, timestamp=ts_ms)
    return request


def post(url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(url, content=body, headers={**HEADERS, **headers})


def test_samples_are_stored_with_sorted_labels_and_ns_times(
    url: str, sink: LockedPipelineSink
) -> None:
    request = series_request(
        "http_requests_total",
        {"zone": "eu", "code": "200", "empty": ""},
        [(1_700_000_000_000, 5.0), (1_700_000_015_000, 8.5)],
    )
    response = post(url, snappy(request))
    assert (response.status_code, response.content) == (204, b"")
    (series,) = sink.series("http_requests_total")
    assert series.labels == (("code", "200"), ("zone", "eu"))
    assert [(p.time_ns, p.value) for p in series.samples] == [
        (1_700_000_000_000_000_000, 5.0),
        (1_700_000_015_000_000_000, 8.5),
    ]
    assert series.samples[0].type is MetricType.UNKNOWN


def test_staleness_markers_keep_their_bits(url: str, sink: LockedPipelineSink) -> None:
    request = series_request("up", {"job": "a"}, [(1000, 1.0), (2000, STALE_NAN)])
    assert post(url, snappy(request)).status_code == 204
    (series,) = sink.series("up")
    stale = series.samples[1].value
    assert math.isnan(stale)
    assert struct.pack("<d", stale) == struct.pack("<d", STALE_NAN)


def test_metadata_sent_before_the_samples_types_them(url: str, sink: LockedPipelineSink) -> None:
    metadata = WriteRequest()
    metadata.metadata.add(
        type=MetricMetadata.HISTOGRAM,
        metric_family_name="rpc_seconds",
        help="RPC latency.",
        unit="seconds",
    )
    metadata.metadata.add(type=MetricMetadata.GAUGE, metric_family_name="temp", help="Temp.")
    assert post(url, snappy(metadata)).status_code == 204
    request = series_request("rpc_seconds_bucket", {"le": "0.5"}, [(1000, 3.0)])
    request.timeseries.extend(series_request("rpc_seconds_sum", {}, [(1000, 0.75)]).timeseries)
    request.timeseries.extend(series_request("temp", {}, [(1000, 21.5)]).timeseries)
    request.timeseries.extend(series_request("other", {}, [(1000, 1.0)]).timeseries)
    assert post(url, snappy(request)).status_code == 204

    def point(name: str) -> tuple[MetricType, str, str, float]:
        (series,) = sink.series(name)
        (p,) = series.samples
        return p.type, p.help, p.unit, p.value

    assert point("rpc_seconds_bucket") == (MetricType.COUNTER, "RPC latency.", "seconds", 3.0)
    assert point("rpc_seconds_sum") == (MetricType.COUNTER, "RPC latency.", "seconds", 0.75)
    assert point("temp") == (MetricType.GAUGE, "Temp.", "", 21.5)
    assert point("other") == (MetricType.UNKNOWN, "", "", 1.0)


def test_invalid_series_are_refused_and_the_rest_stored(url: str, sink: LockedPipelineSink) -> None:
    request = series_request("good", {}, [(1000, 1.0)])
    request.timeseries.extend(series_request("", {"a": "b"}, [(1000, 2.0)]).timeseries)
    twice = request.timeseries.add()
    twice.labels.add(name="__name__", value="dup")
    twice.labels.add(name="x", value="1")
    twice.labels.add(name="x", value="2")
    twice.samples.add(value=3.0, timestamp=1000)
    native = request.timeseries.add()
    native.labels.add(name="__name__", value="native")
    native.histograms.append(b"\x08\x01")
    nameless_label = series_request("blank", {"": "v"}, [(1000, 4.0)])
    request.timeseries.extend(nameless_label.timeseries)
    response = post(url, snappy(request))
    assert response.status_code == 400
    assert "rejected 4 series" in response.text
    assert "empty label name" in response.text
    assert "without a __name__" in response.text
    assert "duplicate label name 'x'" in response.text
    assert "native histograms" in response.text
    assert [s.samples[0].value for s in sink.series("good")] == [1.0]
    assert sink.series("dup") == [] and sink.series("blank") == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not snappy at all \xff\xff", "invalid snappy body"),
        (
            bytes(cramjam.snappy.compress_raw(b"\x0a\x05\x0a\x03")),
            "invalid prometheus.WriteRequest",
        ),
    ],
)
def test_undecodable_bodies_are_400(url: str, body: bytes, needle: str) -> None:
    response = post(url, body)
    assert response.status_code == 400
    assert needle in response.text


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({"Content-Type": "application/json"}, "unsupported Content-Type"),
        (
            {"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
            "remote write 2.0 is not supported",
        ),
        ({"X-Prometheus-Remote-Write-Version": "2.0.0"}, "remote write 2.0 is not supported"),
        ({"Content-Encoding": "gzip"}, "unsupported Content-Encoding 'gzip'"),
    ],
)
def test_other_formats_are_415_naming_the_supported_one(
    url: str, sink: LockedPipelineSink, headers: dict[str, str], needle: str
) -> None:
    response = post(url, snappy(series_request("x", {}, [(1, 1.0)])), **headers)
    assert response.status_code == 415
    assert needle in response.text
    assert "remote write 1.0" in response.text
    assert sink.batches == 0


def test_missing_headers_are_taken_like_prometheus_does(url: str, sink: LockedPipelineSink) -> None:
    body = snappy(series_request("x", {}, [(1, 1.0)]))
    assert httpx.post(url, content=body).status_code == 204
    assert sink.batches == 1


def test_a_body_inflating_past_the_limit_is_413_before_inflating(
    sink: LockedPipelineSink,
) -> None:
    request = series_request("x", {"pad": "p" * 5000}, [(1, 1.0)])
    for base in write_url(sink, IngestLimits(max_body_bytes=4096)):
        response = post(base, snappy(request))
        assert response.status_code == 413
        assert "over the limit of 4096" in response.text
    assert sink.batches == 0


def test_overload_is_503_with_the_sinks_retry_after() -> None:
    for base in write_url(OverloadedSink(retry_after_s=7)):
        response = post(base, snappy(series_request("x", {}, [(1, 1.0)])))
        assert (response.status_code, response.headers["Retry-After"]) == (503, "7")
        assert "overloaded" in response.text


def test_unavailable_store_is_503_with_retry_after() -> None:
    for base in write_url(UnavailableSink(), IngestLimits(unavailable_retry_after_s=3)):
        response = post(base, snappy(series_request("x", {}, [(1, 1.0)])))
        assert (response.status_code, response.headers["Retry-After"]) == (503, "3")
        assert "disk full" in response.text


def test_get_is_405(url: str) -> None:
    assert httpx.get(url).status_code == 405


# --- the real Prometheus as remote write client ---------------------------------------------


def target_app() -> Starlette:
    registry = CollectorRegistry()
    requests = Counter("demo_requests", "Requests served.", ["method"], registry=registry)
    requests.labels("GET").inc(7)
    Gauge("demo_temperature_celsius", "Temperature.", registry=registry).set(21.5)
    latency = Histogram("demo_latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.5, 2.0):
        latency.observe(value)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", metrics)])


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ["{target}"]}}]
remote_write:
  - url: {url}
    queue_config: {{batch_send_deadline: 200ms, min_backoff: 50ms, max_backoff: 200ms}}
    metadata_config: {{send: true, send_interval: 1s}}
"""


@pytest.fixture
def prometheus_writing(tmp_path: Path, url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian package `prometheus`)")
    with serving(target_app()) as target_base:
        target = target_base.removeprefix("http://")
        config = tmp_path / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(target=target, url=url))
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                binary,
                "--enable-feature=agent",
                f"--config.file={config}",
                f"--storage.agent.path={tmp_path / 'wal'}",
                f"--web.listen-address={HOST}:{free_port()}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield target, process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()


def _one(series: list[Series], **labels: str) -> Series:
    found = [s for s in series if all(dict(s.labels).get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, [s.labels for s in series])
    return found[0]


@pytest.mark.slow
def test_real_prometheus_remote_writes_what_it_scrapes(
    sink: LockedPipelineSink, prometheus_writing: tuple[str, subprocess.Popen[bytes]]
) -> None:
    target, process = prometheus_writing

    def typed(storage: MemoryStorage) -> bool:
        # Metadata travels in its own requests: wait for samples sent after it arrived.
        return any(
            p.type is MetricType.COUNTER
            for s in storage.metrics.select("demo_latency_seconds_bucket", [], 0, 2**62)
            for p in s.samples
        )

    started = time.time_ns()
    sink.wait_for(typed, timeout_s=20)
    assert process.poll() is None
    ids = {"job": "demo", "instance": target}
    requests = _one(sink.series("demo_requests_total"), method="GET", **ids)
    assert {p.value for p in requests.samples} == {7.0}
    assert all(p.time_ns % 1_000_000 == 0 for p in requests.samples)
    assert started - 60 * 10**9 < requests.samples[0].time_ns < time.time_ns()
    temperature = _one(sink.series("demo_temperature_celsius"), **ids)
    assert {p.value for p in temperature.samples} == {21.5}
    buckets = sink.series("demo_latency_seconds_bucket")
    for le, count in (("0.1", 1.0), ("1.0", 2.0), ("+Inf", 3.0)):
        assert {p.value for p in _one(buckets, le=le, **ids).samples} == {count}
    assert {p.value for p in _one(sink.series("demo_latency_seconds_sum"), **ids).samples} == {2.55}
    assert {p.value for p in _one(sink.series("demo_latency_seconds_count"), **ids).samples} == {
        3.0
    }
    assert 1.0 in {p.value for p in _one(sink.series("up"), **ids).samples}
    typed_points = [
        p
        for p in _one(sink.series("demo_requests_total"), **ids).samples
        if p.type is MetricType.COUNTER
    ]
    assert typed_points
    assert typed_points[0].help == "Requests served."


def test_each_tenant_remembers_its_own_metadata() -> None:
    """One tenant's HELP, type and unit never type another tenant's series of that name
    (the decoder is one per process)."""
    from meshscope.ingest.remote_write import RemoteWriteDecoder
    from meshscope.tenancy.context import as_tenants

    decoder = RemoteWriteDecoder()
    metadata = WriteRequest()
    metadata.metadata.add(
        type=MetricMetadata.COUNTER, metric_family_name="jobs", help="a's private help"
    )
    with as_tenants("a"):
        decoder.decode_request(metadata)
    sample = series_request("jobs", {}, [(1000, 1.0)])
    with as_tenants("b"):
        (point,) = decoder.decode_request(sample).batch.metrics
        assert (point.type, point.help) == (MetricType.UNKNOWN, "")
    with as_tenants("a"):
        (point,) = decoder.decode_request(sample).batch.metrics
        assert (point.type, point.help) == (MetricType.COUNTER, "a's private help")
