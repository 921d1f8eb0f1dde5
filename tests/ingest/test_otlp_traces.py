from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common._internal.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.trace import ReadableSpan

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from meshscope.model.spans import Span, SpanKind, StatusCode
from tests.ingest.otel_sdk import (
    REMOTE_SPAN_ID,
    REMOTE_TRACE_ID,
    RESOURCE_ATTRS,
    make_spans,
    traces_request_bytes,
)


def _python(value: Any) -> Any:
    """SDK attribute values (tuples) as the decoder gives them (lists)."""
    return list(value) if isinstance(value, tuple) else value


def _by_id(spans: list[Span]) -> dict[str, Span]:
    return {span.span_id: span for span in spans}


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


def test_protobuf_round_trip_of_sdk_spans(sdk_spans: list[ReadableSpan]) -> None:
    decoded = decode_traces_protobuf(traces_request_bytes(sdk_spans))
    assert decoded.rejected == 0
    assert decoded.error_message == ""
    got = _by_id(decoded.batch.spans)
    assert len(got) == len(sdk_spans) == 4
    for sdk in sdk_spans:
        ctx = sdk.get_span_context()
        assert ctx is not None
        span = got[f"{ctx.span_id:016x}"]
        assert span.trace_id == f"{ctx.trace_id:032x}" == f"{REMOTE_TRACE_ID:032x}"
        assert sdk.parent is not None
        assert span.parent_span_id == f"{sdk.parent.span_id:016x}"
        assert span.name == sdk.name
        assert span.service == "checkout"
        assert (span.start_ns, span.end_ns) == (sdk.start_time, sdk.end_time)
        assert span.kind is SpanKind[sdk.kind.name]
        assert span.status_code is StatusCode[sdk.status.status_code.name]
        assert span.status_message == (sdk.status.description or "")
        assert span.attributes == {k: _python(v) for k, v in (sdk.attributes or {}).items()}
        assert [(e.name, e.time_ns, e.attributes) for e in span.events] == [
            (e.name, e.timestamp, dict(e.attributes or {})) for e in sdk.events
        ]
        assert [(ln.trace_id, ln.span_id, ln.attributes) for ln in span.links] == [
            (
                f"{ln.context.trace_id:032x}",
                f"{ln.context.span_id:016x}",
                dict(ln.attributes or {}),
            )
            for ln in sdk.links
        ]
        assert span.resource == RESOURCE_ATTRS
        assert sdk.instrumentation_scope is not None
        assert span.scope_name == sdk.instrumentation_scope.name == "meshscope.tests"
        assert span.scope_version == sdk.instrumentation_scope.version == "1.2.3"
        assert span.trace_state == ctx.trace_state.to_header() == "vendor=value,other=x"
        assert span.flags & 0xFF == int(ctx.trace_flags) & 0xFF or span.flags & 0xFF == 0
    server = next(s for s in decoded.batch.spans if s.kind is SpanKind.SERVER)
    assert server.parent_span_id == f"{REMOTE_SPAN_ID:016x}"
    assert server.attributes["tags"] == ["a", "b"]
    assert server.attributes["ports"] == [80, 443]
    assert server.attributes["sampled.ratio"] == 0.25
    assert server.attributes["cache.hit"] is True
    assert next(s for s in decoded.batch.spans if s.name == "SELECT carts").is_error


def test_flags_are_kept_as_sent(sdk_spans: list[ReadableSpan]) -> None:
    request = encode_spans(sdk_spans)
    wire = {
        s.span_id.hex(): s.flags
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    }
    decoded = decode_traces_protobuf(request.SerializeToString())
    assert {s.span_id: s.flags for s in decoded.batch.spans} == wire


def test_json_with_base64_ids_from_message_to_json(sdk_spans: list[ReadableSpan]) -> None:
    """`google.protobuf.json_format` writes base64 ids, int64 as strings, enum names."""
    body = MessageToJson(encode_spans(sdk_spans)).encode()
    assert b"SPAN_KIND_SERVER" in body
    assert decode_traces_json(body) == decode_traces_protobuf(traces_request_bytes(sdk_spans))


