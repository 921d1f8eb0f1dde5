"""A wire-compatible view of `ExportTraceServiceRequest` whose attributes stay encoded.

Reading a `KeyValue` through the generated classes costs ~0.5 us (a wrapper object per
pair, then its fields, or its re-serialization as a cache key). Here the schema is OTLP's own
(`opentelemetry-proto`'s descriptors, copied at import), except that the `attributes` of
spans, span events and span links are declared `repeated bytes`: protobuf encodes a
message and bytes alike (length-delimited), so the same body parses, and each pair arrives
as its exact encoding, the key of `otlp_direct`'s cache of decoded pairs. A pair is decoded
with the real `KeyValue` class the first time its encoding is seen, so an invalid pair is
still an invalid request. Resources and scopes keep their real types.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.trace.v1 import trace_pb2

_PACKAGE = "meshscope.lazy.trace.v1"
_REAL = ".opentelemetry.proto.trace.v1."
_FIELD = descriptor_pb2.FieldDescriptorProto


def _lazify(message: descriptor_pb2.DescriptorProto) -> None:
    for field in message.field:
        if field.name == "attributes" and field.type_name.endswith(".KeyValue"):
            field.type = _FIELD.TYPE_BYTES
            field.ClearField("type_name")
        elif field.type_name.startswith(_REAL):
            field.type_name = f".{_PACKAGE}." + field.type_name[len(_REAL) :]
    for nested in message.nested_type:
        _lazify(nested)


def _request_class() -> Any:
    pool = descriptor_pool.Default()
    name = f"{_PACKAGE}.ExportTraceServiceRequest"
    try:
        found = pool.FindMessageTypeByName(name)
    except KeyError:
        file = descriptor_pb2.FileDescriptorProto()
        trace_pb2.DESCRIPTOR.CopyToProto(file)
        file.name = "meshscope/lazy_trace.proto"
        file.package = _PACKAGE
        file.ClearField("options")
        for message in file.message_type:
            _lazify(message)
        request = file.message_type.add(name="ExportTraceServiceRequest")
        request.field.add(
            name="resource_spans",
            number=1,
            label=_FIELD.LABEL_REPEATED,
            type=_FIELD.TYPE_MESSAGE,
            type_name=f".{_PACKAGE}.ResourceSpans",
        )
        pool.Add(file)
        found = pool.FindMessageTypeByName(name)
    return message_factory.GetMessageClass(found)


LazyTraceRequest: Any = _request_class()
"""`ExportTraceServiceRequest` with span, event and link attributes as encoded pairs."""
