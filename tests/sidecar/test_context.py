"""Trace-context headers: W3C, B3 single and multi, and what is written back."""

from __future__ import annotations

from multidict import CIMultiDict

from meshscope.sidecar.context import Format, Parent, extract, inject

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_w3c_wins_over_b3_and_keeps_tracestate() -> None:
    headers = CIMultiDict(
        {
            "TraceParent": f"00-{TRACE}-{SPAN}-00",
            "tracestate": "a=1",
            "b3": f"{'1' * 32}-{'2' * 16}",
        }
    )
    assert extract(headers) == Parent(TRACE, SPAN, sampled=False, trace_state="a=1")


def test_invalid_headers_are_ignored() -> None:
    for bad in (
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": "garbage"},
        {"b3": "0"},
        {"b3": f"{TRACE}-{'0' * 16}-1"},
        {"X-B3-TraceId": TRACE},
        {"X-B3-TraceId": "xyz", "X-B3-SpanId": SPAN},
    ):
        assert extract(CIMultiDict(bad)) is None, bad


def test_b3_sampling_states() -> None:
    assert extract(CIMultiDict({"b3": f"{TRACE}-{SPAN}-d"})) == Parent(
        TRACE, SPAN, True, format=Format.B3_SINGLE
    )
    assert extract(CIMultiDict({"b3": f"{TRACE}-{SPAN}-0-{'3' * 16}"})) == Parent(
        TRACE, SPAN, False, format=Format.B3_SINGLE
    )
    multi = {"X-B3-TraceId": TRACE, "X-B3-SpanId": SPAN, "X-B3-Sampled": "0", "X-B3-Flags": "1"}
    assert extract(CIMultiDict(multi)) == Parent(TRACE, SPAN, True, format=Format.B3_MULTI)


def test_inject_writes_w3c_and_the_incoming_b3_format() -> None:
    headers: dict[str, str] = {}
    inject(headers, TRACE, SPAN, False, "k=v", Format.B3_MULTI)
    assert headers == {
        "traceparent": f"00-{TRACE}-{SPAN}-00",
        "tracestate": "k=v",
        "x-b3-traceid": TRACE,
        "x-b3-spanid": SPAN,
        "x-b3-sampled": "0",
    }
