"""Loki push bodies -> log records: JSON and snappy-compressed protobuf (`logproto.PushRequest`).

Mapping, following Loki's conventions:
- stream labels become the record's resource (they identify where the logs come from); the
  service is the first of the labels `SERVICE_LABELS` (Loki's service_name discovery), else
  `unknown_service`. `service_name` itself is not repeated in the resource, since it *is*
  the service.
- structured metadata becomes record attributes; `trace_id`/`traceID`/`traceId` and
  `span_id`/`spanID`/`spanId` also give the record's trace and span ids (lowercase hex; a
  16-hex trace id is left-padded to 32) when they are valid hex ids. A key other than
  `trace_id`/`span_id` stays as pushed (Loki answers it so, and `| traceID="..."` finds it);
  those two are the labels the ids are read back as.
- the level (`level`, `severity`, `detected_level`, `lvl` metadata or label) gives the
  severity; its text is kept as `severity_text`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from google.protobuf.message import DecodeError as ProtobufDecodeError

from meshscope.ingest.body import BodyError, BodyTooLargeError, uncompress_snappy
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.loki_labels import parse_stream_labels
from meshscope.ingest.lokipb.push_pb2 import PushRequest
from meshscope.ingest.otlp_common import UNKNOWN_SERVICE, Decoded
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.model.ids import INVALID_SPAN_ID, INVALID_TRACE_ID
from meshscope.model.logs import LogRecord, Severity

SERVICE_LABELS = (
    "service_name", "service", "app", "application", "app_name", "name", "app_kubernetes_io_name",
    "container", "container_name", "k8s_container_name", "component", "workload", "job",
    "k8s_job_name",
)  # fmt: skip
"""`service_name`, then Loki's default `discover_service_name` (pkg/validation/limits.go)."""
LEVEL_KEYS = ("level", "severity", "detected_level", "lvl")
TRACE_ID_KEYS = ("trace_id", "traceID", "traceId", "traceid")
SPAN_ID_KEYS = ("span_id", "spanID", "spanId", "spanid")
_HEX = frozenset("0123456789abcdef")


def log_record(
    labels: Mapping[str, str], time_ns: int, line: str, metadata: Mapping[str, str]
) -> LogRecord:
    """One pushed entry of a stream as a LogRecord (see the module doc for the mapping)."""
    service = next((labels[k] for k in SERVICE_LABELS if labels.get(k)), UNKNOWN_SERVICE)
    resource: dict[str, AttrValue] = {k: v for k, v in labels.items() if k != "service_name"}
    attributes: dict[str, AttrValue] = dict(metadata)
    trace_id = _take_id(attributes, TRACE_ID_KEYS, 32)
    span_id = _take_id(attributes, SPAN_ID_KEYS, 16)
    level = next((m[k] for m in (metadata, labels) for k in LEVEL_KEYS if m.get(k)), "")
    return LogRecord(
        time_ns=time_ns,
        body=line,
        service=service,
        severity=Severity.from_text(level) if level else Severity.UNSPECIFIED,
        severity_text=level,
        trace_id=trace_id,
        span_id=span_id,
        attributes=attributes,
        resource=resource,
    )


def _take_id(attributes: dict[str, AttrValue], keys: tuple[str, ...], size: int) -> str:
    """The first valid hex id under `keys` (normalized). Under the first key (`trace_id`,
    `span_id`: what the id is read back as) it is taken out of the attributes; under the
    others and when invalid it stays."""
    for key in keys:
        raw = attributes.get(key)
        if not isinstance(raw, str):
            continue
        value = raw.strip().lower()
        if 0 < len(value) <= size and set(value) <= _HEX and len(value) in (16, size):
            value = value.rjust(size, "0")
            if value not in (INVALID_TRACE_ID, INVALID_SPAN_ID):
                if key == keys[0]:
                    del attributes[key]
                return value
    return ""