def _spec_example(**span_overrides: Any) -> dict[str, Any]:
    """Shaped like the OTLP/JSON example of the spec (examples/trace.json)."""
    span: dict[str, Any] = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "kind": 2,
        "attributes": [
            {"key": "my.span.attr", "value": {"stringValue": "some value"}},
            {"key": "count", "value": {"intValue": "42"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "ok", "value": {"boolValue": True}},
            {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
            {"key": "list", "value": {"arrayValue": {"values": [{"intValue": 1}, {}]}}},
            {
                "key": "map",
                "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
            },
        ],
        "events": [{"timeUnixNano": "1544712660500000000", "name": "ev", "attributes": []}],
        "links": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175"}],
        "status": {"code": 2, "message": "boom"},
        "traceState": "a=b",
        "flags": 1,
        "someFutureField": {"ignored": True},
    }
    span.update(span_overrides)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
                },
                "scopeSpans": [
                    {"scope": {"name": "my.library", "version": "1.0.0"}, "spans": [span]}
                ],
            }
        ]
    }


def test_json_spec_example_with_hex_ids() -> None:
    decoded = decode_traces_json(json.dumps(_spec_example()).encode())
    assert decoded.rejected == 0
    (span,) = decoded.batch.spans
    assert span == Span(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173",
        name="I'm a server span",
        service="my.service",
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        kind=SpanKind.SERVER,
        status_code=StatusCode.ERROR,
        status_message="boom",
        attributes={
            "my.span.attr": "some value",
            "count": 42,
            "ratio": 0.5,
            "ok": True,
            "raw": b"\x00\x01",
            "list": [1, None],
            "map": {"k": "v"},
        },
        events=span.events,
        links=span.links,
        resource={"service.name": "my.service"},
        scope_name="my.library",
        scope_version="1.0.0",
        trace_state="a=b",
        flags=1,
    )
    assert [(e.time_ns, e.name) for e in span.events] == [(1544712660500000000, "ev")]
    assert [(ln.trace_id, ln.span_id) for ln in span.links] == [
        ("5b8efff798038103d269b633813fc60d", "eee19b7ec3c1b175")
    ]


def test_json_snake_case_keys_and_enum_names() -> None:
    doc = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": "5b8efff798038103d269b633813fc60c",
                                "span_id": "eee19b7ec3c1b174",
                                "parent_span_id": "",
                                "name": "x",
                                "kind": "SPAN_KIND_CONSUMER",
                                "start_time_unix_nano": 5,
                                "status": {"code": "STATUS_CODE_OK"},
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (span,) = decode_traces_json(json.dumps(doc).encode()).batch.spans
    assert (span.kind, span.status_code, span.start_ns) == (SpanKind.CONSUMER, StatusCode.OK, 5)
    assert span.is_root
    assert span.service == "unknown_service"


def _one_span_json(**fields: Any) -> bytes:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "x", "startTimeUnixNano": "5", **fields}  # fmt: skip
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": "CLIENT"}, "unknown kind 'CLIENT'"),
        ({"status": {"code": "ERROR"}}, "unknown code 'ERROR'"),
        ({"kind": "STATUS_CODE_OK"}, "unknown kind"),  # another enum's name
        ({"attributes": [{"key": "b", "value": {"bytesValue": "AQ!ID"}}]}, "not base64"),
    ],
)
def test_json_enum_names_and_bytes_otlp_does_not_know_are_refused(
    fields: dict[str, Any], problem: str
) -> None:
    """As the Collector's decoder (ParseDict dropped the field: an error span read as unset,
    "AQ!ID" as the bytes of "AQID")."""
    with pytest.raises(DecodeError, match=problem):
        decode_traces_json(_one_span_json(**fields))


def test_json_enum_numbers_and_url_safe_base64_are_taken() -> None:
    body = _one_span_json(
        kind=3, status={"code": "2"},
        attributes=[{"key": "b", "value": {"bytesValue": "_-8"}}],
    )  # fmt: skip
    (span,) = decode_traces_json(body).batch.spans
    assert (span.kind, span.status_code) == (SpanKind.CLIENT, StatusCode.ERROR)
    assert span.attributes["b"] == b"\xff\xef"


def test_json_invalid_hex_ids_are_rejected_not_fatal() -> None:
    doc = _spec_example(spanId="not-an-id")
    good = _spec_example()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append(good)
    decoded = decode_traces_json(json.dumps(doc).encode())
    assert (decoded.rejected, len(decoded.batch.spans)) == (1, 1)
    assert "span_id" in decoded.error_message


def _pb_span(trace_id: bytes, span_id: bytes, parent: bytes = b"") -> PbSpan:
    return PbSpan(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="s")


