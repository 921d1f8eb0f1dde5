"""Every rule of docs/node-protocol.md, one small case each."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshscope.model.spans import SpanKind
from meshscope.node.framing import (
    JSON_WHITESPACE,
    MAX_PENDING_LINES,
    Garbage,
    JsonObject,
    Output,
    read_values,
)
from meshscope.node.main import Node, run
from tests.node.conftest import HEX16, HEX32, envelope, run_node

Json = dict[str, Any]


def bodies(lines: list[str]) -> list[Json]:
    replies, _ = run_node(lines)
    return [r["body"] for r in replies]


def record(msg_id: int, service: str, status: int = 200, source: str | None = None) -> str:
    body: Json = {"type": "record", "msg_id": msg_id, "service": service}
    body.update(duration_ms=12.5, status=status)
    if source is not None:
        body["source_service"] = source
    return envelope("sidecar", "metrics", **body)


# --- record -------------------------------------------------------------------------------


def test_record_counts_per_service() -> None:
    out = bodies([record(1, "api"), record(2, "api", 503), record(3, "db"), record(4, "api")])
    assert [(b["service"], b["request_count"]) for b in out] == [
        ("api", 1),
        ("api", 2),
        ("db", 1),
        ("api", 3),
    ]
    assert all(b["type"] == "metrics_recorded" for b in out)


def test_record_with_source_is_a_call() -> None:
    out = bodies(
        [
            record(1, "database", source="api"),
            record(2, "database", source="api"),
            record(3, "cache", source="api"),
            envelope("c", "n", type="query", msg_id=4, filter={}),
            envelope("c", "n", type="generate", msg_id=5),
        ]
    )
    assert out[3]["logs"] == [
        {"source_service": "api", "target_service": "database", "count": 2},
        {"source_service": "api", "target_service": "cache", "count": 1},
    ]
    assert out[4] == {
        "type": "service_graph",
        "in_reply_to": 5,
        "nodes": ["api", "database", "cache"],
        "edges": [
            {"source": "api", "target": "database", "request_count": 2},
            {"source": "api", "target": "cache", "request_count": 1},
        ],
    }


def test_record_rejects_bad_fields_with_code_12() -> None:
    bad = [
        {"type": "record", "msg_id": 1, "duration_ms": 1, "status": 200},
        {"type": "record", "msg_id": 2, "service": "a", "duration_ms": "fast", "status": 200},
        {"type": "record", "msg_id": 3, "service": "a", "duration_ms": -1, "status": 200},
        {"type": "record", "msg_id": 4, "service": "a", "duration_ms": 1, "status": "200"},
        {"type": "record", "msg_id": 5, "service": "a", "duration_ms": 1, "status": True},
        {"type": "record", "msg_id": 6, "service": "a", "duration_ms": 1, "status": 200,
         "source_service": 7},
        # past int64 nanoseconds: infinity (JSON's 1e999), a huge integer (was code 13)
        {"type": "record", "msg_id": 7, "service": "a", "duration_ms": math.inf, "status": 200},
        {"type": "record", "msg_id": 8, "service": "a", "duration_ms": 2**1100, "status": 200},
        {"type": "record", "msg_id": 9, "service": "a", "duration_ms": 9.3e12, "status": 200},
    ]  # fmt: skip
    # Infinity is not JSON: written as JSON's 1e999, a number past a double.
    lines = [json.dumps({"src": "c", "dest": "n", "body": b}) for b in bad]
    out = bodies([line.replace("Infinity", "1e999") for line in lines])
    assert [(b["type"], b["in_reply_to"], b["code"]) for b in out] == [
        ("error", i, 12) for i in range(1, 10)
    ]
    assert all(isinstance(b["text"], str) and b["text"] for b in out)
    # Nothing was counted by the rejected messages.
    assert bodies([record(9, "a")])[0]["request_count"] == 1


# --- trace --------------------------------------------------------------------------------


def test_trace_returns_fresh_w3c_ids() -> None:
    out = bodies(
        [envelope("svc", "tracer", type="trace", msg_id=i, operation="op") for i in range(50)]
    )
    trace_ids = {b["trace_id"] for b in out}
    span_ids = {b["span_id"] for b in out}
    assert len(trace_ids) == len(span_ids) == 50
    assert all(HEX32.match(t) for t in trace_ids) and all(HEX16.match(s) for s in span_ids)


def test_trace_child_joins_trace_and_makes_a_call_across_services() -> None:
    node = _node()
    first = node_send(node, "web", type="trace", msg_id=1, operation="GET /")
    second = node_send(
        node,
        "api",
        type="trace",
        msg_id=2,
        operation="SELECT",
        service="db",
        trace_id=first["trace_id"],
        parent_span_id=first["span_id"],
    )
    assert second["trace_id"] == first["trace_id"] and second["span_id"] != first["span_id"]
    spans = node.state.pipeline.storage.traces.get_trace(first["trace_id"])
    assert [(s.service, s.parent_span_id) for s in spans] == [
        ("web", ""),
        ("db", first["span_id"]),
    ]
    graph = node_send(node, "c", type="generate", msg_id=3)
    assert graph["nodes"] == ["web", "db"]
    assert graph["edges"] == [{"source": "web", "target": "db", "request_count": 1}]


def test_each_run_starts_empty() -> None:
    first = bodies([record(1, "api"), envelope("a", "b", type="trace", msg_id=2, operation="x")])
    again = bodies([record(1, "api"), envelope("a", "b", type="trace", msg_id=2, operation="x")])
    assert first[0]["request_count"] == again[0]["request_count"] == 1
    assert first[1]["trace_id"] != again[1]["trace_id"]


def test_trace_service_defaults_to_sender() -> None:
    node = _node()
    node_send(node, "checkout", type="trace", msg_id=1, operation="pay")
    assert node.state.pipeline.storage.catalog.services() == ["checkout"]


# --- query --------------------------------------------------------------------------------


def test_query_filters_and_order() -> None:
    calls = [("a", "b"), ("b", "c"), ("a", "c"), ("a", "b"), ("c", "b")]
    lines = [record(i, t, source=s) for i, (s, t) in enumerate(calls)]

    def q(msg_id: int, **flt: str) -> str:
        return envelope("c", "n", type="query", msg_id=msg_id, filter=flt)

    lines += [
        q(10, source_service="a"),
        q(11, target_service="b"),
        q(12, source_service="a", target_service="c"),
        q(13),
        envelope("c", "n", type="query", msg_id=14),
        q(15, source_service="nobody"),
        q(16, source_service="", target_service="c"),
    ]
    out = {b["in_reply_to"]: b["logs"] for b in bodies(lines)[len(calls) :]}

    def entry(s: str, t: str, n: int) -> Json:
        return {"source_service": s, "target_service": t, "count": n}

    everything = [entry("a", "b", 2), entry("b", "c", 1), entry("a", "c", 1), entry("c", "b", 1)]
    assert out[10] == [entry("a", "b", 2), entry("a", "c", 1)]
    assert out[11] == [entry("a", "b", 2), entry("c", "b", 1)]
    assert out[12] == [entry("a", "c", 1)]
    assert out[13] == everything
    assert out[14] == everything
    assert out[15] == []
    assert out[16] == [entry("b", "c", 1), entry("a", "c", 1)]


def test_query_rejects_non_object_filter() -> None:
    out = bodies([envelope("c", "n", type="query", msg_id=1, filter="api")])
    assert (out[0]["type"], out[0]["code"]) == ("error", 12)


# --- generate -----------------------------------------------------------------------------


def test_generate_orders_nodes_by_first_appearance_source_first() -> None:
    out = bodies(
        [
            record(1, "api"),
            record(2, "db", source="worker"),
            envelope("web", "t", type="trace", msg_id=3, operation="GET /"),
            envelope("i", "s", type="instrument_service", msg_id=4, services=["edge", "api"]),
            envelope("c", "n", type="generate", msg_id=5),
        ]
    )
    graph = out[-1]
    assert graph["nodes"] == ["api", "worker", "db", "web", "edge"]
    assert graph["edges"] == [{"source": "worker", "target": "db", "request_count": 1}]


def test_generate_on_empty_node() -> None:
    out = bodies([envelope("c", "n", type="generate", msg_id=1)])
    assert out == [{"type": "service_graph", "in_reply_to": 1, "nodes": [], "edges": []}]


# --- instrument_service + http_request ----------------------------------------------------


def test_http_request_builds_one_span_per_hop_with_parent_links() -> None:
    node = _node()
    assert (
        node_send(node, "i", type="instrument_service", msg_id=1, services=["web", "api", "db"])
        is None
    )
    reply = node_send(node, "user", type="http_request", msg_id=2, path="/api/users/1")
    assert reply["services"] == ["web", "api", "db"] and reply["span_count"] == 3
    assert reply["in_reply_to"] == 2
    spans = node.state.pipeline.storage.traces.get_trace(reply["trace_id"])
    assert [s.service for s in spans] == ["web", "api", "db"]
    assert spans[0].parent_span_id == ""
    assert spans[1].parent_span_id == spans[0].span_id
    assert spans[2].parent_span_id == spans[1].span_id
    assert all(s.kind is SpanKind.SERVER and s.name == "GET /api/users/1" for s in spans)
    # Each child lies inside its parent on the time axis.
    for parent, child in itertools.pairwise(spans):
        assert parent.start_ns <= child.start_ns and child.end_ns <= parent.end_ns
    # Its calls reach the access logs and the graph.
    node_send(node, "user", type="http_request", path="/")
    logs = node_send(node, "c", type="query", msg_id=3, filter={})
    assert logs["logs"] == [
        {"source_service": "web", "target_service": "api", "count": 2},
        {"source_service": "api", "target_service": "db", "count": 2},
    ]
    graph = node_send(node, "c", type="generate", msg_id=4)
    assert graph["nodes"] == ["web", "api", "db"]
    assert [e["request_count"] for e in graph["edges"]] == [2, 2]


def test_http_request_continues_a_valid_traceparent() -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    node = _node()
    node_send(node, "i", type="instrument_service", msg_id=1, services=["web", "api"])
    reply = node_send(
        node,
        "user",
        type="http_request",
        path="/x",
        headers={"traceparent": f"00-{trace_id}-{parent}-01", "tracestate": "vendor=1"},
    )
    assert reply["trace_id"] == trace_id
    assert "in_reply_to" not in reply
    spans = node.state.pipeline.storage.traces.get_trace(trace_id)
    assert spans[0].parent_span_id == parent
    assert spans[0].trace_state == "vendor=1"


def test_http_request_starts_new_trace_on_invalid_traceparent() -> None:
    node = _node()
    for bad in [
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "garbage",
        "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
    ]:
        reply = node_send(node, "user", type="http_request", path="/", headers={"traceparent": bad})
        assert HEX32.match(reply["trace_id"]) and reply["trace_id"] not in bad


def test_http_request_without_instrumentation_uses_dest() -> None:
    out = bodies([envelope("user", "shop", type="http_request", path="/cart")])
    assert out[0]["services"] == ["shop"] and out[0]["span_count"] == 1


def test_instrument_service_replaces_the_chain_and_checks_fields() -> None:
    node = _node()
    node_send(node, "i", type="instrument_service", msg_id=1, services=["a", "b", "c"])
    node_send(node, "i", type="instrument_service", msg_id=2, services=["x", "y"])
    assert node_send(node, "u", type="http_request", path="/")["services"] == ["x", "y"]
    error = node_send(node, "i", type="instrument_service", msg_id=3, services="web")
    assert (error["type"], error["code"]) == ("error", 12)


# --- log + search_logs --------------------------------------------------------------------


def test_logs_are_found_by_trace_in_order() -> None:
    node = _node()
    assert node_send(node, "a", type="log", msg_id=1, message="first", trace_id="abc123") is None
    node_send(node, "a", type="log", message="other", trace_id="zzz", service="api")
    node_send(
        node,
        "a",
        type="log",
        msg_id=3,
        message="second",
        trace_id="abc123",
        service="db",
        level="error",
    )
    found = node_send(node, "a", type="search_logs", msg_id=4, trace_id="abc123")
    assert found == {
        "type": "search_results",
        "in_reply_to": 4,
        "logs": [
            {"service": "service", "message": "first", "trace_id": "abc123"},
            {"service": "db", "message": "second", "trace_id": "abc123"},
        ],
    }
    assert node_send(node, "a", type="search_logs", msg_id=5, trace_id="none")["logs"] == []
    # The protocol's table requires `trace_id` (it was optional, and the log stored).
    for bad in ({}, {"trace_id": 7}):
        error = node_send(node, "a", type="log", msg_id=6, message="m", **bad)
        assert (error["type"], error["code"]) == ("error", 12)


def test_search_logs_of_a_traced_request_excludes_access_logs() -> None:
    node = _node()
    node_send(node, "i", type="instrument_service", msg_id=1, services=["web", "api"])
    trace_id = node_send(node, "u", type="http_request", path="/")["trace_id"]
    node_send(node, "web", type="log", message="handled", trace_id=trace_id, service="web")
    found = node_send(node, "a", type="search_logs", msg_id=2, trace_id=trace_id)
    assert found["logs"] == [{"service": "web", "message": "handled", "trace_id": trace_id}]


# --- manual_instrument --------------------------------------------------------------------


def test_manual_instrument_counts_span_starts_in_js_and_python() -> None:
    snippets = {
        "const s = tracer.startSpan('a'); tracer.startActiveSpan('b', (s) => s.end());": 2,
        "with tracer.start_as_current_span('a'):\n    s = tracer.start_span('b')\n": 2,
        'ctx, span := tracer.Start(ctx, "op")\ndefer span.End()': 1,
        "span.end(); span.recordException(e); log('startSpan')": 0,
        "": 0,
    }
    lines = [
        envelope("dev", "code", type="manual_instrument", msg_id=i, code=code)
        for i, code in enumerate(snippets)
    ]
    out = bodies(lines)
    assert [b["spans_created"] for b in out] == list(snippets.values())


# --- framing and bad input ----------------------------------------------------------------


def test_garbage_is_reported_and_the_node_goes_on() -> None:
    replies, stderr = run_node(
        ["not json", "[1, 2]", '"text"', "{broken", "", "{}", record(1, "api")]
    )
    assert [r["body"]["request_count"] for r in replies] == [1]
    assert stderr.count("meshscope node:") >= 4


def generate(msg_id: int, src: str = "c") -> str:
    return envelope(src, "n", type="generate", msg_id=msg_id)


def values(lines: list[str]) -> list[JsonObject | Garbage]:
    """read_values over `lines` as a file gives them (each ends with a newline)."""
    return list(read_values(line + "\n" for line in lines))


NOT_JSON_WHITESPACE = [
    chr(c) for c in range(0x3001) if chr(c).isspace() and chr(c) not in JSON_WHITESPACE
]
"""Characters str.strip() removes that JSON does not allow around a value (U+000B, U+000C,
U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
U+3000)."""


def test_a_complete_line_after_a_truncated_line_is_answered() -> None:
    replies, stderr = run_node([generate(1), generate(3)[:-1], generate(4)])
    assert [r["body"]["in_reply_to"] for r in replies] == [1, 4]
    assert stderr.count("meshscope node:") == 1
    assert '"msg_id": 3}' in stderr and '"msg_id": 4' not in stderr


@pytest.mark.parametrize("junk", NOT_JSON_WHITESPACE, ids=lambda c: f"U+{ord(c):04X}")
def test_a_value_followed_by_a_character_json_does_not_allow_is_garbage(junk: str) -> None:
    replies, stderr = run_node([generate(5) + junk, generate(6)])
    assert [r["body"]["in_reply_to"] for r in replies] == [6]
    assert stderr.count("meshscope node:") == 1
    assert '"msg_id": 5}' in stderr and '"msg_id": 6' not in stderr


def test_the_audit_repro_answers_every_complete_line() -> None:
    lines = [generate(1), generate(2), generate(3)[:-1], generate(4)]
    replies, stderr = run_node([*lines, generate(5) + "\u2028", generate(6)])
    assert [r["body"]["in_reply_to"] for r in replies] == [1, 2, 4, 6]
    assert stderr.count("meshscope node:") == 2


def test_pending_text_and_the_next_line_in_every_combination() -> None:
    pretty = json.dumps(json.loads(generate(1)), indent=2).splitlines()
    assert values(pretty) == [json.loads(generate(1))]  # joined until complete
    assert values([pretty[0], "", *pretty[1:]]) == [json.loads(generate(1))]  # blank: kept
    truncated = generate(3)[:-1]
    garbage = Garbage(truncated, "incomplete JSON value")
    # The next line cannot continue the pending text: it is read as if nothing were pending.
    assert values([truncated, generate(4)]) == [garbage, json.loads(generate(4))]
    assert values([truncated, *pretty]) == [garbage, json.loads(generate(1))]
    assert values([truncated, "nope", generate(4)]) == [
        garbage,
        Garbage("nope", "not JSON"),
        json.loads(generate(4)),
    ]
    assert values([truncated, truncated, generate(4)]) == [
        garbage,
        garbage,
        json.loads(generate(4)),
    ]
    assert values([truncated, truncated]) == [
        garbage,
        Garbage(truncated, "incomplete JSON value at end of input"),
    ]
    # A line that is an object on its own ends the pending text even when it could continue it.
    assert values(['{"a":', '{"b": 1}']) == [Garbage('{"a":', "incomplete JSON value"), {"b": 1}]


def test_pending_text_stays_bounded() -> None:
    out = values(["[", *["1,"] * MAX_PENDING_LINES, generate(4)])
    assert out[0] == Garbage(("[\n" + "1,\n" * MAX_PENDING_LINES)[:200], "JSON value too long")
    assert out[-1] == json.loads(generate(4))


def test_wide_pending_lines_stay_cheap() -> None:
    """Each line of a pending value re-parses it: 1,000 lines of 5,000 characters parsed
    2.5 GB (5.5 s before the next reply); the parse budget ends the value long before."""
    wide = '"' + "x" * 5_000 + '",'
    out = values(["[", *[wide] * 1_000, generate(4)])
    assert isinstance(out[0], Garbage) and out[0].reason == "JSON value too long"
    assert out[-1] == json.loads(generate(4))
    # The budget (32 MiB) ends the value after ~110 lines; each line after it is garbage alone.
    assert sum(isinstance(v, Garbage) and v.reason == "not JSON" for v in out) > 800


def raw(body: str) -> str:
    """An envelope around a body written as JSON text."""
    return '{"src":"c","dest":"n","body":' + body + "}"


def test_numbers_python_cannot_hold_never_end_the_node() -> None:
    """An integer past 4,300 digits raised ValueError and ended the node; 1e400 was echoed as
    `Infinity` (not JSON). Both are valid JSON: a msg_id is echoed as written, a number
    field is code 12."""
    huge = "9" * 4_400
    lines = [
        raw('{"type":"generate","msg_id":' + huge + "}"),
        raw('{"type":"generate","msg_id":1e400}'),
        raw('{"type":"record","msg_id":3,"service":"a","duration_ms":' + huge + ',"status":2}'),
        generate(4),
        raw('{"type":"record","msg_id":5,"service":1e400,"duration_ms":1,"status":200}'),
    ]
    stdout, stderr = io.StringIO(), io.StringIO()
    run(io.StringIO("".join(line + "\n" for line in lines)), stdout, stderr)
    out = stdout.getvalue().splitlines()
    assert f'"in_reply_to": {huge},' in out[0] and '"in_reply_to": 1e400,' in out[1]
    replies = [json.loads(line, parse_int=str) for line in out]  # every line is JSON
    assert replies[2]["body"]["code"] == "12" and replies[3]["body"]["in_reply_to"] == "4"
    assert replies[4]["body"]["code"] == "12"  # a number is no service name, however long


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(literal: str) -> None:
    line = raw('{"type":"generate","msg_id":' + literal + "}")
    replies, stderr = run_node([line, generate(2)])
    assert [r["body"]["in_reply_to"] for r in replies] == [2]
    assert "not JSON" in stderr


def test_bytes_that_are_not_utf8_never_end_the_node_whatever_the_locale() -> None:
    """A strict UTF-8 locale's stdin raised UnicodeDecodeError (the node died); the CLI reads
    such bytes as surrogates, reported as not JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "node"],
        input=b"\xff\xfe\n" + generate(2).encode() + b"\n",
        capture_output=True,
        timeout=30,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
        check=True,
    )
    assert json.loads(proc.stdout)["body"]["in_reply_to"] == 2
    assert b"not JSON" in proc.stderr


