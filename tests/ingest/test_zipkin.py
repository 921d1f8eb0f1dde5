from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.zipkin.json.v2 import JsonV2Encoder
from opentelemetry.exporter.zipkin.node_endpoint import NodeEndpoint
from opentelemetry.sdk.trace import ReadableSpan

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.zipkin import decode_zipkin_json
from meshscope.model.spans import SpanKind, StatusCode
from tests.ingest.otel_sdk import make_spans


@pytest.fixture(scope="module")
def sdk_spans() -> list[ReadableSpan]:
    return make_spans()


def _encode(spans: list[ReadableSpan]) -> bytes:
    endpoint = NodeEndpoint(ipv4="10.1.2.3", port=8080)
    endpoint.service_name = "checkout"
    return JsonV2Encoder().serialize(spans, endpoint).encode()  # type: ignore[arg-type]


def test_otel_zipkin_exporter_output_round_trips(sdk_spans: list[ReadableSpan]) -> None:
    decoded = decode_zipkin_json(_encode(sdk_spans))
    got = {span.span_id: span for span in decoded.batch.spans}
    assert len(got) == 4
    for sdk in sdk_spans:
        ctx = sdk.get_span_context()
        assert ctx is not None and sdk.parent is not None
        assert sdk.start_time is not None and sdk.end_time is not None
        span = got[f"{ctx.span_id:016x}"]
        assert span.trace_id == f"{ctx.trace_id:032x}"
        assert span.parent_span_id == f"{sdk.parent.span_id:016x}"
        assert span.name == sdk.name
        assert span.service == "checkout"
        # Zipkin carries microseconds.
        assert span.start_ns == (sdk.start_time + 500) // 1000 * 1000
        assert span.duration_ns == (sdk.end_time - sdk.start_time + 500) // 1000 * 1000
        expected_kind = SpanKind[sdk.kind.name]
        assert span.kind is expected_kind
        assert span.status_code is StatusCode[sdk.status.status_code.name]
        assert span.status_message == (sdk.status.description or "")
        assert sdk.instrumentation_scope is not None
        assert (span.scope_name, span.scope_version) == ("meshscope.tests", "1.2.3")
        assert span.attributes["network.local.address"] == "10.1.2.3"
        assert span.attributes["network.local.port"] == 8080
        # Zipkin tags are strings: the exporter stringifies values.
        for key, value in (sdk.attributes or {}).items():
            if isinstance(value, str):
                assert span.attributes[key] == value
        assert [(e.name, e.time_ns, e.attributes) for e in span.events] == [
            (e.name, (e.timestamp + 500) // 1000 * 1000, dict(e.attributes or {}))
            for e in sdk.events
        ]
    server = next(s for s in decoded.batch.spans if s.kind is SpanKind.SERVER)
    assert server.attributes["http.response.status_code"] == "200"
    assert server.attributes["service.namespace"] == "shop"  # resource attrs become tags


def _zipkin_span(**fields: Any) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": "463AC35C9F6413AD",
        "id": "72485a3953bb6124",
        "name": "get /api",
        "timestamp": 1556604172355737,
        "duration": 1431,
        "kind": "CLIENT",
        "localEndpoint": {"serviceName": "Frontend", "ipv4": "192.168.99.1"},
        "remoteEndpoint": {"serviceName": "backend", "ipv4": "172.19.0.2", "port": 9000},
        "annotations": [{"timestamp": 1556604172355800, "value": "wire send"}],
        "tags": {"http.method": "GET", "error": "timeout talking to backend"},
        "shared": False,
    }
    span.update(fields)
    return span


def test_zipkin_api_example_span() -> None:
    (span,) = decode_zipkin_json(json.dumps([_zipkin_span()]).encode()).batch.spans
    assert span.trace_id == "0000000000000000463ac35c9f6413ad"
    assert span.span_id == "72485a3953bb6124"
    assert span.is_root
    assert span.kind is SpanKind.CLIENT
    assert (span.start_ns, span.end_ns) == (1556604172355737000, 1556604172357168000)
    assert span.service == "Frontend"
    assert span.resource == {"service.name": "Frontend"}
    assert span.attributes == {
        "http.method": "GET",
        "peer.service": "backend",
        "network.peer.address": "172.19.0.2",
        "network.peer.port": 9000,
        "network.local.address": "192.168.99.1",
    }
    assert (span.status_code, span.status_message) == (
        StatusCode.ERROR,
        "timeout talking to backend",
    )
    assert [(e.name, e.time_ns, e.attributes) for e in span.events] == [
        ("wire send", 1556604172355800000, {})
    ]


def test_absent_kind_is_internal_and_short_ids_are_padded() -> None:
    raw = _zipkin_span(kind=None, id="abc", parentId="0000000000000001", tags={"error": ""})
    del raw["kind"]
    (span,) = decode_zipkin_json(json.dumps([raw]).encode()).batch.spans
    assert span.kind is SpanKind.INTERNAL
    assert span.span_id == "0000000000000abc"
    assert span.parent_span_id == "0000000000000001"
    assert (span.status_code, span.status_message) == (StatusCode.ERROR, "")