def test_protobuf_invalid_ids_are_counted_as_partial_success() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    spans.extend(
        [
            _pb_span(b"\x01" * 16, b"\x02" * 8),
            _pb_span(b"\x01" * 16, b"\x03" * 8, parent=bytes(8)),  # zero parent = root
            _pb_span(b"", b"\x02" * 8),
            _pb_span(bytes(16), b"\x02" * 8),
            _pb_span(b"\x01" * 16, bytes(8)),
            _pb_span(b"\x01" * 15, b"\x02" * 8),
            _pb_span(b"\x01" * 16, b"\x02" * 8, parent=b"\x04" * 3),
        ]
    )
    decoded = decode_traces_protobuf(request.SerializeToString())
    assert len(decoded.batch.spans) == 2
    assert all(span.is_root for span in decoded.batch.spans)
    assert decoded.rejected == 5
    assert decoded.error_message.startswith("rejected 5 spans:")
    assert "parent_span_id" in decoded.error_message


def test_unknown_enum_numbers_do_not_fail() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    raw = request.SerializeToString()
    # Patch kind = 9 onto the span: field 6 (varint) of the innermost message.
    mutated = ExportTraceServiceRequest.FromString(raw)
    inner = mutated.resource_spans[0].scope_spans[0].spans[0]
    inner.MergeFromString(b"\x30\x09")  # kind = 9
    inner.status.MergeFromString(b"\x18\x07")  # code = 7
    (got,) = decode_traces_protobuf(mutated.SerializeToString()).batch.spans
    assert got.kind is SpanKind.UNSPECIFIED
    assert got.status_code is StatusCode.UNSET


def test_empty_bodies_are_empty_requests() -> None:
    assert len(decode_traces_protobuf(b"").batch) == 0
    assert len(decode_traces_json(b"{}").batch) == 0


def test_enormous_values_are_kept() -> None:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id = b"\x01" * 16, b"\x02" * 8
    span.start_time_unix_nano = span.end_time_unix_nano = 2**63 - 1  # the last that fits
    span.attributes.append(KeyValue(key="big", value=AnyValue(string_value="x" * 3_000_000)))
    nested = AnyValue(int_value=-(2**63))
    for _ in range(30):
        nested = AnyValue(array_value=ArrayValue(values=[nested]))
    span.attributes.append(KeyValue(key="deep", value=nested))
    (got,) = decode_traces_protobuf(request.SerializeToString()).batch.spans
    assert got.start_ns == 2**63 - 1
    assert got.attributes["big"] == "x" * 3_000_000
    deep: Any = got.attributes["deep"]
    for _ in range(30):
        (deep,) = deep
    assert deep == -(2**63)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("start_time_unix_nano", 2**63, "start and end times must be below 2^63"),
        ("end_time_unix_nano", 2**64 - 1, "start and end times must be below 2^63"),
        ("event", 2**63, "event times must be below 2^63"),
        ("link", b"\x01" * 17, "link trace_id must be 16 bytes"),
        ("link", b"", "link trace_id must be 16 bytes"),
    ],
)
def test_spans_the_store_cannot_hold_are_rejected(field: str, value: Any, reason: str) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=5)
    bad = spans.add(trace_id=b"\x01" * 16, span_id=b"\x03" * 8)
    if field == "event":
        bad.events.add(time_unix_nano=value)
    elif field == "link":
        bad.links.add(trace_id=value, span_id=b"\x04" * 8)
    else:
        setattr(bad, field, value)
    decoded = decode_traces_protobuf(request.SerializeToString())
    assert [span.span_id for span in decoded.batch.spans] == [good.span_id.hex()]
    assert decoded.rejected == 1
    assert reason in decoded.error_message


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",
        b"\x0a\x05\x01",  # a length-delimited field longer than the body
        b"\x0a",
    ],
)
def test_bad_protobuf_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="invalid protobuf ExportTraceServiceRequest"):
        decode_traces_protobuf(body)


def test_truncated_protobuf_is_a_decode_error(sdk_spans: list[ReadableSpan]) -> None:
    body = traces_request_bytes(sdk_spans)
    with pytest.raises(DecodeError):
        decode_traces_protobuf(body[: len(body) - 7])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "expected an object, got list"),
        (b'"resourceSpans"', "expected an object, got str"),
        (b'{"resourceSpans": 5}', "invalid JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": {}}]}]}]}', "invalid JSON"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "1e99"}]}]}]}',
            "invalid JSON",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": -1}]}]}]}',
            "invalid JSON",
        ),
    ],
)
def test_bad_json_is_a_decode_error(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_traces_json(body)
