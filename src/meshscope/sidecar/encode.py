"""meshscope's plain spans and log records -> OTLP protobuf request bodies (the opposite of
`meshscope.ingest`'s decoders), grouped by service into one resource each."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans

from meshscope import __version__
from meshscope.model.logs import LogRecord
from meshscope.model.otlp import key_values, pb_span
from meshscope.model.spans import Span

SCOPE_NAME = "meshscope.sidecar"


def _resource(service: str) -> list[KeyValue]:
    return key_values(
        {
            "service.name": service,
            "telemetry.sdk.name": "meshscope-sidecar",
            "telemetry.sdk.version": __version__,
        }
    )


class SpanRequest:
    """An `ExportTraceServiceRequest` built a few spans at a time (`add`), with one
    ResourceSpans per service, serialized once."""

    def __init__(self) -> None:
        self._by_service: dict[str, ResourceSpans] = {}

    def add(self, spans: Sequence[Span]) -> None:
        for span in spans:
            resource_spans = self._by_service.get(span.service)
            if resource_spans is None:
                resource_spans = ResourceSpans()
                resource_spans.resource.attributes.extend(_resource(span.service))
                scope = resource_spans.scope_spans.add()
                scope.scope.name = SCOPE_NAME
                scope.scope.version = __version__
                self._by_service[span.service] = resource_spans
            resource_spans.scope_spans[0].spans.append(pb_span(span))

    def serialize(self) -> bytes:
        request = ExportTraceServiceRequest(resource_spans=list(self._by_service.values()))
        return request.SerializeToString()


def encode_spans(spans: Sequence[Span]) -> bytes:
    request = SpanRequest()
    request.add(spans)
    return request.serialize()


def _log(record: LogRecord) -> PbLogRecord:
    return PbLogRecord(
        time_unix_nano=record.time_ns,
        observed_time_unix_nano=record.time_ns,
        severity_number=int(record.severity),  # type: ignore[arg-type]
        severity_text=record.level.name if record.severity else "",
        body=AnyValue(string_value=record.body),
        attributes=key_values(record.attributes),
        trace_id=bytes.fromhex(record.trace_id) if record.trace_id else b"",
        span_id=bytes.fromhex(record.span_id) if record.span_id else b"",
    )


class LogRequest:
    """An `ExportLogsServiceRequest` built a few records at a time, one ResourceLogs per
    service, serialized once."""

    def __init__(self) -> None:
        self._by_service: dict[str, ResourceLogs] = {}

    def add(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            resource_logs = self._by_service.get(record.service)
            if resource_logs is None:
                resource_logs = ResourceLogs()
                resource_logs.resource.attributes.extend(_resource(record.service))
                scope = resource_logs.scope_logs.add()
                scope.scope.name = SCOPE_NAME
                self._by_service[record.service] = resource_logs
            resource_logs.scope_logs[0].log_records.append(_log(record))

    def serialize(self) -> bytes:
        request = ExportLogsServiceRequest(resource_logs=list(self._by_service.values()))
        return request.SerializeToString()


def encode_logs(records: Sequence[LogRecord]) -> bytes:
    request = LogRequest()
    request.add(records)
    return request.serialize()
