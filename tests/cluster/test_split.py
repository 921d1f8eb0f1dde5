"""Splitting request bodies by trace owner."""

from __future__ import annotations

import gzip

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Table, split_body
from tests.cluster.traces import calls, logs_request, otlp_json, request

RING = Ring.of(["a", "b", "c"])
MAX = 20 * 1024 * 1024


def table(local: str) -> Table:
    return Table(RING.peers, RING.owners, local)


def test_traces_are_split_whole_by_owner() -> None:
    made = calls(60)
    parts = split_body("traces", request(made), "identity", False, table("a"), MAX)
    assert parts is not None and set(parts) == {"a", "b", "c"}
    seen: dict[bytes, str] = {}
    total = 0
    for peer, part in parts.items():
        message = ExportTraceServiceRequest.FromString(part.body)
        count = 0
        for rs in message.resource_spans:
            assert rs.resource.attributes[0].key == "service.name"
            for ss in rs.scope_spans:
                assert ss.scope.name == "tests.cluster"
                for span in ss.spans:
                    assert RING.owner(int.from_bytes(span.trace_id[8:], "big")) == peer
                    assert seen.setdefault(span.trace_id, peer) == peer
                    count += 1
        assert count == part.items
        total += count
    assert total == 60 * 3


def test_all_local_answers_none_and_compressed_bodies_are_read() -> None:
    made = [c for c in calls(40) if RING.owner(int.from_bytes(c.trace_id[8:], "big")) == "b"]
    body = request(made)
    assert split_body("traces", body, "identity", False, table("b"), MAX) is None
    parts = split_body("traces", gzip.compress(body), "gzip", False, table("a"), MAX)
    assert parts is not None and set(parts) == {"b"}


def test_json_bodies_split_into_protobuf_parts() -> None:
    parts = split_body("traces", otlp_json(request(calls(30))), "identity", True, table("a"), MAX)
    assert parts is not None
    assert sum(part.items for part in parts.values()) == 90
    assert not any(part.json for part in parts.values())


def test_logs_follow_their_trace_and_untraced_stay() -> None:
    made = calls(30)
    body = logs_request([c.trace_id for c in made], untraced=5)
    parts = split_body("logs", body, "identity", False, table("a"), MAX)
    assert parts is not None
    untraced = 0
    for peer, part in parts.items():
        message = ExportLogsServiceRequest.FromString(part.body)
        for record in message.resource_logs[0].scope_logs[0].log_records:
            if record.trace_id:
                assert RING.owner(int.from_bytes(record.trace_id[8:], "big")) == peer
            else:
                assert peer == "a"
                untraced += 1
    assert untraced == 5


def test_zipkin_spans_split_by_trace_id() -> None:
    spans = [{"traceId": c.trace_id.hex(), "id": "1" * 16, "name": "x"} for c in calls(30)]
    # Ids as short as Zipkin allows go where the decoder's padded id goes (they stayed here).
    spans += [{"traceId": c.trace_id.hex()[-16:].lstrip("0")[:-1] or "1", "id": "2" * 16}
              for c in calls(10)]  # fmt: skip
    parts = split_body("zipkin", orjson.dumps(spans), "identity", True, table("a"), MAX)
    assert parts is not None and len(parts) > 1
    assert sum(part.items for part in parts.values()) == len(spans)
    for peer, part in parts.items():
        assert part.json
        for span in orjson.loads(part.body):
            assert RING.owner_of_hex(span["traceId"].rjust(32, "0")) == peer


def test_a_zipkin_body_with_an_invalid_span_stays_here_whole() -> None:
    """Zipkin refuses a body with any invalid span: it is not split, so no peer stores part
    of a request its client is told was refused (a bad id whose low half is zeros raised
    ValueError here: a 500)."""
    good = [{"traceId": c.trace_id.hex(), "id": "1" * 16, "name": "x"} for c in calls(30)]
    for bad in ({"traceId": "z" * 16 + "0" * 16, "id": "2" * 16},
                {"traceId": good[0]["traceId"], "id": "3" * 16, "kind": "BOGUS"},
                {"traceId": "not-hex", "id": "2" * 16}):  # fmt: skip
        body = orjson.dumps([*good, bad])
        assert split_body("zipkin", body, "identity", True, table("a"), MAX) is None


def test_unreadable_bodies_are_left_to_the_normal_path() -> None:
    assert split_body("traces", b"\xff\x00garbage", "identity", False, table("a"), MAX) is None
    assert split_body("traces", b"x", "gzip", False, table("a"), MAX) is None


def test_spans_the_decoder_would_reject_stay_here() -> None:
    """A span a decoder rejects (bad ids, a time past 2262, a bad link) is kept in this
    node's part, whose decoder answers the client about it: a forwarded part holds only
    spans its owner stores, so a batch of parts is never partly rejected for another
    client's data."""
    made = calls(30)
    bad = []
    for index, call in enumerate(made[:3]):
        span = call.spans["frontend"][0]
        if index == 0:
            span.span_id = b"\x01\x02"  # not 8 bytes
        elif index == 1:
            span.end_time_unix_nano = 2**63
        else:
            span.links.add(trace_id=b"\x01", span_id=b"\x02")
        bad.append(span.span_id)
    owners = {RING.owner(int.from_bytes(c.trace_id[8:], "big")) for c in made[:3]}
    assert owners - {"a"}  # some would be forwarded were they valid
    parts = split_body("traces", request(made), "identity", False, table("a"), MAX)
    assert parts is not None
    where = {
        span.span_id: peer
        for peer, part in parts.items()
        for rs in ExportTraceServiceRequest.FromString(part.body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    }
    assert all(where[span_id] == "a" for span_id in bad)
    assert sum(part.items for part in parts.values()) == 30 * 3
