"""The direct OTLP walker makes exactly what the model path makes: `prepare(decode(body))`."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.otlp_lazy import LazyTraceRequest
from meshscope.pipeline.prepared import Prepared, prepare
from meshscope.pipeline.sampling.facts import FACTS, SpanMatcher
from meshscope.pipeline.sampling.policies import build_leaf
from meshscope.pipeline.sampling.policy_config import (
    NumericAttribute,
    StatusCodeMatch,
    StringAttribute,
)
from meshscope.store.duckdb.span_rows import encode_columns, encode_spans

# Tail-sampling predicates of every kind, on keys the generated spans carry: both paths must
# summarise the traces alike (facts per trace, each row's trace).
MATCHER = SpanMatcher()
for policy in (
    StatusCodeMatch(("ERROR", "OK")),
    StringAttribute("http.request.method", ("GET", "")),
    StringAttribute("url.path", (r"^/a", "x$"), enabled_regex_matching=True),
    NumericAttribute("http.status_code", 500, 599),
    NumericAttribute("k", min_value=0),
):
    build_leaf(policy, MATCHER)


def model_path(body: bytes, json: bool = False) -> tuple[Prepared, int, str]:
    decoded = decode_otlp("traces", body, json=json)
    prepared = prepare(decoded.batch, encode_spans, matcher=MATCHER)
    return prepared, decoded.rejected, decoded.error_message


def direct_path(body: bytes, json: bool = False) -> tuple[Prepared, int, str]:
    return prepare_traces(body, encode=encode_columns, json=json, matcher=MATCHER)


def assert_same(got: tuple[Prepared, int, str], want: tuple[Prepared, int, str]) -> None:
    (mine, rejected, message), (theirs, want_rejected, want_message) = got, want
    assert (rejected, message) == (want_rejected, want_message)
    assert mine.span_count == theirs.span_count
    if theirs.encoded_spans is None:
        assert mine.encoded_spans is None
    else:
        assert mine.encoded_spans.table.equals(theirs.encoded_spans.table)
        assert mine.encoded_spans.resources == theirs.encoded_spans.resources
    assert mine.sides == theirs.sides
    assert mine.span_metrics == theirs.span_metrics
    assert mine.operations == theirs.operations
    assert mine.traces == theirs.traces
    assert (mine.logs, mine.points, mine.requests) == ([], [], [])
    # What the owner receives: the same after a trip through pickle.
    again = pickle.loads(pickle.dumps(mine))
    assert again.sides == theirs.sides and again.span_metrics == theirs.span_metrics


def test_loadgen_requests_are_prepared_alike() -> None:
    for body in build_requests(3, 300, services=6, seed=11):
        direct = direct_path(body)
        assert_same(direct, model_path(body))
        summary = direct[0].traces
        assert summary is not None and len(summary.row_trace) == 300
        assert any(summary.facts[3::FACTS])  # some trace matched a predicate


scalars = st.one_of(
    st.text(max_size=6).map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=False).map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=4).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
values = st.one_of(
    scalars, st.lists(scalars, max_size=3).map(lambda v: AnyValue(array_value=ArrayValue(values=v)))
)
KEYS = ["http.response.status_code", "http.status_code", "http.request.method", "url.path",
        "http.route", "peer.service", "server.address", "db.system", "k"]  # fmt: skip
attributes = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), st.sampled_from(KEYS), values), max_size=5
)  # repeated keys included: the later one wins, as in the model path
ids8 = st.one_of(st.binary(min_size=8, max_size=8), st.sampled_from([b"", bytes(8), b"\x01"]))
ids16 = st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from([bytes(16), b"\x02" * 3]))


@st.composite
def spans(draw: Any) -> Span:
    start = draw(st.integers(0, 2**62))
    span = Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(ids8),
        name=draw(st.sampled_from(["GET /", "db", ""])),
        kind=draw(st.integers(0, 7)),
        start_time_unix_nano=start,
        end_time_unix_nano=max(0, start + draw(st.integers(-(10**6), 10**11))),
        trace_state=draw(st.sampled_from(["", "a=b"])),
        flags=draw(st.integers(0, 2**32 - 1)),
    )
    span.attributes.extend(draw(attributes))
    span.status.code = draw(st.integers(0, 4))
    span.status.message = draw(st.sampled_from(["", "boom"]))
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(time_unix_nano=start, name="e", attributes=draw(attributes))
    for _ in range(draw(st.integers(0, 2))):
        span.links.add(trace_id=draw(ids16), span_id=draw(ids8), attributes=draw(attributes))
    return span


@st.composite
def requests(draw: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = request.resource_spans.add()
        service = draw(st.sampled_from(["", "api", "db"]))
        if service:
            rs.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
        rs.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(1, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.sampled_from(["", "lib"]))
            ss.spans.extend(draw(st.lists(spans(), max_size=4)))
    return request


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_any_request_is_prepared_alike(request: ExportTraceServiceRequest) -> None:
    body = request.SerializeToString()
    assert_same(direct_path(body), model_path(body))


def test_json_requests_are_prepared_alike() -> None:
    (body,) = build_requests(1, 50, services=3, seed=5)
    document = MessageToJson(ExportTraceServiceRequest.FromString(body)).encode()
    assert_same(direct_path(document, json=True), model_path(document, True))


@pytest.mark.parametrize("json", [False, True])
def test_undecodable_bodies_are_decode_errors(json: bool) -> None:
    with pytest.raises(DecodeError, match="ExportTraceServiceRequest"):
        prepare_traces(b"\x0a\x05\x01" if not json else b"{nope", encode=encode_columns, json=json)


def lazy_body(pairs: list[bytes], ids_valid: bool, where: str) -> bytes:
    """A request whose span (or its event or link) carries these encoded pairs as sent."""
    request = LazyTraceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = b"\x01" * (16 if ids_valid else 3)
    span.span_id = b"\x02" * 8
    holder = {"span": span, "event": span.events.add(), "link": span.links.add()}[where]
    holder.attributes.extend(pairs)
    return bytes(request.SerializeToString())


GOOD = KeyValue(key="k", value=AnyValue(string_value="v")).SerializeToString()
BAD_KEY = b"\x0a\x01\xff"  # a key of one byte that is not UTF-8
TRUNCATED = b"\x0a\x05ab"


@pytest.mark.parametrize("where", ["span", "event", "link"])
@pytest.mark.parametrize("ids_valid", [True, False])
@pytest.mark.parametrize("bad", [BAD_KEY, TRUNCATED])
def test_an_invalid_pair_makes_the_request_invalid_as_in_the_model_path(
    where: str, ids_valid: bool, bad: bytes
) -> None:
    body = lazy_body([GOOD, bad], ids_valid, where)
    with pytest.raises(DecodeError):
        model_path(body)
    with pytest.raises(DecodeError, match="invalid protobuf ExportTraceServiceRequest"):
        prepare_traces(body, encode=encode_columns)


def test_valid_encoded_pairs_are_read_as_the_generated_classes_read_them() -> None:
    body = lazy_body([GOOD, GOOD], ids_valid=True, where="span")  # a repeated key too
    assert_same(direct_path(body), model_path(body))


def test_a_server_span_behind_a_sidecar_is_counted_as_internal_alike() -> None:
    """sidecar_mark: the application's SERVER span whose `meshscope` tracestate entry names
    its parent counts as INTERNAL; a SERVER span whose entry names another span does not."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="api"))
    proxy, own, other = b"\x0a" * 8, b"\x0b" * 8, b"\x0c" * 8
    for name, span_id, parent, state in [
        ("GET /orders/{id}", proxy, b"\x09" * 8, f"meshscope={proxy.hex()}"),
        ("GET /orders/{order_id}", own, proxy, f"meshscope={proxy.hex()},k=v"),
        ("GET /other", other, b"\x08" * 8, f"k=v, meshscope={proxy.hex()}"),
    ]:
        rs.scope_spans.add().spans.add(
            trace_id=b"\x01" * 16, span_id=span_id, parent_span_id=parent, name=name,
            kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=10**9, end_time_unix_nano=2 * 10**9,
            trace_state=state,
        )  # fmt: skip
    body = request.SerializeToString()
    direct = direct_path(body)
    assert_same(direct, model_path(body))
    assert direct[0].span_metrics is not None
    assert sorted((name, kind) for _, kind, name, _ in direct[0].span_metrics.keys) == [
        ("GET /orders/{id}", 2), ("GET /orders/{order_id}", 1), ("GET /other", 2),
    ]  # fmt: skip
