from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_logs import decode_logs_json, decode_logs_protobuf
from meshscope.model.logs import Severity
from tests.ingest.otel_sdk import RESOURCE_ATTRS, make_logs


@pytest.fixture(scope="module")
def sdk_logs() -> tuple[list[Any], bytes]:
    return make_logs()


def test_protobuf_round_trip_of_sdk_logs(sdk_logs: tuple[list[Any], bytes]) -> None:
    records, body = sdk_logs
    decoded = decode_logs_protobuf(body)
    assert decoded.rejected == 0
    assert len(decoded.batch.logs) == len(records) == 3
    for sdk, got in zip(records, decoded.batch.logs, strict=True):
        record = sdk.log_record
        assert got.time_ns == (record.timestamp or record.observed_timestamp)
        assert got.severity == (record.severity_number.value if record.severity_number else 0)
        assert got.severity_text == (record.severity_text or "")
        assert got.attributes == dict(record.attributes or {})
        assert got.resource == RESOURCE_ATTRS
        assert got.service == "checkout"
        if record.trace_id:
            assert got.trace_id == f"{record.trace_id:032x}"
            assert got.span_id == f"{record.span_id:016x}"
        else:
            assert (got.trace_id, got.span_id) == ("", "")
    first, second, third = decoded.batch.logs
    assert first.body == "payment failed"
    assert (first.severity, first.level) == (18, Severity.ERROR)  # ERROR2 as sent
    assert first.trace_id != ""
    # Non-string bodies are JSON-encoded.
    assert json.loads(second.body) == {"event": "login", "user": {"id": 7}, "tags": ["x"]}
    assert second.time_ns == 1_700_000_000_000_000_002  # observed time stands in
    assert json.loads(third.body) == 12.5


def test_json_with_base64_ids_equals_protobuf(sdk_logs: tuple[list[Any], bytes]) -> None:
    _, body = sdk_logs
    as_json = MessageToJson(ExportLogsServiceRequest.FromString(body)).encode()
    assert decode_logs_json(as_json) == decode_logs_protobuf(body)


def test_json_spec_example_with_hex_ids() -> None:
    doc = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "my.library", "version": "1.0.0"},
                        "logRecords": [
                            {
                                "timeUnixNano": "1544712660300000000",
                                "observedTimeUnixNano": "1544712660300000001",
                                "severityNumber": 10,
                                "severityText": "Information",
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "body": {"stringValue": "Example log record"},
                                "attributes": [
                                    {"key": "int.attribute", "value": {"intValue": "10"}},
                                    {
                                        "key": "array.attribute",
                                        "value": {
                                            "arrayValue": {
                                                "values": [
                                                    {"stringValue": "many"},
                                                    {"stringValue": "values"},
                                                ]
                                            }
                                        },
                                    },
                                ],
                            },
                            {"severity_number": "SEVERITY_NUMBER_FATAL4", "body": {}},
                        ],
                    }
                ],
            }
        ]
    }
    decoded = decode_logs_json(json.dumps(doc).encode())
    first, second = decoded.batch.logs
    assert first.time_ns == 1544712660300000000
    # The number as sent (INFO2), its level INFO (it was stored as 9).
    assert (first.severity, first.level) == (10, Severity.INFO)
    assert first.severity_text == "Information"
    assert (first.trace_id, first.span_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
    )
    assert first.body == "Example log record"
    assert first.attributes == {"int.attribute": 10, "array.attribute": ["many", "values"]}
    assert first.service == "my.service"
    assert (second.severity, second.level) == (24, Severity.FATAL)
    assert second.body == "" and second.time_ns > first.time_ns  # no time: when received


def test_malformed_ids_reject_the_record() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, time_unix_nano=1)
    records.add(trace_id=bytes(16), span_id=bytes(8), time_unix_nano=2)
    records.add(trace_id=b"\x01" * 3, time_unix_nano=3)
    records.add(span_id=b"\x01" * 9, time_unix_nano=4)
    decoded = decode_logs_protobuf(request.SerializeToString())
    assert [r.time_ns for r in decoded.batch.logs] == [1, 2]
    assert decoded.batch.logs[1].trace_id == ""
    assert decoded.rejected == 2
    assert decoded.error_message.startswith("rejected 2 log records:")


def test_bytes_body_is_base64_text() -> None:
    """As Loki's line for it (pdata's `AsString`): the base64 text, not a JSON string."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.bytes_value = b"\xff\x00"
    (got,) = decode_logs_protobuf(request.SerializeToString()).batch.logs
    assert got.body == "/wA="


@pytest.mark.parametrize("body", [b"\xff\xff", b"\x0a\x10\x01"])
def test_bad_protobuf(body: bytes) -> None:
    with pytest.raises(DecodeError, match="ExportLogsServiceRequest"):
        decode_logs_protobuf(body)


@pytest.mark.parametrize("body", [b"", b"[]", b'{"resourceLogs": {}}', b"nul"])
def test_bad_json(body: bytes) -> None:
    with pytest.raises(DecodeError, match="invalid JSON ExportLogsServiceRequest"):
        decode_logs_json(body)


def test_a_record_without_any_time_is_stamped_when_received() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add().body.string_value = "no time at all"
    records.add(observed_time_unix_nano=5).body.string_value = "observed"
    before = time.time_ns()
    decoded = decode_logs_protobuf(request.SerializeToString())
    after = time.time_ns()
    untimed, observed = decoded.batch.logs
    assert before <= untimed.time_ns <= after
    assert observed.time_ns == 5
