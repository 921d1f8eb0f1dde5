"""OTLP traces straight to a `Prepared` for a store: no model spans on the way.

An ingest worker's hot path. `prepare(decode_otlp(...).batch, encode_spans)` walks
the parsed request into `Span` objects and then walks those three more times (the store's
rows, pairing records, span durations); this walks the request once and fills all of
them at the same time, with the same validation as `otlp_traces` and the same builders
(backend-neutral `SpanColumns`, `side_fields`, `DurationsBuilder`), so the result
is equal to the model path's (tests/ingest/test_otlp_direct.py checks it, request by request).
The store's own `column_encoder` (given by the caller) turns the columns into its rows.

The request is parsed with `otlp_lazy.LazyTraceRequest`, where attributes stay encoded: each
distinct encoded pair is decoded once (with the real `KeyValue` class, so an invalid pair
still makes the request invalid) into its key, value, stored text and type letter, and
found again by its bytes (bounded cache, scalars only). A pair parsed alone starts at depth 1,
so its nesting is measured and refused past the depth the generated classes refuse inside a
whole request (the same bytes get the same verdict on every path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from meshscope.ingest.checks import ZERO_SPAN, span_fields_problem
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import (
    Rejections,
    any_value,
    parse_json,
    parse_protobuf,
    resource_info,
)
from meshscope.ingest.otlp_lazy import LazyTraceRequest
from meshscope.model.attributes import AttrValue
from meshscope.model.batch import Batch
from meshscope.pipeline.derive.servicegraph import side_fields
from meshscope.pipeline.derive.spanmetrics import DurationsBuilder, counted_kind
from meshscope.pipeline.prepared import Prepared
from meshscope.pipeline.sampling.facts import SpanMatcher, Summarizer
from meshscope.store.codec import AttrColumns, resource_id, text_and_tag
from meshscope.store.span_columns import ColumnEncoder, SpanColumns

_WHAT = "ExportTraceServiceRequest"
_MASK64 = (1 << 64) - 1
_ERROR = 2  # StatusCode.ERROR

Pair = tuple[str, AttrValue, str | None, str]
"""A decoded attribute: key, value, its `attr_values` text and its `attr_types` letter."""

_PAIRS: dict[bytes, Pair] = {}
_PAIRS_MAX = 65_536
_PAIR_MAX_BYTES = 256


# upb refuses a request nested past this many messages (measured: a span's KeyValue sits
# under 4 messages, an event's or link's under 5).
_MAX_DEPTH = 101
SPAN_BASE, ITEM_BASE = 4, 5


def _messages(value: AttrValue) -> int:
    """How many messages deep the AnyValue holding `value` is, itself included."""
    if isinstance(value, list):
        return 2 + max(map(_messages, value), default=0)
    if isinstance(value, dict):
        return 2 + (1 + max(map(_messages, value.values())) if value else 0)
    return 1


def _pair(raw: bytes, base: int) -> Pair:
    """Decode one encoded `KeyValue` found under `base` messages (remembered when it is a
    small scalar)."""
    try:
        kv = KeyValue.FromString(raw)
    except (ProtobufDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"invalid protobuf {_WHAT}: {exc}") from None
    value = kv.value
    which = value.WhichOneof("value")
    if which == "array_value" or which == "kvlist_value":
        built = any_value(value)  # rebuilt every time: lists and maps are mutable
        if base + 1 + _messages(built) > _MAX_DEPTH:
            raise DecodeError(f"invalid protobuf {_WHAT}: an attribute is nested too deeply")
        return (kv.key, built, *text_and_tag(built))
    scalar: AttrValue = None if which is None else getattr(value, which)
    pair = (kv.key, scalar, *text_and_tag(scalar))
    if len(raw) <= _PAIR_MAX_BYTES:
        if len(_PAIRS) >= _PAIRS_MAX:
            _PAIRS.clear()
        _PAIRS[raw] = pair
    return pair


class _PairRows:
    """Rows of decoded pairs being collected: flat, each row's end in `offsets` and its
    type letters in `tags`; `columns()` is the `AttrColumns` (the keys and texts made in one
    comprehension each for the whole batch, not one per row)."""

    __slots__ = ("offsets", "pairs", "tags")

    def __init__(self) -> None:
        self.pairs: list[Pair] = []
        self.offsets: list[int] = [0]
        self.tags: list[str] = []

    def columns(self) -> AttrColumns:
        out = AttrColumns()
        pairs = self.pairs
        out.keys = [pair[0] for pair in pairs]
        out.values = [pair[2] for pair in pairs]
        out.tags, out.offsets = self.tags, self.offsets
        return out


def _attributes(
    raws: Iterable[bytes], rows: _PairRows, base: int = SPAN_BASE
) -> dict[str, AttrValue]:
    """Decode encoded pairs into a dict (a later duplicate key wins, as in `attributes`)
    and append the row `AttrColumns.add(that dict)` would to `rows`."""
    known = _PAIRS
    pairs = [known.get(raw) or _pair(raw, base) for raw in raws]
    out = {pair[0]: pair[1] for pair in pairs}
    if len(out) != len(pairs):  # repeated keys: the dict's order and values
        pairs = [(key, value, *text_and_tag(value)) for key, value in out.items()]
    flat = rows.pairs
    flat += pairs
    rows.tags.append("".join([pair[3] for pair in pairs]))
    rows.offsets.append(len(flat))
    return out


def _check_pairs(span: Any) -> None:
    """Decode a rejected span's pairs too: an invalid one makes the request invalid, as
    when the generated classes parse the whole request."""
    scratch = _PairRows()
    _attributes(span.attributes, scratch)
    for item in [*span.events, *span.links]:
        _attributes(item.attributes, scratch, ITEM_BASE)


def prepare_traces(
    body: bytes,
    *,
    encode: ColumnEncoder,
    json: bool = False,
    matcher: SpanMatcher | None = None,
) -> tuple[Prepared, int, str]:
    """Parse an `ExportTraceServiceRequest` (protobuf or OTLP/JSON) into a Prepared whose
    spans are encoded by the store's `encode` (and summarised for tail sampling when a
    `matcher` is given); with the rejected span count and why.
    Raises DecodeError if the body is not such a request."""
    if json:  # JSON is parsed by the generated classes, then read like a protobuf body
        body = parse_json(ExportTraceServiceRequest(), body, _WHAT).SerializeToString()
    request = parse_protobuf(LazyTraceRequest(), body, _WHAT)
    return prepare_resource_spans(request.resource_spans, encode, matcher)


Divert = Callable[[int, Any, Any, Any], bool]
"""Takes a valid span that is not this node's (a cluster's routing), given its trace id as an
integer, the span, its resource and its scope: True when it took it, and then the walk leaves
it out."""
RouteSide = Callable[[int, tuple[Any, ...]], bool]
"""Takes the pairing record of a span whose trace is another node's (a cluster over a shared
store, where this node stores the span), given its trace id as an integer: True when it took
it, and then the record is left out of this node's `sides`."""