def test_minimal_span() -> None:
    body = b'[{"traceId": "0af7651916cd43dd8448eb211c80319c", "id": "b7ad6b7169203331"}]'
    (span,) = decode_zipkin_json(body).batch.spans
    assert (span.service, span.name, span.start_ns, span.end_ns) == ("unknown_service", "", 0, 0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"traceId": "1"}', "must be a JSON list"),
        (b"[1]", "span 0: each span must be a JSON object"),
        (b'[{"id": "72485a3953bb6124"}]', "span 0: traceId"),
        (b'[{"traceId": "463ac35c9f6413ad"}]', "span 0: id"),
        (b'[{"traceId": "xyz", "id": "72485a3953bb6124"}]', "traceId 'xyz' is not 32 hex"),
        (b'[{"traceId": "1", "id": "0000000000000000"}]', "all zeros"),
        (b'[{"traceId": "1", "id": "2", "parentId": "x"}]', "parentId"),
        (b'[{"traceId": "1", "id": "2", "kind": "SIDEWAYS"}]', "unknown kind"),
        (b'[{"traceId": "1", "id": "2", "timestamp": "now"}]', "timestamp"),
        (b'[{"traceId": "1", "id": "2", "duration": 1e300}]', "out of range"),
        (b'[{"traceId": "1", "id": "2", "tags": []}]', "tags must be an object"),
        (b'[{"traceId": "1", "id": "2", "tags": {"a": [1]}}]', "tag 'a'"),
        (b'[{"traceId": "1", "id": "2", "annotations": [3]}]', "annotation"),
        (b'[{"traceId": "1", "id": "2", "localEndpoint": "x"}]', "localEndpoint"),
        (b'[{"traceId": "1", "id": "2", "name": 5}]', "name must be a string"),
        (b"[", "invalid JSON"),
    ],
)
def test_invalid_bodies(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_zipkin_json(body)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_decode_error(body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_zipkin_json(body)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "traceId",
                    "id",
                    "parentId",
                    "kind",
                    "timestamp",
                    "duration",
                    "tags",
                    "annotations",
                    "localEndpoint",
                    "remoteEndpoint",
                    "value",
                    "port",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@given(st.lists(_json, max_size=3))
def test_arbitrary_json_lists_decode_or_raise_decode_error(document: list[Any]) -> None:
    with contextlib.suppress(DecodeError):
        decode_zipkin_json(json.dumps(document).encode())


@pytest.mark.parametrize(
    "attrs",
    ['{"deep": ' + "[" * 1000 + "]" * 1000 + "}", '{"deep": [[1]]}', '{"map": {"a": 1}}',
     '{"none": null}'],
)  # fmt: skip
def test_an_annotation_whose_attributes_are_no_otel_attributes_stays_text(attrs: str) -> None:
    """Only what the OTel exporter writes (`{"name": {attributes}}`, values scalars or flat
    lists) becomes an event with attributes; nested values (1,000 deep raised RecursionError
    when stored: a 500) keep the annotation as its text."""
    value = '{"ev": ' + attrs + "}"
    body = orjson.dumps(
        [{"traceId": "1", "id": "2", "annotations": [{"timestamp": 5, "value": value}]}]
    )
    (span,) = decode_zipkin_json(body).batch.spans
    (event,) = span.events
    assert (event.name, event.attributes) == (value, {})
    ok = orjson.dumps(
        [{"traceId": "1", "id": "2", "annotations": [{"timestamp": 5,
          "value": '{"ev": {"a": 1, "b": ["x", 2.5, true]}}'}]}]
    )  # fmt: skip
    (span,) = decode_zipkin_json(ok).batch.spans
    assert (span.events[0].name, span.events[0].attributes) == (
        "ev",
        {"a": 1, "b": ["x", 2.5, True]},
    )


@pytest.mark.parametrize(
    ("value", "name", "attrs"),
    [
        ('retry|{"attempt":2,"ok":true}|0', "retry", {"attempt": 2, "ok": True}),
        ('a|b|{"x":1}|3', 'a|b|{"x":1}|3', {}),  # the name holds no "|": the text stays
        ("cache|{not json}|1", "cache|{not json}|1", {}),
        ('cache|{"k":"v"}|x', 'cache|{"k":"v"}|x', {}),
        ("plain words | more", "plain words | more", {}),
    ],
)
def test_the_collectors_annotation_form_is_read_as_an_event_with_attributes(
    value: str, name: str, attrs: dict[str, object]
) -> None:
    """The OTel Collector's Zipkin exporter writes an event with attributes as
    `name|{attributes as JSON}|dropped count`."""
    body = orjson.dumps(
        [{"traceId": "1", "id": "2", "annotations": [{"timestamp": 5, "value": value}]}]
    )
    (span,) = decode_zipkin_json(body).batch.spans
    (event,) = span.events
    assert (event.name, event.attributes) == (name, attrs)


@pytest.mark.parametrize(
    ("status", "message"),
    [(StatusCode.ERROR, ""), (StatusCode.ERROR, "out of stock"), (StatusCode.OK, ""),
     (StatusCode.UNSET, "")],
)  # fmt: skip
def test_the_zipkin_read_model_round_trips_through_ingest(status: StatusCode, message: str) -> None:
    """What the read API writes (`span_json`) decodes back to the same events and status: the
    tags the OTel spec's Zipkin mapping asks for (`otel.status_code`, `error` "" without a
    message) and annotations `{"name":{attributes}}`."""
    from meshscope.api.zipkin_model import span_json
    from meshscope.model.spans import Span, SpanEvent

    events = (SpanEvent(7_000, "retry", {"attempt": 2, "ids": ["a", "b"]}), SpanEvent(8_000, "x"))
    span = Span("0" * 16 + "1" * 16, "2" * 16, "op", "svc", 5_000, 9_000, kind=SpanKind.SERVER,
                status_code=status, status_message=message, events=events)  # fmt: skip
    written = span_json(span)
    tags = written.get("tags", {})
    assert tags.get("otel.status_code") == (None if status is StatusCode.UNSET else status.name)
    assert ("error" in tags) == (status is StatusCode.ERROR)
    (back,) = decode_zipkin_json(orjson.dumps([written])).batch.spans
    assert (back.status_code, back.status_message) == (status, message)
    assert back.events == events
