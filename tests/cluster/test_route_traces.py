"""`route_traces`: a cluster node's split of a traces body and the preparation of its own share
in one worker call gives what the split followed by the worker's walk of the local part gives:
the same parts for the other owners, the same prepared share (rows, derivation inputs,
tail-sampling summaries), the same refusals."""

from __future__ import annotations

import gzip
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Routed, Table, route_traces, split_body, split_watching
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.otlp_lazy import LazyTraceRequest
from meshscope.ingest.workers import SpanPreparation
from meshscope.pipeline.prepared import Prepared
from meshscope.store.duckdb.span_rows import encode_columns
from tests.cluster.traces import calls, otlp_json, request
from tests.ingest.test_otlp_direct import BAD_KEY, MATCHER, assert_same

RING = Ring.of(["a", "b", "c"])
MAX = 20 * 1024 * 1024
SPANS = SpanPreparation(encode_columns, MATCHER)


def table(local: str) -> Table:
    return Table(RING.peers, RING.owners, local)


def owner(trace_id: bytes) -> str:
    return RING.owner(int.from_bytes(trace_id[8:], "big"))


def route(body: bytes, local: str = "a", encoding: str = "identity", json: bool = False) -> Routed:
    return route_traces(body, encoding, json, table(local), MAX, SPANS)


def walk(body: bytes) -> tuple[Prepared, int, str]:
    """What a worker prepares from a body on the usual path."""
    return prepare_traces(body, encode=encode_columns, matcher=MATCHER)


def prepared(routed: Routed) -> tuple[Prepared, int, str]:
    status, *rest = routed.outcome
    assert status == "ok", routed.outcome
    return rest[0], rest[1], rest[2]


def test_a_body_all_of_this_nodes_is_prepared_whole_and_forwards_nothing() -> None:
    mine = [c for c in calls(60) if owner(c.trace_id) == "b"]
    body = request(mine)
    routed = route(body, local="b")
    assert routed.parts == {} and routed.spans == 3 * len(mine)
    assert_same(prepared(routed), walk(body))


@pytest.mark.parametrize("seed", [1, 2])
def test_a_sprayed_body_gives_the_split_parts_and_prepares_the_local_share(seed: int) -> None:
    """Loadgen requests (attributes, events, links, many resources and scopes)."""
    for body in build_requests(2, 300, services=6, seed=seed):
        routed = route(body)
        parts = split_body("traces", body, "identity", False, table("a"), MAX)
        assert parts is not None and set(parts) == {"a", "b", "c"}
        local = parts.pop("a")
        assert set(routed.parts) == set(parts)
        for peer, part in parts.items():
            got = routed.parts[peer]
            assert (got.items, got.json) == (part.items, part.json)
            assert ExportTraceServiceRequest.FromString(got.body) == (
                ExportTraceServiceRequest.FromString(part.body)
            )
        assert_same(prepared(routed), walk(local.body))
        assert routed.spans == 300


def test_json_and_compressed_bodies_are_routed_like_protobuf() -> None:
    body = build_requests(1, 200, services=4, seed=5)[0]
    want = route(body)
    for routed in (
        route(otlp_json(body), json=True),
        route(gzip.compress(body), encoding="gzip"),
    ):
        assert {peer: part.body for peer, part in routed.parts.items()} == {
            peer: part.body for peer, part in want.parts.items()
        }
        assert_same(prepared(routed), prepared(want))


def test_spans_the_decoder_rejects_stay_here_and_are_counted() -> None:
    made = calls(30)
    for call in made[:3]:
        call.spans["frontend"][0].end_time_unix_nano = 2**63
    assert {owner(c.trace_id) for c in made[:3]} - {"a"}  # some would be forwarded
    routed = route(request(made))
    share, rejected, message = prepared(routed)
    assert rejected == 3 and "2^63" in message
    forwarded = sum(part.items for part in routed.parts.values())
    assert share.span_count + rejected + forwarded == routed.spans == 90


def test_an_invalid_attribute_in_another_nodes_span_refuses_the_whole_body() -> None:
    """As when the generated classes parse the body: nothing is forwarded or stored."""
    made = calls(30)
    theirs = next(c for c in made if owner(c.trace_id) == "b")
    lazy = LazyTraceRequest.FromString(request(made))
    for span in lazy.resource_spans[1].scope_spans[0].spans:  # the backend's spans
        if span.trace_id == theirs.trace_id:
            span.attributes.append(BAD_KEY)
    body = lazy.SerializeToString()
    with pytest.raises(DecodeError):
        walk(body)  # the usual path refuses it too
    routed = route(body)
    assert routed.outcome[:2] == ("refused", 400) and routed.parts == {}


def test_an_unreadable_body_is_refused_with_nothing_forwarded() -> None:
    for raw, encoding in [(b"\xff\x00garbage", "identity"), (b"x", "gzip")]:
        routed = route(raw, encoding=encoding)
        assert routed.outcome[0] == "refused" and routed.outcome[1] in (400, 415)
        assert routed.parts == {} and routed.spans == 0


def test_traces_in_flight_at_a_ring_change_are_named_as_by_the_split() -> None:
    before = calls(60, seed=3, now_ns=time.time_ns() - 10**9)
    new = RING.without(["c"])
    moved = bytes(int(a != b) for a, b in zip(RING.owners, new.owners, strict=True))
    changed = Table(new.peers, new.owners, "a", moved, time.time_ns())
    body = request(before)
    want = split_watching("traces", body, "identity", False, changed, MAX)[1]
    assert want and route_traces(body, "identity", False, changed, MAX, SPANS).split == want
