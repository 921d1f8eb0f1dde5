"""OTLP logs: `ExportLogsServiceRequest` (protobuf or OTLP/JSON) -> log records.

The record time is `time_unix_nano`, else `observed_time_unix_nano` (OTel says the observed
time stands in when the event time is unknown), else the time the request was decoded (as
Loki's OTLP receiver does; not 1970, which no read's time range shows and retention drops).
A string body is kept as-is, a bytes body as its base64 text; any other body (map, array,
number...) is JSON-encoded, bytes inside as base64 (Loki's line: pdata's `AsString`). The
observed time beside a time, the body's type, the scope, flags, dropped counts and event
names are not kept. Trace and span ids are optional: empty or all-zero ids become "", ids
of the wrong length reject the record (partial success), as does a time past 2^63 ns
(`checks`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from meshscope.ingest.checks import BAD_LOG_TIME, MAX_TIME_NS
from meshscope.ingest.otlp_common import (
    Decoded,
    Rejections,
    any_value,
    attributes,
    parse_json,
    parse_protobuf,
    resource_info,
)
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord, Severity

_WHAT = "ExportLogsServiceRequest"
_BAD_IDS = "trace_id must be empty or 16 bytes and span_id empty or 8 bytes"


def decode_logs_protobuf(body: bytes) -> Decoded:
    """Decode a protobuf `ExportLogsServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_protobuf(ExportLogsServiceRequest(), body, _WHAT)
    return logs_from_request(request.resource_logs)


def decode_logs_json(body: bytes) -> Decoded:
    """Decode an OTLP/JSON `ExportLogsServiceRequest`. Raises DecodeError if it is not one."""
    request = parse_json(ExportLogsServiceRequest(), body, _WHAT)
    return logs_from_request(request.resource_logs)


def body_text(body: AnyValue) -> str:
    """A log body as text, as pdata's `AsString` (Loki's line for an OTLP record): strings
    as-is, bytes as base64, anything else as compact JSON ("" when unset)."""
    which = body.WhichOneof("value")
    if which is None:
        return ""
    if which == "string_value":
        return body.string_value
    if which == "bytes_value":  # not `"..."`: the base64 text itself
        return base64.b64encode(body.bytes_value).decode()
    return orjson.dumps(any_value(body), default=_bytes_as_base64).decode()


def _bytes_as_base64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError


def _hex_id(raw: bytes, size: int) -> str | None:
    """Lowercase hex of an optional id: "" when empty or all zero, None when malformed."""
    if not raw or raw == bytes(size):
        return ""
    return raw.hex() if len(raw) == size else None


def logs_from_request(resource_logs: Sequence[ResourceLogs]) -> Decoded:
    """Walk parsed `ResourceLogs` into a Batch of log records, counting rejected records."""
    out: list[LogRecord] = []
    rejections = Rejections()
    received_ns = time.time_ns()
    for rl in resource_logs:
        service, resource = resource_info(rl.resource)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                trace_id = _hex_id(record.trace_id, 16)
                span_id = _hex_id(record.span_id, 8)
                if trace_id is None or span_id is None:
                    rejections.add(_BAD_IDS)
                    continue
                time_ns = record.time_unix_nano or record.observed_time_unix_nano or received_ns
                if time_ns > MAX_TIME_NS:
                    rejections.add(BAD_LOG_TIME)
                    continue
                number = record.severity_number
                out.append(
                    LogRecord(
                        time_ns,
                        body_text(record.body),
                        service,
                        number if 0 <= number < 25 else Severity.from_number(number),
                        record.severity_text,
                        trace_id,
                        span_id,
                        attributes(record.attributes),
                        resource,
                    )
                )
    return rejections.result(Batch(logs=out), "log records")
