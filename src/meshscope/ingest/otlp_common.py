"""What the OTLP decoders share: the result type, AnyValue conversion, and body parsing.

Protobuf bodies are parsed with `opentelemetry-proto`'s generated (upb) classes. OTLP/JSON
bodies are parsed with orjson, their ids rewritten from hex (the OTLP/JSON rule) to the
base64 the standard protobuf JSON mapping expects, then loaded into the same generated classes
with `json_format.ParseDict`; both paths then share one walker per signal. `ParseDict` already
accepts lowerCamelCase and snake_case keys, enums as names or integers, and int64 as strings
or numbers; unknown fields are ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from meshscope.ingest.errors import DecodeError
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch

UNKNOWN_SERVICE = "unknown_service"
SERVICE_NAME = "service.name"

M = TypeVar("M", bound=Message)


@dataclass(slots=True)
class Decoded:
    """A decoded request: what was kept, and what was rejected (OTLP partial success).

    `rejected` counts spans, log records or metric data points, as the OTLP
    `partial_success.rejected_*` fields do; `error_message` says why, "" when nothing was.
    """

    batch: Batch = field(default_factory=Batch)
    rejected: int = 0
    error_message: str = ""
    stored: int | None = None
    """Items stored, when `batch` was emptied on the way (a body prepared by an ingest
    worker); None: `len(batch)`."""
    undo: Callable[[], None] | None = None
    """What to do when the batch is refused after decoding (metrics: take its deltas out of
    the running totals, `DeltaToCumulative.undo`); None: nothing."""

    @property
    def items(self) -> int:
        """How many items the request stored (spans, log records, data points)."""
        return len(self.batch) if self.stored is None else self.stored

    def refused(self) -> None:
        """The batch was not stored: undo what decoding it changed."""
        if self.undo is not None:
            self.undo()


class Rejections:
    """Counts rejected items and remembers each distinct reason once, in order."""

    __slots__ = ("count", "reasons")

    def __init__(self) -> None:
        self.count = 0
        self.reasons: dict[str, None] = {}

    def add(self, reason: str, count: int = 1) -> None:
        self.count += count
        self.reasons[reason] = None

    def result(self, batch: Batch, noun: str) -> Decoded:
        if not self.count:
            return Decoded(batch)
        return Decoded(
            batch, self.count, f"rejected {self.count} {noun}: " + "; ".join(self.reasons)
        )


def any_value(value: AnyValue) -> AttrValue:
    """An OTLP AnyValue as a Python value: str, bool, int, float, bytes, list, dict or None."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    result: AttrValue = getattr(value, which)
    return result


_KV_CACHE: dict[bytes, tuple[str, AttrValue]] = {}
_KV_CACHE_MAX = 65_536
_KV_CACHE_MAX_BYTES = 256


def attributes(kvs: Iterable[KeyValue]) -> dict[str, AttrValue]:
    """Key/value pairs as a dict (a later duplicate key wins, as in the SDKs).

    Most attributes repeat from span to span (method, route, status, peer), and serializing a
    small KeyValue costs less than reading it field by field from upb, so scalar pairs are
    memoized by their encoding in a bounded cache (cleared when full). Values are immutable,
    so sharing them is safe; lists and dicts are always rebuilt.
    """
    out: dict[str, AttrValue] = {}
    cache = _KV_CACHE
    for kv in kvs:
        raw = kv.SerializeToString()
        hit = cache.get(raw)
        if hit is None:
            value = kv.value
            which = value.WhichOneof("value")
            if which == "array_value" or which == "kvlist_value":
                out[kv.key] = any_value(value)
                continue
            hit = (kv.key, None if which is None else getattr(value, which))
            if len(raw) <= _KV_CACHE_MAX_BYTES:
                if len(cache) >= _KV_CACHE_MAX:
                    cache.clear()
                cache[raw] = hit
        out[hit[0]] = hit[1]
    return out


def resource_info(resource: Resource) -> tuple[str, dict[str, AttrValue]]:
    """The service name (default `unknown_service`) and attributes of a resource."""
    attrs = attributes(resource.attributes)
    service = attrs.get(SERVICE_NAME)
    return (service if isinstance(service, str) and service else UNKNOWN_SERVICE), attrs


def parse_protobuf(message: M, body: bytes, what: str) -> M:
    """Parse `body` into `message`, or raise DecodeError naming the expected message."""
    try:
        message.ParseFromString(body)
    except (ProtobufDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"invalid protobuf {what}: {exc}") from None
    return message


_ID_KEYS = frozenset({"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"})
_INVALID_ID = base64.b64encode(b"\xff").decode()
"""Stands for an id that is neither hex nor base64: one byte, so the walker rejects it."""


def _json_id_to_base64(value: str) -> str:
    """Hex ids (the OTLP/JSON rule) become base64; base64 ids are accepted as sent."""
    if not value:
        return value
    if len(value) in (16, 32):
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return _INVALID_ID
    return base64.b64encode(raw).decode() if len(raw) in (8, 16) else _INVALID_ID


def _enum_names(enum: Any) -> frozenset[str]:
    return frozenset(enum.keys())


_ENUMS = {
    "kind": _enum_names(Span.SpanKind),
    "code": _enum_names(Status.StatusCode),
    "severityNumber": _enum_names(SeverityNumber),
    "aggregationTemporality": _enum_names(AggregationTemporality),
}
"""The enum fields of OTLP/JSON and their value names: an unknown name is an error, as the
Collector's decoder answers (`ParseDict` with `ignore_unknown_fields`, which unknown fields
need, would drop the field silently: `"code": "ERROR"` made an error span unset)."""
_INTEGER = re.compile(r"-?[0-9]{1,10}")  # an enum's number as a string, which ParseDict takes
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
"""Proto3 JSON bytes: standard or URL-safe base64, padded or not (`ParseDict` skips any
other character: "AQ!ID" was read as "AQID")."""


def _normalized_json(node: Any) -> None:
    """Rewrite, in place, every id field of a decoded OTLP/JSON document to base64; refuse
    enum names and `bytesValue`s that are not OTLP's (ValueError)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = _json_id_to_base64(value)
            elif isinstance(value, dict | list):
                _normalized_json(value)
            elif isinstance(value, str):
                names = _ENUMS.get(key)
                if names is not None and value not in names and not _INTEGER.fullmatch(value):
                    raise ValueError(f"unknown {key} {value[:40]!r}")
                if key == "bytesValue" and not _BASE64.fullmatch(value):
                    raise ValueError(f"bytesValue {value[:40]!r} is not base64")
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _normalized_json(item)


def parse_json(message: M, body: bytes, what: str) -> M:
    """Parse an OTLP/JSON `body` into `message`, or raise DecodeError saying what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON {what}: {exc}") from None
    if not isinstance(document, dict):
        raise DecodeError(f"invalid JSON {what}: expected an object, got {type(document).__name__}")
    try:
        _normalized_json(document)
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except RecursionError:
        raise DecodeError(f"invalid JSON {what}: nested too deeply") from None
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise DecodeError(f"invalid JSON {what}: {exc}") from None
    return message
