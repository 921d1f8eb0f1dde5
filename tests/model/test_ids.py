"""W3C trace context ids and the traceparent header."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshscope.model.ids import (
    TraceParent,
    is_valid_span_id,
    is_valid_trace_id,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)

TID, SID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def test_new_ids_are_valid_and_distinct() -> None:
    traces = {new_trace_id() for _ in range(1000)}
    spans = {new_span_id() for _ in range(1000)}
    assert len(traces) == len(spans) == 1000
    assert all(is_valid_trace_id(t) for t in traces) and all(is_valid_span_id(s) for s in spans)


def test_parse_the_spec_example() -> None:
    parsed = parse_traceparent(f"00-{TID}-{SID}-01")
    assert parsed == TraceParent(TID, SID, 1, 0)
    assert parsed.sampled and parsed.format() == f"00-{TID}-{SID}-01"
    assert parse_traceparent(f"00-{TID}-{SID}-00") == TraceParent(TID, SID, 0, 0)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        f"00-{TID}-{SID}",
        f"00-{TID.upper()}-{SID}-01",
        f"00-{'0' * 32}-{SID}-01",
        f"00-{TID}-{'0' * 16}-01",
        f"ff-{TID}-{SID}-01",
        f"00-{TID}-{SID}-01-extra",
        f"0-{TID}-{SID}-01",
        f"00-{TID[:-1]}-{SID}-01",
        f"00_{TID}_{SID}_01",
    ],
)
def test_invalid_headers_start_a_new_trace(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_future_versions_may_carry_more_fields() -> None:
    parsed = parse_traceparent(f"01-{TID}-{SID}-03-whatever")
    assert parsed is not None and parsed.version == 1 and parsed.format().startswith("00-")


@given(st.text(max_size=80))
def test_parse_never_raises(text: str) -> None:
    result = parse_traceparent(text)
    assert result is None or (
        is_valid_trace_id(result.trace_id) and is_valid_span_id(result.span_id)
    )


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.integers(0, 255))
def test_format_parse_round_trip(trace: bytes, span: bytes, flags: int) -> None:
    context = TraceParent(trace.hex(), span.hex(), flags)
    if is_valid_trace_id(context.trace_id) and is_valid_span_id(context.span_id):
        assert parse_traceparent(context.format()) == context