def decode_loki_json(body: bytes) -> Decoded:
    """`{"streams": [{"stream": {labels}, "values": [["<ns>", "line", {metadata}?]]}]}`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"invalid JSON push body: {error}") from None
    streams = document.get("streams") if isinstance(document, dict) else None
    if not isinstance(streams, list):
        raise DecodeError('invalid push body: expected {"streams": [...]}')
    out: list[LogRecord] = []
    for i, stream in enumerate(streams):
        where = f"streams[{i}]"
        if not isinstance(stream, dict):
            raise DecodeError(f"{where}: expected an object")
        labels = _string_map(stream.get("stream"), f"{where}.stream")
        if not labels:
            raise DecodeError(f"{where}: at least one label pair is required per stream")
        values = stream.get("values", [])
        if not isinstance(values, list):
            raise DecodeError(f"{where}.values: expected an array")
        for j, value in enumerate(values):
            time_ns, line, metadata = _json_entry(value, f"{where}.values[{j}]")
            out.append(log_record(labels, time_ns, line, metadata))
    return Decoded(Batch(logs=out))


_INT64_TEXT = re.compile(r"[+-]?[0-9]{1,19}")


def _json_entry(value: Any, where: str) -> tuple[int, str, dict[str, str]]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise DecodeError(f'{where}: expected ["<unix epoch in ns>", "<line>", {{metadata}}?]')
    stamp, line = value[0], value[1]
    if not isinstance(stamp, str):
        raise DecodeError(
            f"{where}: the timestamp must be a string of nanoseconds, got {_shown(stamp)}"
        )
    if not _INT64_TEXT.fullmatch(stamp):  # Go's ParseInt: no spaces, `_` or other digits
        raise DecodeError(f"{where}: invalid timestamp {stamp[:40]!r}")
    time_ns = int(stamp)
    if not 0 <= time_ns < 2**63:
        raise DecodeError(f"{where}: timestamp {stamp[:40]} is out of range")
    if not isinstance(line, str):
        raise DecodeError(f"{where}: the log line must be a string")
    metadata = _string_map(value[2], f"{where}[2]") if len(value) == 3 else {}
    return time_ns, line, metadata


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"{where}: expected an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise DecodeError(f"{where}.{key}: expected a string value, got {_shown(item)}"[:200])
    return value


def _shown(value: Any) -> str:
    """A wrong value in an error message: scalars as they are, containers by their type (a
    repr of a ~1000-deep list would recurse past Python's limit)."""
    if isinstance(value, list | dict):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    return repr(value)[:80]


def decode_loki_protobuf(body: bytes, max_bytes: int) -> Decoded:
    """A snappy-compressed (block format) `logproto.PushRequest`; DecodeError if invalid,
    BodyError(413) if it says it inflates past `max_bytes` (checked before inflating)."""
    try:
        raw = uncompress_snappy(body, max_bytes)
    except BodyTooLargeError as error:
        message = (
            f"decompressed request body of {error.size} bytes exceeds the limit of {max_bytes}"
        )
        raise BodyError(413, message) from None
    request = PushRequest()
    try:
        request.ParseFromString(raw)
    except ProtobufDecodeError as error:
        raise DecodeError(f"invalid logproto.PushRequest: {error}") from None
    out: list[LogRecord] = []
    for i, stream in enumerate(request.streams):
        labels = parse_stream_labels(stream.labels)
        if not labels:
            raise DecodeError(f"streams[{i}]: at least one label pair is required per stream")
        for entry in stream.entries:
            time_ns = entry.timestamp.seconds * 10**9 + entry.timestamp.nanos
            if not 0 <= time_ns < 2**63:
                raise DecodeError(f"streams[{i}]: timestamp out of range")
            metadata = {pair.name: pair.value for pair in entry.structuredMetadata}
            # Bytes that are not UTF-8 become U+FFFD, as Loki's JSON answers show them.
            line = entry.line.decode(errors="replace")
            out.append(log_record(labels, time_ns, line, metadata))
    return Decoded(Batch(logs=out))
