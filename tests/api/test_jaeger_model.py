"""Traces written one at a time (`trace_fragment`) are the JSON of `trace_json`, whatever the
values, and an answer of several keeps their order."""

from __future__ import annotations

import json

import orjson

from meshscope.api.jaeger_model import trace_fragment, trace_json, traces_fragments
from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode

TRACE = "0af7651916cd43dd8448eb211c80319c"


def _span(n: int, **extra: object) -> Span:
    fields: dict[str, object] = {
        "trace_id": TRACE,
        "span_id": f"{n + 1:016x}",
        "name": f"op {n}",
        "service": "cart" if n % 2 else "frontend",
        "start_ns": 1_700_000_000_000_000_000 + n * 1000,
        "end_ns": 1_700_000_000_000_500_000 + n * 1000,
        "parent_span_id": f"{n:016x}" if n else "",
        "kind": SpanKind.SERVER,
        "status_code": StatusCode.ERROR if n == 2 else StatusCode.UNSET,
        "attributes": {"http.route": "/cart", "n": n, "ok": True, "ratio": 0.5, "b": b"\x01"},
        "events": (SpanEvent(1_700_000_000_000_100_000, "retry", {"attempt": 2}),),
        "links": (SpanLink("1" * 32, "2" * 16, {}),),
        "resource": {"service.name": "cart", "k8s.pod.name": f"pod-{n % 2}"},
        "scope_name": "otel",
    }
    fields.update(extra)
    return Span(**fields)  # type: ignore[arg-type]


def _decoded(fragment: orjson.Fragment) -> object:
    return orjson.loads(orjson.dumps([fragment]))[0]


def test_a_fragment_is_the_json_of_trace_json() -> None:
    spans = [_span(n) for n in range(5)]
    assert _decoded(trace_fragment(spans)) == json.loads(json.dumps(trace_json(spans)))


def test_integers_beyond_64_bits_fall_back_to_json() -> None:
    spans = [_span(0, attributes={"huge": 1 << 70, "list": [1, "a"]})]
    assert _decoded(trace_fragment(spans)) == json.loads(json.dumps(trace_json(spans)))


def test_fragments_keep_the_order_and_empty_what_they_were_given() -> None:
    traces = [[_span(n, trace_id=f"{n + 1:032x}")] for n in range(4)]
    expected = [json.loads(json.dumps(trace_json(spans))) for spans in traces]
    given = list(traces)
    out = traces_fragments(given)
    assert given == []
    assert orjson.loads(orjson.dumps({"data": out}))["data"] == expected


def _tags(span: dict[str, object]) -> dict[str, object]:
    tags = span["tags"]
    assert isinstance(tags, list)
    return {tag["key"]: tag["value"] for tag in tags}


def test_internal_kind_and_trace_state_are_tags_as_the_collector_translator_makes_them() -> None:
    internal = _span(0, kind=SpanKind.INTERNAL, trace_state="rojo=00f067aa0ba902b7")
    unspecified = _span(1, kind=SpanKind.UNSPECIFIED)
    first, second = trace_json([internal, unspecified])["spans"]
    assert _tags(first)["span.kind"] == "internal"
    assert _tags(first)["w3c.tracestate"] == "rojo=00f067aa0ba902b7"
    assert "span.kind" not in _tags(second) and "w3c.tracestate" not in _tags(second)


def test_list_and_map_tags_are_compact_json_and_an_empty_value_is_empty() -> None:
    span = _span(0, attributes={"as": ["x", "y", ""], "kv": {"a": [1, "é"]}, "empty": None})
    tags = _tags(trace_json([span])["spans"][0])
    assert tags["as"] == '["x","y",""]'
    assert tags["kv"] == '{"a":[1,"é"]}'
    assert tags["empty"] == ""


def test_a_child_of_link_is_a_child_of_reference_and_an_event_attribute_named_event_wins() -> None:
    links = (
        SpanLink("1" * 32, "2" * 16, {"opentracing.ref_type": "child_of"}),
        SpanLink("3" * 32, "4" * 16, {"opentracing.ref_type": "follows_from"}),
    )
    events = (
        SpanEvent(1_700_000_000_000_100_000, "named", {"event": "from the attribute"}),
        SpanEvent(1_700_000_000_000_200_000, "retry", {"attempt": 2}),
    )
    span = trace_json([_span(1, links=links, events=events)])["spans"][0]
    kinds = [ref["refType"] for ref in span["references"]]
    assert kinds == ["CHILD_OF", "CHILD_OF", "FOLLOWS_FROM"]
    assert [ref["spanID"] for ref in span["references"]] == [f"{1:016x}", "2" * 16, "4" * 16]
    first, second = span["logs"]
    assert first["fields"] == [{"key": "event", "type": "string", "value": "from the attribute"}]
    assert [field["key"] for field in second["fields"]] == ["event", "attempt"]


def test_a_server_span_sharing_its_id_with_a_client_span_gets_a_new_one() -> None:
    """Zipkin's shared spans, as Jaeger's DedupeClientServerSpanIDs adjuster shows them: the
    SERVER side gets the next unused id above the trace's largest, the CLIENT side as its
    parent; the spans under the shared id go under the server side."""
    root = _span(0, kind=SpanKind.SERVER, span_id="00000000000000a0", parent_span_id="")
    client = _span(1, kind=SpanKind.CLIENT, span_id="00000000000000b0",
                   parent_span_id="00000000000000a0")  # fmt: skip
    server = _span(2, kind=SpanKind.SERVER, span_id="00000000000000b0",
                   parent_span_id="00000000000000a0")  # fmt: skip
    child = _span(3, kind=SpanKind.INTERNAL, span_id="00000000000000b1",
                  parent_span_id="00000000000000b0")  # fmt: skip
    out = trace_json([root, client, server, child])["spans"]
    ids = [span["spanID"] for span in out]
    parents = [[r["spanID"] for r in span["references"] if r["refType"] == "CHILD_OF"]
               for span in out]  # fmt: skip
    assert ids == ["00000000000000a0", "00000000000000b0", "00000000000000b2", "00000000000000b1"]
    assert parents[1:] == [["00000000000000a0"], ["00000000000000b0"], ["00000000000000b2"]]
    assert len(set(ids)) == 4
    # Spans that share no id with a client keep theirs.
    plain = trace_json([root, client])["spans"]
    assert [span["spanID"] for span in plain] == ["00000000000000a0", "00000000000000b0"]
