"""OTLP/gRPC against a real grpc.aio server, with the real OTel SDK gRPC exporters as clients."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from meshscope.ingest.grpc import RETRY_INFO_KEY, STATUS_DETAILS_KEY
from tests.ingest.otel_sdk import make_logs, make_spans
from tests.ingest.sdk_checks import (
    assert_otlp_spans_stored,
    assert_sdk_logs_stored,
    assert_sdk_metrics_stored,
    sdk_metrics,
)
from tests.ingest.servers import (
    HOST,
    BrokenSink,
    OverloadedSink,
    PipelineSink,
    UnavailableSink,
    running_grpc,
)

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def sink() -> PipelineSink:
    return PipelineSink()


@pytest.fixture
def port(sink: PipelineSink) -> Iterator[int]:
    with running_grpc(sink) as bound:
        yield bound


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


@pytest.fixture
def channel(port: int) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"{HOST}:{port}") as opened:
        yield opened


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_sdk_spans_arrive_intact(
    port: int,
    sink: PipelineSink,
    sdk_spans: list[ReadableSpan],
    compression: grpc.Compression | None,
) -> None:
    exporter = OTLPSpanExporter(endpoint=f"http://{HOST}:{port}", compression=compression)
    assert exporter.export(sdk_spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert_otlp_spans_stored(sink.storage, sdk_spans)


def test_sdk_logs_arrive_intact(port: int, sink: PipelineSink) -> None:
    records, _ = make_logs()
    exporter = OTLPLogExporter(endpoint=f"http://{HOST}:{port}")
    assert exporter.export(records) is LogRecordExportResult.SUCCESS
    exporter.shutdown()
    assert_sdk_logs_stored(sink.storage, records)


def test_sdk_metrics_arrive_intact(port: int, sink: PipelineSink) -> None:
    exporter = OTLPMetricExporter(endpoint=f"http://{HOST}:{port}")
    assert exporter.export(sdk_metrics()) is MetricExportResult.SUCCESS
    exporter.shutdown()
    assert_sdk_metrics_stored(sink.storage)


def test_partial_success(
    channel: grpc.Channel, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    request = encode_spans(sdk_spans)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = bytes(16)
    response = _trace_stub(channel).Export(request, timeout=5)
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message.startswith("rejected 1 spans: ")
    assert_otlp_spans_stored(sink.storage, sdk_spans[1:])


def test_full_success_is_an_empty_response(channel: grpc.Channel) -> None:
    response = _logs_stub(channel).Export(ExportLogsServiceRequest(), timeout=5)
    assert response.ByteSize() == 0


def _trace_stub(channel: grpc.Channel) -> Any:
    return TraceServiceStub(channel)  # type: ignore[no-untyped-call]


def _logs_stub(channel: grpc.Channel) -> Any:
    return LogsServiceStub(channel)  # type: ignore[no-untyped-call]


def _raw_export(channel: grpc.Channel, body: bytes) -> grpc.RpcError:
    call = channel.unary_unary(TRACE_EXPORT)
    with pytest.raises(grpc.RpcError) as raised:
        call(body, timeout=5)
    return raised.value


def test_invalid_message_is_invalid_argument_and_server_stays_healthy(
    channel: grpc.Channel, sink: PipelineSink, sdk_spans: list[ReadableSpan]
) -> None:
    error = _raw_export(channel, b"\x0a\xff\xff\xff\xff")
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid protobuf ExportTraceServiceRequest" in error.details()
    assert not sink.batches
    _trace_stub(channel).Export(encode_spans(sdk_spans), timeout=5)
    assert_otlp_spans_stored(sink.storage, sdk_spans)


def test_message_over_20_mib_is_refused_by_grpc(channel: grpc.Channel) -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().resource.attributes.add(key="big").value.string_value = "x" * (
        21 * 1024 * 1024
    )
    with pytest.raises(grpc.RpcError) as raised:
        _trace_stub(channel).Export(request, timeout=10)
    assert raised.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _trace_stub(channel).Export(ExportTraceServiceRequest(), timeout=5) is not None


def test_overload_is_resource_exhausted_with_retry_info(sdk_spans: list[ReadableSpan]) -> None:
    body = encode_spans(sdk_spans).SerializeToString()
    with (
        running_grpc(OverloadedSink(retry_after_s=7)) as bound,
        grpc.insecure_channel(f"{HOST}:{bound}") as channel,
    ):
        error = _raw_export(channel, body)
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "overloaded, retry later: queue full"
    trailers = dict(error.trailing_metadata())
    retry = error_details_pb2.RetryInfo.FromString(trailers[RETRY_INFO_KEY])
    assert retry.retry_delay.seconds == 7
    status = status_pb2.Status.FromString(trailers[STATUS_DETAILS_KEY])
    assert status.code == 8
    detail = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(detail)
    assert detail.retry_delay.seconds == 7


def test_store_unavailable_is_unavailable(sdk_spans: list[ReadableSpan]) -> None:
    body = encode_spans(sdk_spans).SerializeToString()
    with (
        running_grpc(UnavailableSink()) as bound,
        grpc.insecure_channel(f"{HOST}:{bound}") as channel,
    ):
        error = _raw_export(channel, body)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert error.details() == "storage unavailable, data not stored: disk full"


def test_unexpected_error_is_internal_logged_and_survived(
    caplog: pytest.LogCaptureFixture, sdk_spans: list[ReadableSpan]
) -> None:
    body = encode_spans(sdk_spans).SerializeToString()
    sink = BrokenSink(failures=1)
    with (
        caplog.at_level(logging.ERROR),
        running_grpc(sink) as bound,
        grpc.insecure_channel(f"{HOST}:{bound}") as channel,
    ):
        error = _raw_export(channel, body)
        assert error.code() is grpc.StatusCode.INTERNAL
        assert error.details() == "internal error: RuntimeError"
        channel.unary_unary(TRACE_EXPORT)(body, timeout=5)
    assert sink.received == 1
    assert any("unexpected error receiving OTLP/gRPC traces" in r.message for r in caplog.records)
