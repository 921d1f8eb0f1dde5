"""Every decoder is total: whatever the bytes, it returns what it decoded or raises its own
refusal (DecodeError; BodyError for a body that inflates too far), never anything else, and
whatever it accepts can be committed to a real DuckDB file store and to the memory store.

Inputs: arbitrary bytes, valid messages with fields set to hostile values (times past 2^63,
ids of any length, NaN and infinities, deep AnyValue nesting, Go escapes of surrogates), and
valid messages' encodings with bytes flipped, dropped or inserted. Examples are bounded so
the whole module runs in well under a minute.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import snappy
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from meshscope.clock import SystemClock
from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Table, route_traces
from meshscope.ingest.body import ENCODINGS, BodyError, decompress, uncompress_snappy
from meshscope.ingest.delta import DeltaToCumulative
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.exposition import parse_families, to_points
from meshscope.ingest.loki import decode_loki_json, decode_loki_protobuf
from meshscope.ingest.lokipb.push_pb2 import PushRequest
from meshscope.ingest.otlp import Decoded, Signal, decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.prompb.remote_pb2 import WriteRequest
from meshscope.ingest.remote_write import RemoteWriteDecoder
from meshscope.ingest.workers import SpanPreparation
from meshscope.ingest.zipkin import decode_zipkin_json
from meshscope.model.batch import Batch
from meshscope.node.framing import Output, read_values
from meshscope.node.main import Node
from meshscope.pipeline.chain import Pipeline
from meshscope.store.duckdb import DuckDBStorage
from meshscope.store.duckdb.span_rows import encode_columns
from meshscope.store.memory import MemoryStorage

BOUNDED = settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSALS = (DecodeError, BodyError)
_RING = Ring.of(["a", "b", "c"])
ROUTING = Table(_RING.peers, _RING.owners, "a")
ROUTED_SPANS = SpanPreparation(encode_columns, None)


class Stores:
    """A real DuckDB file and the memory store, each behind the real pipeline."""

    def __init__(self, path: Path) -> None:
        self.duckdb = DuckDBStorage(path)
        self.pipelines = [
            Pipeline(self.duckdb, SystemClock()),
            Pipeline(MemoryStorage(), SystemClock()),
        ]

    def commit(self, batch: Batch) -> None:
        for pipeline in self.pipelines:
            pipeline.consume(batch)
            pipeline.flush()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    made = Stores(tmp_path_factory.mktemp("total") / "total.duckdb")
    yield made
    made.duckdb.close()


def accepted(decode: Any, *args: Any) -> Decoded | None:
    """The decoder's result, or None when it refused the input with its own error."""
    try:
        result: Decoded = decode(*args)
    except REFUSALS:
        return None
    return result


# --- hostile values --------------------------------------------------------------------

