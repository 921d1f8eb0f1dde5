"""Trace context on the wire: read W3C `traceparent`/`tracestate`, B3 single (`b3`) and B3
multi (`X-B3-*`) headers; write the context of a new span back in the same formats.

W3C wins when several are present (it is what the sidecar itself injects). B3 64-bit trace ids
are left-padded to 128 bits, as OpenTelemetry's B3 propagator does. Spec references:
https://www.w3.org/TR/trace-context/ and https://github.com/openzipkin/b3-propagation
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from meshscope.model.ids import (
    FLAG_SAMPLED,
    TRACE_ID_HEX_LEN,
    TraceParent,
    is_valid_span_id,
    is_valid_trace_id,
    parse_traceparent,
)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
B3 = "b3"
B3_TRACE_ID = "x-b3-traceid"
B3_SPAN_ID = "x-b3-spanid"
B3_PARENT_SPAN_ID = "x-b3-parentspanid"
B3_SAMPLED = "x-b3-sampled"
B3_FLAGS = "x-b3-flags"
B3_MULTI = (B3_TRACE_ID, B3_SPAN_ID, B3_PARENT_SPAN_ID, B3_SAMPLED, B3_FLAGS)
# Every header this module reads; the proxy replaces them all with the new span's context.
CONTEXT_HEADERS = (TRACEPARENT, TRACESTATE, B3, *B3_MULTI)


class Format(Enum):
    W3C = "w3c"
    B3_SINGLE = "b3"
    B3_MULTI = "b3multi"


@dataclass(frozen=True, slots=True)
class Parent:
    """The remote parent a request carries: which trace, which span, sampled or not."""

    trace_id: str
    span_id: str
    sampled: bool = True
    trace_state: str = ""
    format: Format = Format.W3C


def _trace_id(raw: str) -> str | None:
    value = raw.strip().lower()
    if len(value) == 16:
        value = value.rjust(TRACE_ID_HEX_LEN, "0")
    return value if is_valid_trace_id(value) else None


def _b3_sampled(value: str | None, default: bool = True) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "d", "true")


def _from_b3_single(header: str) -> Parent | None:
    # {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]; a lone sampling state carries no ids.
    parts = header.strip().split("-")
    if len(parts) < 2:
        return None
    trace_id, span_id = _trace_id(parts[0]), parts[1].lower()
    if trace_id is None or not is_valid_span_id(span_id):
        return None
    sampled = _b3_sampled(parts[2] if len(parts) > 2 else None)
    return Parent(trace_id, span_id, sampled, format=Format.B3_SINGLE)


def _from_b3_multi(headers: Mapping[str, str]) -> Parent | None:
    raw_trace, raw_span = headers.get(B3_TRACE_ID), headers.get(B3_SPAN_ID)
    if raw_trace is None or raw_span is None:
        return None
    trace_id, span_id = _trace_id(raw_trace), raw_span.strip().lower()
    if trace_id is None or not is_valid_span_id(span_id):
        return None
    sampled = headers.get(B3_FLAGS, "").strip() == "1" or _b3_sampled(headers.get(B3_SAMPLED))
    return Parent(trace_id, span_id, sampled, format=Format.B3_MULTI)


def extract(headers: Mapping[str, str]) -> Parent | None:
    """The parent context of a request (headers looked up case-insensitively by the caller's
    mapping, e.g. aiohttp's CIMultiDict); None starts a new trace. Invalid headers are ignored,
    as the W3C spec requires."""
    traceparent = parse_traceparent(headers.get(TRACEPARENT))
    if traceparent is not None:
        return Parent(
            traceparent.trace_id,
            traceparent.span_id,
            traceparent.sampled,
            headers.get(TRACESTATE, ""),
        )
    single = headers.get(B3)
    if single is not None:
        parent = _from_b3_single(single)
        if parent is not None:
            return parent
    return _from_b3_multi(headers)


def inject(
    headers: dict[str, str],
    trace_id: str,
    span_id: str,
    sampled: bool,
    trace_state: str = "",
    also: Format = Format.W3C,
) -> None:
    """Write the context of span `span_id` into `headers` (lowercase keys): always W3C, plus
    the B3 format the request came in with, so B3-only applications keep working."""
    flags = FLAG_SAMPLED if sampled else 0
    headers[TRACEPARENT] = TraceParent(trace_id, span_id, flags).format()
    if trace_state:
        headers[TRACESTATE] = trace_state
    if also is Format.B3_SINGLE:
        headers[B3] = f"{trace_id}-{span_id}-{'1' if sampled else '0'}"
    elif also is Format.B3_MULTI:
        headers[B3_TRACE_ID] = trace_id
        headers[B3_SPAN_ID] = span_id
        headers[B3_SAMPLED] = "1" if sampled else "0"
