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