TIMES = st.sampled_from([0, 1, 1_700_000_000 * 10**9, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(
    0, 2**64 - 1
)
IDS = st.sampled_from([b"", bytes(8), bytes(16), b"\x01" * 8, b"\x01" * 16]) | st.binary(
    max_size=20
)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
DOUBLES = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = st.one_of(
    TEXT.map(lambda s: AnyValue(string_value=s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    DOUBLES.map(lambda d: AnyValue(double_value=d)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=8).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)


def _nest(depth: int, leaf: AnyValue, as_map: bool) -> AnyValue:
    value = leaf
    for _ in range(depth):
        outer = AnyValue()
        if as_map:
            outer.kvlist_value.values.add(key="k").value.CopyFrom(value)
        else:
            outer.array_value.values.add().CopyFrom(value)
        value = outer
    return value


ANY_VALUES = st.one_of(
    SCALARS,
    st.builds(_nest, st.integers(1, 10), SCALARS, st.booleans()),
    # Around upb's nesting limit (100 messages: two per array level, three per map level)
    # once inside a request; deeper ones cannot even be built here.
    st.builds(_nest, st.integers(44, 48), SCALARS, st.just(False)),
    st.builds(_nest, st.integers(28, 32), SCALARS, st.just(True)),
)
ATTRS = st.lists(st.builds(lambda k, v: KeyValue(key=k, value=v), TEXT, ANY_VALUES), max_size=3)


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(draw(ATTRS))
    for _ in range(draw(st.integers(1, 3))):
        span = rs.scope_spans.add().spans.add(
            trace_id=draw(IDS),
            span_id=draw(IDS),
            parent_span_id=draw(IDS),
            name=draw(TEXT),
            kind=draw(st.integers(-5, 10)),
            start_time_unix_nano=draw(TIMES),
            end_time_unix_nano=draw(TIMES),
            flags=draw(st.integers(0, 2**32 - 1)),
        )
        span.attributes.extend(draw(ATTRS))
        span.status.code = draw(st.integers(-2, 5))  # type: ignore[assignment]
        for _ in range(draw(st.integers(0, 2))):
            event = span.events.add(time_unix_nano=draw(TIMES), name=draw(TEXT))
            event.attributes.extend(draw(ATTRS))
        for _ in range(draw(st.integers(0, 2))):
            span.links.add(trace_id=draw(IDS), span_id=draw(IDS)).attributes.extend(draw(ATTRS))
    return request


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(draw(ATTRS))
    for _ in range(draw(st.integers(1, 3))):
        record = rl.scope_logs.add().log_records.add(
            time_unix_nano=draw(TIMES),
            observed_time_unix_nano=draw(TIMES),
            severity_number=draw(st.integers(-(2**31), 2**31 - 1)),
            severity_text=draw(TEXT),
            trace_id=draw(IDS),
            span_id=draw(IDS),
        )
        record.body.CopyFrom(draw(ANY_VALUES))
        record.attributes.extend(draw(ATTRS))
    return request


COUNTS = st.sampled_from([0, 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)


@st.composite
def metric_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(draw(ATTRS))
    metrics = rm.scope_metrics.add().metrics
    temporality = draw(st.integers(0, 3))
    gauge = metrics.add(name=draw(TEXT), unit=draw(TEXT))
    gauge.gauge.data_points.add(time_unix_nano=draw(TIMES), as_double=draw(DOUBLES))
    total = metrics.add(name="s" + draw(TEXT))
    total.sum.aggregation_temporality = temporality  # type: ignore[assignment]
    total.sum.is_monotonic = draw(st.booleans())
    point = total.sum.data_points.add(time_unix_nano=draw(TIMES))
    point.as_int = draw(st.integers(-(2**63), 2**63 - 1))
    point.attributes.extend(draw(ATTRS))
    hist = metrics.add(name="h")
    hist.histogram.aggregation_temporality = temporality  # type: ignore[assignment]
    bounds = draw(st.lists(DOUBLES, max_size=3))
    hist.histogram.data_points.add(
        time_unix_nano=draw(TIMES),
        count=draw(COUNTS),
        sum=draw(DOUBLES),
        explicit_bounds=bounds,
        bucket_counts=draw(st.lists(COUNTS, min_size=len(bounds) + 1, max_size=len(bounds) + 1)),
    )
    exp = metrics.add(name="e")
    exp.exponential_histogram.aggregation_temporality = temporality  # type: ignore[assignment]
    edp = exp.exponential_histogram.data_points.add(
        time_unix_nano=draw(TIMES),
        scale=draw(st.integers(-30, 30)),
        count=draw(COUNTS),
        zero_count=draw(COUNTS),
        zero_threshold=draw(DOUBLES),
    )
    edp.positive.offset = draw(st.integers(-(2**31), 2**31 - 1))
    edp.positive.bucket_counts.extend(draw(st.lists(COUNTS, max_size=3)))
    summary = metrics.add(name="q")
    sdp = summary.summary.data_points.add(
        time_unix_nano=draw(TIMES), count=draw(COUNTS), sum=draw(DOUBLES)
    )
    sdp.quantile_values.add(quantile=draw(DOUBLES), value=draw(DOUBLES))
    return request


@st.composite
def mutated(draw: st.DrawFn, body: bytes) -> bytes:
    """`body` with a few bytes flipped, dropped or inserted."""
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "drop", "insert"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "drop":
            del data[at]
        else:
            data.insert(at, draw(st.integers(0, 255)))
    return bytes(data)


REQUESTS = {"traces": trace_requests(), "logs": log_requests(), "metrics": metric_requests()}


def _decode_otlp(signal: Signal, body: bytes, as_json: bool) -> Decoded:
    return decode_otlp(signal, body, json=as_json, delta=DeltaToCumulative())


def _check_otlp(stores: Stores, signal: Signal, body: bytes, as_json: bool) -> None:
    decoded = accepted(_decode_otlp, signal, body, as_json)
    if decoded is not None:
        assert decoded.rejected >= 0
        stores.commit(decoded.batch)
    if signal == "traces":  # the ingest workers' path: the same verdict, storable rows
        try:
            prepared, rejected, _ = prepare_traces(body, encode=encode_columns, json=as_json)
        except DecodeError:
            assert decoded is None
        else:
            assert decoded is not None
            assert (prepared.span_count, rejected) == (len(decoded.batch.spans), decoded.rejected)
            for pipeline in stores.pipelines[:1]:  # the direct rows are the DuckDB store's
                pipeline.commit([prepared])
        # A cluster node's worker: split by owner and this node's share prepared, one call.
        routed = route_traces(body, "identity", as_json, ROUTING, 1 << 26, ROUTED_SPANS)
        if decoded is None:
            assert routed.outcome[0] == "refused" and not routed.parts
        else:
            _, share, rejected, _ = routed.outcome
            forwarded = sum(part.items for part in routed.parts.values())
            assert rejected == decoded.rejected
            assert share.span_count + forwarded == len(decoded.batch.spans)


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@given(data=st.data())
@BOUNDED
def test_otlp_protobuf_with_hostile_values(stores: Stores, signal: Signal, data: Any) -> None:
    body = data.draw(REQUESTS[signal]).SerializeToString()
    if data.draw(st.booleans()):
        body = data.draw(mutated(body))
    _check_otlp(stores, signal, body, as_json=False)


def _otlp_json(message: Any) -> bytes:
    """OTLP/JSON: the protobuf JSON mapping with ids as hex (the OTLP rule)."""
    document = json_format.MessageToDict(message)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    import base64

                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@given(data=st.data())
@BOUNDED
def test_otlp_json_with_hostile_values(stores: Stores, signal: Signal, data: Any) -> None:
    body = _otlp_json(data.draw(REQUESTS[signal]))
    if data.draw(st.booleans()):
        body = data.draw(mutated(body))
    _check_otlp(stores, signal, body, as_json=True)


# --- Zipkin, Loki, remote write, Prometheus text, node ----------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


def _hexes(size: int) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdefABCDEF", min_size=1, max_size=size + 2)


@st.composite
def zipkin_spans(draw: st.DrawFn) -> dict[str, Any]:
    def field(valid: st.SearchStrategy[Any]) -> Any:
        return draw(valid | JSON)

    return {
        "traceId": field(_hexes(32)),
        "id": field(_hexes(16)),
        "parentId": field(_hexes(16)),
        "kind": field(st.sampled_from(["CLIENT", "SERVER", "PRODUCER", "CONSUMER"])),
        "name": field(TEXT),
        "timestamp": field(st.integers(0, 2**63)),
        "duration": field(st.integers(0, 2**63)),
        "localEndpoint": field(st.fixed_dictionaries({"serviceName": TEXT, "port": JSON})),
        "remoteEndpoint": field(st.fixed_dictionaries({"serviceName": TEXT, "ipv4": JSON})),
        "tags": field(st.dictionaries(TEXT, JSON_SCALARS, max_size=3)),
        "annotations": field(
            st.lists(
                st.fixed_dictionaries(
                    {"timestamp": st.integers(0, 2**63), "value": TEXT | JSON.map(json.dumps)}
                ),
                max_size=2,
            )
        ),
    }


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


@given(spans=st.lists(zipkin_spans(), max_size=3), mutate=st.booleans(), data=st.data())
@BOUNDED
def test_zipkin_json(stores: Stores, spans: list[Any], mutate: bool, data: Any) -> None:
    body = _dumps(spans)
    if mutate:
        body = data.draw(mutated(body))
    decoded = accepted(decode_zipkin_json, body)
    if decoded is not None:
        stores.commit(decoded.batch)


def test_zipkin_kind_of_a_wrong_type_is_refused() -> None:
    span = {"traceId": "1" * 32, "id": "2" * 16, "kind": []}
    with pytest.raises(DecodeError, match="unknown kind list"):
        decode_zipkin_json(_dumps([span]))


LOKI_STAMPS = st.integers(-(2**64), 2**64).map(str) | JSON


@given(
    streams=st.lists(
        st.fixed_dictionaries(
            {
                "stream": st.dictionaries(TEXT, TEXT | JSON, max_size=3) | JSON,
                "values": st.lists(
                    st.tuples(LOKI_STAMPS, TEXT | JSON).map(list)
                    | st.tuples(LOKI_STAMPS, TEXT, st.dictionaries(TEXT, TEXT | JSON)).map(list)
                    | JSON,
                    max_size=3,
                ),
            }
        ),
        max_size=2,
    ),
    mutate=st.booleans(),
    data=st.data(),
)
@BOUNDED
def test_loki_json(stores: Stores, streams: list[Any], mutate: bool, data: Any) -> None:
    body = _dumps({"streams": streams})
    if mutate:
        body = data.draw(mutated(body))
    decoded = accepted(decode_loki_json, body)
    if decoded is not None:
        stores.commit(decoded.batch)


@pytest.mark.parametrize("where", ["label", "stamp", "metadata"])
def test_deep_loki_json_is_a_400_not_a_recursion_error(where: str) -> None:
    deep = "[" * 1000 + "]" * 1000  # within orjson's limit, past a repr's
    stream = '{"a": ' + deep + "}" if where == "label" else '{"a": "b"}'
    value = {
        "label": '["1", "x"]',
        "stamp": "[" + deep + ', "x"]',
        "metadata": '["1", "x", {"k": ' + deep + "}]",
    }[where]
    body = '{"streams": [{"stream": ' + stream + ', "values": [' + value + "]}]}"
    with pytest.raises(DecodeError, match=r"expected a string|timestamp must be"):
        decode_loki_json(body.encode())


GO_LABEL_VALUES = st.one_of(
    TEXT.map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(['"\\ud800"', '"\\udfff"', '"\\U0010ffff"', '"\\U00110000"', '"\\377"']),
    st.builds(lambda cp: f'"\\u{cp:04x}"', st.integers(0, 0xFFFF)),
    TEXT.map(lambda s: f"`{s}`"),
)


@given(
    labels=st.lists(
        st.tuples(st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True), GO_LABEL_VALUES),
        max_size=3,
    ),
    stamps=st.lists(
        st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1)), max_size=3
    ),
    line=TEXT,
    mutate=st.booleans(),
    data=st.data(),
)
@BOUNDED
def test_loki_protobuf(
    stores: Stores, labels: list[Any], stamps: list[Any], line: str, mutate: bool, data: Any
) -> None:
    request = PushRequest()
    stream = request.streams.add(labels="{" + ", ".join(f"{k}={v}" for k, v in labels) + "}")
    for seconds, nanos in stamps:
        entry = stream.entries.add(line=line.encode("utf-8", "surrogatepass"))
        entry.timestamp.seconds, entry.timestamp.nanos = seconds, nanos
        entry.structuredMetadata.add(name="trace_id", value=line)
    raw = request.SerializeToString()
    if mutate:
        raw = data.draw(mutated(raw))
    decoded = accepted(decode_loki_protobuf, snappy.compress(raw), 1 << 20)
    if decoded is not None:
        stores.commit(decoded.batch)


def test_loki_label_escaping_a_surrogate_is_refused() -> None:
    request = PushRequest()
    request.streams.add(labels='{app="\\ud800"}').entries.add(line=b"x")
    with pytest.raises(DecodeError, match="not a valid Unicode character"):
        decode_loki_protobuf(snappy.compress(request.SerializeToString()), 1 << 20)


@given(
    series=st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from(["__name__", "a", "b"]), TEXT), max_size=3),
            st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), DOUBLES), max_size=3),
        ),
        max_size=3,
    ),
    mutate=st.booleans(),
    data=st.data(),
)
@BOUNDED
def test_remote_write(stores: Stores, series: list[Any], mutate: bool, data: Any) -> None:
    request = WriteRequest()
    for labels, samples in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name, value=value)
        for stamp, value in samples:
            ts.samples.add(timestamp=stamp, value=value)
    raw = request.SerializeToString()
    if mutate:
        raw = data.draw(mutated(raw))
    decoded = accepted(RemoteWriteDecoder().decode, snappy.compress(raw), 1 << 20)
    if decoded is not None:
        stores.commit(decoded.batch)


