"""Spans as plain columns: the backend-neutral batch that ingest workers build.

`SpanColumns` holds one tuple of plain values per span (`SPAN_COLUMNS`: ids as integers,
times, names, codes, the resource's id), the attributes of spans, events and links as
`AttrColumns` (keys, query texts, type tags), events and links as flat lists with per-span
offsets, and the distinct resources. It is filled straight from OTLP by `ingest.otlp_direct`
or from model spans by `span_columns`, and a backend with two-phase writes turns it into its
own rows with its `column_encoder` (`store.twophase`), in the worker process: the DuckDB
store builds its Arrow table, another backend whatever it inserts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.codec import AttrColumns, id64, id128, resource_id

SPAN_COLUMNS = (
    "start_ns", "duration_ns", "trace_hi", "trace_lo", "span_id", "parent_id", "service",
    "name", "kind", "status_code", "status_message", "resource_id", "scope_name",
    "scope_version", "trace_state", "flags",
)  # fmt: skip
"""The plain columns of a span, in the order `SpanColumns.rows` tuples hold them."""

ColumnEncoder = Callable[["SpanColumns"], Any]
"""A backend's encoding of SpanColumns into its rows: pure and picklable by reference (a
module-level function), so it runs in worker processes."""


class SpanColumns:
    """The columns of a batch of spans being collected (see the module docstring)."""

    __slots__ = (
        "attrs", "ev_attrs", "ev_name", "ev_offsets", "ev_time", "ln_attrs", "ln_hi", "ln_lo",
        "ln_offsets", "ln_span", "resources", "rows",
    )  # fmt: skip

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.attrs = AttrColumns()
        self.ev_offsets: list[int] = [0]
        self.ev_time: list[int] = []
        self.ev_name: list[str] = []
        self.ev_attrs = AttrColumns()
        self.ln_offsets: list[int] = [0]
        self.ln_hi: list[int] = []
        self.ln_lo: list[int] = []
        self.ln_span: list[int] = []
        self.ln_attrs = AttrColumns()
        self.resources: list[Mapping[str, AttrValue]] = []  # distinct, in order of first use

    def __len__(self) -> int:
        return len(self.rows)


def span_columns(spans: Sequence[Span]) -> SpanColumns:
    """The columns of model spans, in their order."""
    out = SpanColumns()
    by_object: dict[int, int] = {}  # id(resource dict) -> resource id; dicts live for this call
    resource_ids: list[int] = []
    link_attributes: list[Mapping[str, AttrValue]] = []
    for span in spans:
        resource = span.resource
        rid = by_object.get(id(resource))
        if rid is None:
            rid = by_object[id(resource)] = resource_id(resource)
            if rid:
                out.resources.append(resource)
        resource_ids.append(rid)
        links = span.links
        if links:
            for link in links:
                high, low = id128(link.trace_id)
                out.ln_hi.append(high)
                out.ln_lo.append(low)
                out.ln_span.append(id64(link.span_id))
                link_attributes.append(link.attributes)
        out.ln_offsets.append(len(out.ln_hi))
    out.rows = [
        (
            s.start_ns,
            s.end_ns - s.start_ns,
            *id128(s.trace_id),
            id64(s.span_id),
            id64(s.parent_span_id),
            s.service,
            s.name,
            s.kind,
            s.status_code,
            s.status_message,
            rid,
            s.scope_name,
            s.scope_version,
            s.trace_state,
            s.flags,
        )
        for s, rid in zip(spans, resource_ids, strict=True)
    ]
    out.attrs.extend([s.attributes for s in spans])
    out.ln_attrs.extend(link_attributes)
    events = [event for s in spans for event in s.events]
    out.ev_offsets = list(accumulate([len(s.events) for s in spans], initial=0))
    out.ev_time = [event.time_ns for event in events]
    out.ev_name = [event.name for event in events]
    out.ev_attrs.extend([event.attributes for event in events])
    return out