def prepare_resource_spans(
    resource_spans: Sequence[Any],
    encode: ColumnEncoder,
    matcher: SpanMatcher | None = None,
    divert: Divert | None = None,
    route_side: RouteSide | None = None,
) -> tuple[Prepared, int, str]:
    """Walk `LazyTraceRequest.resource_spans` (attributes still encoded). `divert` is
    offered every span that passed the checks (rejected spans stay here), with its trace id
    as an integer and its resource and scope; `route_side` the pairing record of every span
    kept."""
    summary = Summarizer(matcher) if matcher is not None else None
    out = SpanColumns()
    span_columns, ev_columns, ln_columns = _PairRows(), _PairRows(), _PairRows()
    rows = out.rows
    ev_offsets, ev_time, ev_name = out.ev_offsets, out.ev_time, out.ev_name
    ln_offsets, ln_hi, ln_lo, ln_span = out.ln_offsets, out.ln_hi, out.ln_lo, out.ln_span
    sides: list[tuple[Any, ...]] = []
    durations = DurationsBuilder()
    add_duration = durations.add
    operations: dict[tuple[str, str, int], None] = {}
    rejections = Rejections()
    for rs in resource_spans:
        service, resource = resource_info(rs.resource)
        rid: int | None = None  # computed when the resource's first span is kept
        for ss in rs.scope_spans:
            scope = ss.scope
            scope_name, scope_version = scope.name, scope.version
            for span in ss.spans:
                # Each field read once (a protobuf read makes a new object every time).
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                events, links = span.events, span.links
                problem = span_fields_problem(  # the same checks as `otlp_traces`
                    trace_id, span_id, parent, start, end, events, links
                )
                if problem is not None:
                    rejections.add(problem)
                    _check_pairs(span)
                    continue
                trace = int.from_bytes(trace_id, "big")
                if divert is not None and divert(trace, span, rs, ss):
                    continue
                if rid is None:
                    rid = resource_id(resource)
                    if rid:
                        out.resources.append(resource)
                root = not parent or parent == ZERO_SPAN
                kind: int = span.kind
                if not 0 <= kind < 6:
                    kind = 0
                status = span.status
                code: int = status.code
                if not 0 <= code < 3:
                    code = 0
                name = span.name
                attrs = _attributes(span.attributes, span_columns)
                rows.append(
                    (
                        start,
                        end - start,
                        trace >> 64,
                        trace & _MASK64,
                        int.from_bytes(span_id, "big"),
                        0 if root else int.from_bytes(parent, "big"),
                        service,
                        name,
                        kind,
                        code,
                        status.message,
                        rid,
                        scope_name,
                        scope_version,
                        span.trace_state,
                        span.flags,
                    )
                )
                if events:
                    for event in events:
                        ev_time.append(event.time_unix_nano)
                        ev_name.append(event.name)
                        _attributes(event.attributes, ev_columns, ITEM_BASE)
                ev_offsets.append(len(ev_time))
                if links:
                    for link in links:
                        linked = int.from_bytes(link.trace_id, "big")
                        ln_hi.append(linked >> 64)
                        ln_lo.append(linked & _MASK64)
                        ln_span.append(int.from_bytes(link.span_id, "big"))
                        _attributes(link.attributes, ln_columns, ITEM_BASE)
                ln_offsets.append(len(ln_hi))
                duration = end - start if end > start else 0
                trace_hex = trace_id.hex()
                if summary is not None:
                    summary.add(trace_hex, start, end, code, attrs, resource)
                side = side_fields(
                    trace_hex,
                    span_id.hex(),
                    "" if root else parent.hex(),
                    service,
                    kind,
                    start,
                    duration,
                    code == _ERROR,
                    attrs,
                )
                if route_side is None or not route_side(trace, side):
                    sides.append(side)
                # As `span_durations` keys a span.
                trace_state = span.trace_state
                if trace_state:
                    counted = counted_kind(kind, "" if root else parent.hex(), trace_state)
                    key = (service, counted, name, code)
                else:
                    key = (service, kind, name, code)
                add_duration(key, duration)
                operations[service, name, kind] = None
    out.attrs, out.ev_attrs = span_columns.columns(), ev_columns.columns()
    out.ln_attrs = ln_columns.columns()
    prepared = Prepared(
        span_count=len(rows),
        encoded_spans=encode(out) if rows else None,
        sides=sides,
        span_metrics=durations.build() if rows else None,
        operations=list(operations),
        traces=summary.summary() if summary is not None and rows else None,
    )
    decoded = rejections.result(Batch(), "spans")
    return prepared, decoded.rejected, decoded.error_message