def test_remote_write_timestamps_past_int64_ns_are_rejected_the_rest_kept() -> None:
    request = WriteRequest()
    ts = request.timeseries.add()
    ts.labels.add(name="__name__", value="up")
    ts.samples.add(timestamp=10**16, value=1.0)
    ts.samples.add(timestamp=1_700_000_000_000, value=2.0)
    decoded = RemoteWriteDecoder().decode(snappy.compress(request.SerializeToString()), 1 << 20)
    assert [p.value for p in decoded.batch.metrics] == [2.0]
    assert decoded.rejected == 1 and "9.2e15 ms" in decoded.error_message


EXPOSITION_LINES = st.one_of(
    st.sampled_from(
        [
            "# TYPE a counter",
            "# TYPE h histogram",
            "# HELP a help",
            "a_total 1",
            'h_bucket{le="1"} 2',
            'h_bucket{le="+Inf"} 3',
            "h_sum 4",
            "h_count 3",
            "a_total NaN",
            "a_total 1 1e30",
            "a_total 1 -1e30",
            "a_total 1 9223372036854775807",
            "# EOF",
        ]
    ),
    st.builds(
        lambda name, value, stamp: f"{name} {value} {stamp}",
        st.from_regex(r"[a-z_]{1,4}", fullmatch=True),
        DOUBLES.map(repr),
        st.integers(-(2**70), 2**70),
    ),
    TEXT,
)


