"""A span as one msgpack payload: the `trace_spans` table's `span` column (ADR 0022).

`trace_spans` keeps the trace id, the start and the write sequence as columns (its sort key
and what reads filter on) and everything else of a span in one String of bytes, as Jaeger's
ClickHouse plugin keeps its `model` column. One column instead of 30 (15 of them arrays) is
~18 files per part on 18.16 instead of ~110, and a trace is read with one block per part
instead of one per column and part.

The payload is a msgpack array whose first item is its format, `FORMAT` (2):
`[2, service, name, kind, res_keys, res_texts, res_types, scope_name, scope_version,
attr_keys, attr_types, events, trace_state, flags, links, status, status_message, attr_texts,
end_ns - start_ns, event_times, span_id, parent_id]`: what spans of one operation share
first and what each span has of its own last, so the compressor covers the shared part with
one match (format 1, the same fields in `Span`'s order, took 40.3 B/span compressed, format
2 37.7: ADR 0022 revision 2). Ids are unsigned integers, attributes as `columns.encode_attrs`
lays them out (texts, "" for None, and one type letter each), an event `[name, keys, texts,
types]` with its time in `event_times` as `time_ns - start_ns` (a small number, not a second
random-looking time), a link `[trace_hi, trace_lo, span_id, keys, texts, types]`. Format 1
(what earlier versions wrote): `[1, span_id, parent_id, end_ns - start_ns, service, name, kind,
status, status_message, attr_keys, attr_texts, attr_types, res_keys, res_texts, res_types,
scope_name, scope_version, trace_state, flags, events, links]`, an event `[time_ns -
start_ns, name, keys, texts, types]`; still read. A reader refuses a format it does not know
(ValueError), so a later format is a new number, never a silent misreading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode
from meshscope.store.codec import decode_attrs, hex64, hex128

FORMAT = 2
"""The format written; `unpack` reads it and format 1."""


def packer() -> Callable[[Sequence[Any]], bytes]:
    """A function that packs one payload's items, a list or tuple (an encoding's own: a
    Packer keeps a buffer)."""
    pack: Callable[[Sequence[Any]], bytes] = msgpack.Packer(use_bin_type=True).pack
    return pack


def unpack(trace_hi: int, trace_lo: int, start_ns: int, payload: bytes) -> Span:
    """The span a `trace_spans` row holds; ValueError naming the problem for a payload that
    is not one (another format, damaged bytes), never another exception."""
    try:
        items = msgpack.unpackb(payload, use_list=True, raw=False)
    except (ValueError, msgpack.UnpackException) as error:
        raise ValueError(f"trace_spans payload cannot be read: {error}") from None
    if (
        not isinstance(items, list)
        or not items
        or type(items[0]) is not int
        or (items[0] not in _READERS)
    ):
        found = items[0] if isinstance(items, list) and items else type(items).__name__
        raise ValueError(f"trace_spans payload of format {found!r}, not 1 or {FORMAT}")
    try:
        return _READERS[items[0]](trace_hi, trace_lo, start_ns, items)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as error:
        raise ValueError(f"trace_spans payload of format {items[0]} is damaged: {error}") from None


def span_of(trace_hi: int, trace_lo: int, start_ns: int, items: Sequence[Any]) -> Span:
    """The span of format-2 items (format 1 and the older column-per-field rows are read
    by laying them out so)."""
    (_, service, name, kind, rk, rv, rt, scope, scope_version, ak, at, events, state, flags,
     links, status, message, av, duration, event_times, span_id, parent) = items  # fmt: skip
    return Span(
        trace_id=hex128(trace_hi, trace_lo),
        span_id=hex64(span_id),
        name=name,
        service=service,
        start_ns=start_ns,
        end_ns=start_ns + duration,
        parent_span_id=hex64(parent),
        kind=SpanKind(kind),
        status_code=StatusCode(status),
        status_message=message,
        attributes=decode_attrs(ak, av, at),
        events=tuple(
            SpanEvent(start_ns + t, n, decode_attrs(k, v, ty))
            for t, (n, k, v, ty) in zip(event_times, events, strict=True)
        ),
        links=tuple(
            SpanLink(hex128(hi, lo), hex64(s), decode_attrs(k, v, ty))
            for hi, lo, s, k, v, ty in links
        ),
        resource=decode_attrs(rk, rv, rt),
        scope_name=scope,
        scope_version=scope_version,
        trace_state=state,
        flags=flags,
    )


def _span_of_format_1(trace_hi: int, trace_lo: int, start_ns: int, items: Sequence[Any]) -> Span:
    """The span of a format-1 payload's items, laid out as format 2's."""
    (_, span_id, parent, duration, service, name, kind, status, message,
     ak, av, at, rk, rv, rt, scope, scope_version, state, flags, events, links) = items  # fmt: skip
    return span_of(
        trace_hi, trace_lo, start_ns,
        (2, service, name, kind, rk, rv, rt, scope, scope_version, ak, at,
         [event[1:] for event in events], state, flags, links, status, message, av, duration,
         [event[0] for event in events], span_id, parent),
    )  # fmt: skip


_READERS: dict[Any, Callable[[int, int, int, Sequence[Any]], Span]] = {
    1: _span_of_format_1,
    FORMAT: span_of,
}