def test_only_json_whitespace_makes_a_blank_line() -> None:
    assert values([" \t\r", generate(1)]) == [json.loads(generate(1))]
    assert values(["\u2028", generate(1)]) == [
        Garbage("\u2028", "not JSON"),
        json.loads(generate(1)),
    ]


@st.composite
def junk_lines(draw: st.DrawFn) -> list[str]:
    """Lines before a complete one: any text, a truncated envelope, the first lines of a
    pretty-printed one, or an envelope followed by a character JSON does not allow."""
    text = generate(draw(st.integers(0, 99)), src="junk")
    pretty = json.dumps(json.loads(text), indent=2).splitlines()
    return draw(
        st.one_of(
            st.lists(st.text(st.characters(blacklist_characters="\n"), max_size=30), max_size=2),
            st.integers(1, len(text) - 1).map(lambda n: [text[:n]]),
            st.integers(1, len(pretty) - 1).map(lambda n: pretty[:n]),
            st.sampled_from(NOT_JSON_WHITESPACE).map(lambda c: [text + c]),
        )
    )


@given(data=st.data(), count=st.integers(1, 6))
def test_every_complete_line_is_read_once_whatever_comes_before_it(
    data: st.DataObject, count: int
) -> None:
    lines: list[str] = []
    for msg_id in range(count):
        lines += data.draw(junk_lines())
        lines.append(generate(msg_id, src="valid"))
    read = [v for v in values(lines) if isinstance(v, dict) and v.get("src") == "valid"]
    assert read == [json.loads(generate(msg_id, src="valid")) for msg_id in range(count)]