@pytest.mark.parametrize("content_type", ["text/plain", "application/openmetrics-text"])
@given(lines=st.lists(EXPOSITION_LINES, max_size=8))
@BOUNDED
def test_prometheus_text(stores: Stores, content_type: str, lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    try:
        exposition = to_points(parse_families(text, content_type), (("job", "j"),), 10**18)
    except DecodeError:
        return
    stores.commit(Batch(metrics=exposition.points))


NODE_TYPES = st.sampled_from(
    ["init", "record", "trace", "query", "log", "search_logs", "generate", "http_request", "x"]
)


@given(
    bodies=st.lists(
        st.dictionaries(
            st.sampled_from(
                ["message", "service", "trace_id", "span_id", "level", "duration_ms", "status"]
            ),
            JSON | st.sampled_from(["\ud800", "a\udfffb"]),
            max_size=4,
        ),
        max_size=3,
    ),
    types=st.lists(NODE_TYPES, min_size=3, max_size=3),
)
@BOUNDED
def test_node_protocol(bodies: list[dict[str, Any]], types: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    node = Node(Output(out, err))
    lines = [
        json.dumps({"src": "c", "dest": "n", "body": {**body, "type": kind, "msg_id": i}})
        for i, (body, kind) in enumerate(zip(bodies, types, strict=False))
    ]
    for value in read_values([*lines, "{not json", "[1, 2"]):
        if isinstance(value, dict):
            node.receive(value)  # a bad field is an error reply, never an exception
    for reply in out.getvalue().splitlines():
        assert orjson.loads(reply)["body"].get("code") != 13  # no handler crashed


# --- arbitrary bytes, every decoder -----------------------------------------------------

BYTES = st.binary(max_size=400)


BYTE_DECODERS: dict[str, tuple[Callable[..., Decoded], bool]] = {
    "zipkin-json": (decode_zipkin_json, False),
    "loki-json": (decode_loki_json, False),
    "loki-protobuf": (decode_loki_protobuf, True),
    "remote-write": (RemoteWriteDecoder().decode, True),
}
"""Each decoder fed arbitrary bytes, and whether it takes a snappy-framed protobuf (then it
also gets them framed: what a client that compresses garbage sends)."""


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
@given(body=BYTES)
@BOUNDED
def test_otlp_arbitrary_bytes(stores: Stores, signal: Signal, as_json: bool, body: bytes) -> None:
    _check_otlp(stores, signal, body, as_json)


@pytest.mark.parametrize("name", sorted(BYTE_DECODERS))
@given(body=BYTES)
@BOUNDED
def test_arbitrary_bytes(stores: Stores, name: str, body: bytes) -> None:
    decode, snappy_framed = BYTE_DECODERS[name]
    bodies = [body, snappy.compress(body)] if snappy_framed else [body]
    for raw in bodies:
        decoded = accepted(decode, raw, 1 << 20) if snappy_framed else accepted(decode, raw)
        if decoded is not None:
            stores.commit(decoded.batch)


COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": bytes,
}


def _inflated(decode: Any, raw: bytes) -> None:
    """`decode(raw, 256)` gives at most 256 bytes or refuses (REFUSALS), never anything else."""
    try:
        out = decode(raw, 256)
    except REFUSALS:
        return
    assert len(out) <= 256


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(body=BYTES, data=st.data())
@BOUNDED
def test_content_encodings_of_arbitrary_bytes(encoding: str, body: bytes, data: Any) -> None:
    """Arbitrary bytes, and a valid encoding of them with bytes flipped, dropped or added, to
    each Content-Encoding and to the snappy block format (remote write, Loki)."""
    for raw in (body, data.draw(mutated(COMPRESS[encoding](body) or b"x"))):
        _inflated(lambda raw, limit: decompress(raw, encoding, limit), raw)
        _inflated(uncompress_snappy, raw)


@pytest.mark.parametrize("content_type", ["text/plain", "application/openmetrics-text"])
@given(text=st.text(max_size=300))
@BOUNDED
def test_prometheus_text_arbitrary(stores: Stores, content_type: str, text: str) -> None:
    try:
        exposition = to_points(parse_families(text, content_type), (("job", "j"),), 10**18)
    except DecodeError:
        return
    stores.commit(Batch(metrics=exposition.points))


LAST_LINE = json.dumps({"src": "c", "dest": "n", "body": {"type": "generate", "msg_id": "last"}})
TRUNCATED_LINES = ["{", ' [1, {"a": ', LAST_LINE[:-1], LAST_LINE + "\u2028", "{}\x1c"]


@given(lines=st.lists(st.text(max_size=80) | st.sampled_from(TRUNCATED_LINES), max_size=5))
@BOUNDED
def test_node_protocol_arbitrary_lines(lines: list[str]) -> None:
    """No handler crashes, and a complete line after any lines is answered, once and last."""
    out, err = io.StringIO(), io.StringIO()
    node = Node(Output(out, err))
    for value in read_values([*lines, LAST_LINE]):
        if isinstance(value, dict):
            node.receive(value)
    replies = [orjson.loads(reply)["body"] for reply in out.getvalue().splitlines()]
    assert all(reply.get("code") != 13 for reply in replies)
    assert [reply.get("in_reply_to") for reply in replies].count("last") == 1
    assert replies[-1].get("in_reply_to") == "last"
