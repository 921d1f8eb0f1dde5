"""Loki push decoders: JSON and snappy protobuf bodies -> log records, and bad bodies."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import snappy

from meshscope.ingest.body import BodyError
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.loki import decode_loki_json, decode_loki_protobuf, log_record
from meshscope.ingest.loki_labels import parse_stream_labels
from meshscope.ingest.lokipb.push_pb2 import PushRequest
from meshscope.model.logs import Severity
from tests.loki_data import LINES, json_push, protobuf_push

MAX = 20 * 1024 * 1024


def test_json_and_protobuf_decode_the_same_records() -> None:
    from_json = decode_loki_json(json_push(LINES)).batch.logs
    from_proto = decode_loki_protobuf(protobuf_push(LINES), MAX).batch.logs
    assert len(from_json) == len(LINES)
    by_time = sorted(from_json, key=lambda r: r.time_ns)
    proto_by_time = sorted(from_proto, key=lambda r: r.time_ns)
    # The protobuf push names the trace id `traceID` (upper case), kept as pushed.
    assert [replace(r, attributes={}) for r in proto_by_time] == by_time
    for line, record, proto in zip(LINES, by_time, proto_by_time, strict=True):
        assert (record.time_ns, record.body, record.service) == (
            line.time_ns,
            line.body,
            line.service,
        )
        assert (record.trace_id, record.span_id) == (line.trace_id, line.span_id)
        assert record.severity_text == line.level
        assert record.resource == {"env": line.labels["env"], "level": line.level}
        assert record.attributes == {}  # `trace_id`/`span_id`: read back as those labels
        assert proto.attributes == ({"traceID": line.trace_id.upper()} if line.trace_id else {})


def test_mapping_service_discovery_metadata_and_levels() -> None:
    record = log_record(
        {"job": "ns/api", "app": "cart"},
        5,
        "hello",
        {
            "traceID": "ABCDEF0123456789",
            "spanId": "00f067aa0ba902b7",
            "user": "u1",
            "severity": "WARNING",
        },
    )
    assert record.service == "cart"  # app comes before job, as in Loki's discovery
    assert record.trace_id == "0000000000000000abcdef0123456789"
    assert record.span_id == "00f067aa0ba902b7"
    # Kept as pushed (Loki answers them so), beside the ids read from them.
    assert record.attributes == {"traceID": "ABCDEF0123456789", "spanId": "00f067aa0ba902b7",
                                 "user": "u1", "severity": "WARNING"}  # fmt: skip
    assert record.severity is Severity.WARN
    assert record.resource == {"job": "ns/api", "app": "cart"}
    plain = log_record({"service_name": "a", "env": "x"}, 1, "l", {"trace_id": "not-hex"})
    assert plain.service == "a" and plain.resource == {"env": "x"}
    assert plain.trace_id == "" and plain.attributes == {"trace_id": "not-hex"}
    assert log_record({"env": "x"}, 1, "l", {}).service == "unknown_service"
    # Loki's discover_service_name: a container label names the service too.
    assert log_record({"container": "web", "env": "x"}, 1, "l", {}).service == "web"
    zero = log_record({"a": "b"}, 1, "l", {"trace_id": "0" * 32})
    assert zero.trace_id == "" and zero.attributes == {"trace_id": "0" * 32}


def test_json_structured_metadata_and_gzip_free_body() -> None:
    body = {"streams": [{"stream": {"app": "a"}, "values": [["17", "x", {"k": "v"}], ["18", "y"]]}]}
    records = decode_loki_json(json.dumps(body).encode()).batch.logs
    assert [(r.time_ns, r.body, r.attributes) for r in records] == [
        (17, "x", {"k": "v"}),
        (18, "y", {}),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "invalid JSON"),
        (b"[]", "expected"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [[17, "x"]]}]}', "string of nanoseconds"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1.5", "x"]]}]}', "invalid timestamp"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1", 5]]}]}', "must be a string"),
        (b'{"streams": [{"stream": {"a": 1}, "values": []}]}', "expected a string value"),
        (b'{"streams": [{"stream": {}, "values": [["1", "x"]]}]}', "at least one label"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1", "x", {"m": 2}]]}]}', "string"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1"]]}]}', "expected ["),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["-1", "x"]]}]}', "out of range"),
        # Go's ParseInt takes none of what Python's int() does beyond digits
        (b'{"streams": [{"stream": {"a": "b"}, "values": [["1_796", "x"]]}]}', "invalid timestamp"),
        (b'{"streams": [{"stream": {"a": "b"}, "values": [[" 123 ", "x"]]}]}', "invalid timestamp"),
        ('{"streams": [{"stream": {"a": "b"}, "values": [["\u0661", "x"]]}]}'.encode(), "invalid"),
        (
            b'{"streams": [{"stream": {"a": "b"}, "values": [["9' + b"9" * 30 + b'", "x"]]}]}',
            "invalid timestamp",
        ),
    ],
)
def test_bad_json_bodies_are_decode_errors(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message.replace("[", r"\[")):
        decode_loki_json(body)


def test_bad_protobuf_bodies_are_decode_errors() -> None:
    with pytest.raises(DecodeError, match="snappy"):
        decode_loki_protobuf(b"\x05not snappy at all", MAX)
    with pytest.raises(DecodeError, match="PushRequest"):
        decode_loki_protobuf(snappy.compress(b"\xff\xff\xff\xff"), MAX)
    with pytest.raises(BodyError, match="exceeds") as info:
        decode_loki_protobuf(snappy.compress(b"x" * 2000), 1000)
    assert info.value.status == 413
    request = PushRequest()
    request.streams.add(labels='{app="a" env="b"}').entries.add(line=b"x")
    with pytest.raises(DecodeError, match="invalid stream labels"):
        decode_loki_protobuf(snappy.compress(request.SerializeToString()), MAX)


def test_a_protobuf_line_that_is_not_utf8_is_kept_with_replacement_characters() -> None:
    """Python's protobuf refused the whole push (400) for one such line; Loki's Go decoder
    keeps it, and its JSON answers show U+FFFD where the bytes were."""
    request = PushRequest()
    stream = request.streams.add(labels='{app="a"}')
    stream.entries.add(line=b"ok").timestamp.seconds = 1
    stream.entries.add(line=b"bad \xff\xfe end").timestamp.seconds = 2
    decoded = decode_loki_protobuf(snappy.compress(request.SerializeToString()), MAX)
    assert [r.body for r in decoded.batch.logs] == ["ok", "bad \ufffd\ufffd end"]


def test_stream_label_text_go_quoting() -> None:
    text = r'{a="b", c="q\"uote\n", d=`raw\n`, e="\u00e9\x41"}'
    assert parse_stream_labels(text) == {"a": "b", "c": 'q"uote\n', "d": r"raw\n", "e": "éA"}
    assert parse_stream_labels("{ }") == {}
    for bad in ('a="b"', "{a=b}", '{a="b" c="d"}', '{a="\\q"}', '{a="b",,}'):
        with pytest.raises(DecodeError):
            parse_stream_labels(bad)