def test_unknown_type_gets_code_10_only_with_msg_id() -> None:
    replies, stderr = run_node(
        [
            envelope("c", "n", type="teleport", msg_id=7),
            envelope("c", "n", type="teleport"),
            envelope("c", "n", msg_id=8),
        ]
    )
    assert [r["body"] for r in replies] == [
        {"type": "error", "in_reply_to": 7, "code": 10, "text": "unknown message type 'teleport'"},
        {"type": "error", "in_reply_to": 8, "code": 10, "text": "unknown message type None"},
    ]
    assert "teleport" in stderr


def test_bare_body_is_addressed_like_the_last_envelope() -> None:
    replies, _ = run_node(
        [
            record(1, "api"),
            json.dumps(
                {"type": "record", "msg_id": 2, "service": "api", "duration_ms": 1, "status": 200}
            ),
        ]
    )
    assert [(r["src"], r["dest"]) for r in replies] == [("metrics", "sidecar")] * 2
    assert replies[1]["body"]["request_count"] == 2


def test_extra_envelope_keys_are_ignored_and_init_is_answered() -> None:
    replies, _ = run_node(
        [
            json.dumps({"src": "c0", "dest": "n1", "id": 5, "body": {"type": "init", "msg_id": 1,
                        "node_id": "n1", "node_ids": ["n1"]}}),
            json.dumps({"src": "c0", "dest": "n1", "extra": True,
                        "body": {"type": "generate", "msg_id": 2}}),
        ]
    )  # fmt: skip
    assert replies[0] == {"src": "n1", "dest": "c0", "body": {"type": "init_ok", "in_reply_to": 1}}
    assert replies[1]["body"]["type"] == "service_graph"


def test_replies_carry_no_extra_keys() -> None:
    out = bodies([record(1, "api"), envelope("s", "t", type="trace", msg_id=2, operation="x")])
    assert list(out[0]) == ["type", "in_reply_to", "service", "request_count"]
    assert list(out[1]) == ["type", "in_reply_to", "trace_id", "span_id"]


# --- helpers ------------------------------------------------------------------------------


class _TestNode(Node):
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        super().__init__(Output(self.stdout, io.StringIO()))


def _node() -> _TestNode:
    return _TestNode()


def node_send(node: _TestNode, src: str, **body: Any) -> Any:
    """Send one message; return the reply body, or None when the node did not answer."""
    before = len(node.stdout.getvalue())
    node.receive({"src": src, "dest": "node", "body": body})
    text = node.stdout.getvalue()[before:].strip()
    return json.loads(text)["body"] if text else None
