"""What every decoder checks before an item may go to the store: one place per value kind.

The store holds times as int64 nanoseconds, ids as unsigned 64-bit halves, histogram counts
as uint64 and text as UTF-8. A value that does not fit would only fail inside the store's
group commit, taking other clients' requests with it, so each decoder refuses the item
where it decodes it (OTLP: partial success naming the reason; the other protocols: a 400)
with the functions here:
- times: OTLP's unsigned nanoseconds must be below 2^63 (year 2262); signed ones (remote
  write, converted from ms) must fit int64;
- OTLP span ids: the trace id 16 bytes and the span id 8, neither all zero, the parent empty
  or 8 bytes; link ids 16 and 8 bytes; event times as span times;
- text: valid UTF-8, i.e. no lone surrogates (JSON and Go escapes can spell them);
- histogram counts below 2^64 (delta-to-cumulative sums can grow past a single point's).

The functions take both the generated OTLP classes and `otlp_lazy`'s (same field names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshscope.model.metrics import Histogram

MAX_TIME_NS = 2**63 - 1
MIN_TIME_NS = -(2**63)
MAX_COUNT = 2**64 - 1
ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)

BAD_IDS = "trace_id must be 16 bytes and span_id 8 bytes, not all zero"
BAD_PARENT = "parent_span_id must be empty or 8 bytes"
BAD_SPAN_TIME = "start and end times must be below 2^63 ns (year 2262)"
BAD_EVENT_TIME = "event times must be below 2^63 ns (year 2262)"
BAD_LINK = "link trace_id must be 16 bytes and span_id 8 bytes"
BAD_LOG_TIME = "time_unix_nano (or observed_time_unix_nano) must be below 2^63 ns (year 2262)"
BAD_POINT_TIME = "data point time_unix_nano must be below 2^63 ns (year 2262)"
BAD_COUNT = "histogram counts must be below 2^64"


def time_fits(time_ns: int) -> bool:
    """Whether a signed nanosecond time fits the store's int64 columns."""
    return MIN_TIME_NS <= time_ns <= MAX_TIME_NS


def span_problem(span: Any) -> str | None:
    """Why an OTLP span cannot be stored (a rejection reason), or None when it can."""
    return span_fields_problem(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
        span.events,
        span.links,
    )


def span_fields_problem(
    trace_id: bytes,
    span_id: bytes,
    parent: bytes,
    start_ns: int,
    end_ns: int,
    events: Sequence[Any],
    links: Sequence[Any],
) -> str | None:
    """`span_problem` from a span's fields already read (a walker that reads each field of
    a span once: reading a protobuf field makes a new object every time)."""
    if len(trace_id) != 16 or len(span_id) != 8 or trace_id == ZERO_TRACE or span_id == ZERO_SPAN:
        return BAD_IDS
    if parent and len(parent) != 8:
        return BAD_PARENT
    if start_ns > MAX_TIME_NS or end_ns > MAX_TIME_NS:
        return BAD_SPAN_TIME
    if events:
        for event in events:
            if event.time_unix_nano > MAX_TIME_NS:
                return BAD_EVENT_TIME
    if links:
        for link in links:
            if len(link.trace_id) != 16 or len(link.span_id) != 8:
                return BAD_LINK
    return None


def histogram_fits(histogram: Histogram) -> bool:
    """Whether a histogram's counts fit the store's uint64 columns."""
    counts = histogram.counts
    return histogram.count <= MAX_COUNT and (not counts or max(counts) <= MAX_COUNT)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored (it is not valid UTF-8: a lone surrogate), or None."""
    if text.isascii():
        return None
    try:
        text.encode()
    except UnicodeEncodeError as error:
        return f"invalid UTF-8 text: lone surrogate {text[error.start]!r} at {error.start}"
    return None
