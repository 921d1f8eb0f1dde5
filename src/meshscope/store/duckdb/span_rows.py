"""Spans -> the `spans` table's Arrow rows: pure, so ingest workers can run it.

`encode_spans` is the DuckDB store's span encoder (see `meshscope.store.twophase`): it builds
the rows exactly as the table lays them out, resource ids included (a resource id is a hash
of its content), and lists the distinct resources so the owner can insert unseen ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.duckdb.codec import ATTR_FIELDS, AttrColumns, id64, id128
from meshscope.store.duckdb.resources import _resource_id

_EVENT = pa.struct([("time_ns", pa.int64()), ("name", pa.string()), *ATTR_FIELDS])
_LINK = pa.struct(
    [("trace_hi", pa.uint64()), ("trace_lo", pa.uint64()), ("span_id", pa.uint64()), *ATTR_FIELDS]
)
_OFFSETS = pa.int32()
INDEX_TRACES = (
    "INSERT INTO trace_index SELECT trace_hi, trace_lo, min(start_ns), max(start_ns)"
    " FROM {src} GROUP BY trace_hi, trace_lo"
)
"""Run over the same Arrow rows as the `spans` insert: one index row per trace and write."""


class EncodedSpans(NamedTuple):
    table: pa.Table
    resources: list[Mapping[str, AttrValue]]  # distinct, in order of first use

    def select(self, mask: npt.NDArray[np.bool_]) -> EncodedSpans:
        """The rows where `mask` is true (resources kept whole: the owner skips known ones)."""
        return EncodedSpans(self.table.filter(pa.array(mask)), self.resources)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as one Arrow IPC stream: read back without per-array Python work.
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return (_from_ipc, (sink.getvalue().to_pybytes(), self.resources))


def _from_ipc(data: bytes, resources: list[Mapping[str, AttrValue]]) -> EncodedSpans:
    return EncodedSpans(pa.ipc.open_stream(data).read_all(), resources)


SPAN_COLUMNS = (
    "start_ns", "duration_ns", "trace_hi", "trace_lo", "span_id", "parent_id", "service",
    "name", "kind", "status_code", "status_message", "resource_id", "scope_name",
    "scope_version", "trace_state", "flags",
)  # fmt: skip
"""The plain columns of a span row, in the order `SpanRows.rows` tuples hold them."""

_TYPES = (
    pa.int64(), pa.int64(), pa.uint64(), pa.uint64(), pa.uint64(), pa.uint64(), pa.string(),
    pa.string(), pa.uint8(), pa.uint8(), pa.string(), pa.uint64(), pa.string(), pa.string(),
    pa.string(), pa.uint32(),
)  # fmt: skip


class SpanRows:
    """The `spans` rows being collected: the one place their Arrow table is built, whether
    from model spans (`encode_spans`) or straight from OTLP (`ingest.otlp_direct`).

    `rows` holds one tuple per span (SPAN_COLUMNS order), `attributes` its attribute dict;
    events and links are flat lists with per-span offsets; `resources` the distinct
    resources (attribute dicts) named by `resource_id`, in order of first use."""

    __slots__ = (
        "attributes", "ev_attributes", "ev_name", "ev_offsets", "ev_time", "ln_attributes",
        "ln_hi", "ln_lo", "ln_offsets", "ln_span", "resources", "rows",
    )  # fmt: skip

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.attributes: list[Mapping[str, AttrValue]] = []
        self.ev_offsets: list[int] = [0]
        self.ev_time: list[int] = []
        self.ev_name: list[str] = []
        self.ev_attributes: list[Mapping[str, AttrValue]] = []
        self.ln_offsets: list[int] = [0]
        self.ln_hi: list[int] = []
        self.ln_lo: list[int] = []
        self.ln_span: list[int] = []
        self.ln_attributes: list[Mapping[str, AttrValue]] = []
        self.resources: list[Mapping[str, AttrValue]] = []

    def encoded(
        self,
        attrs: AttrColumns | None = None,
        ev_attrs: AttrColumns | None = None,
        ln_attrs: AttrColumns | None = None,
    ) -> EncodedSpans:
        """The rows as an Arrow table. The attribute columns of spans, events and links are
        built from `attributes`, `ev_attributes` and `ln_attributes`, unless given ready."""
        if attrs is None:
            attrs = AttrColumns()
            attrs.extend(self.attributes)
        if ev_attrs is None:
            ev_attrs = AttrColumns()
            ev_attrs.extend(self.ev_attributes)
        if ln_attrs is None:
            ln_attrs = AttrColumns()
            ln_attrs.extend(self.ln_attributes)
        events = pa.StructArray.from_arrays(
            [
                pa.array(self.ev_time, pa.int64()),
                pa.array(self.ev_name, pa.string()),
                *ev_attrs.arrays(),
            ],
            fields=list(_EVENT),
        )
        links = pa.StructArray.from_arrays(
            [
                pa.array(self.ln_hi, pa.uint64()),
                pa.array(self.ln_lo, pa.uint64()),
                pa.array(self.ln_span, pa.uint64()),
                *ln_attrs.arrays(),
            ],
            fields=list(_LINK),
        )
        columns = dict(
            zip(
                SPAN_COLUMNS,
                [
                    pa.array(values, kind)
                    for values, kind in zip(zip(*self.rows, strict=True), _TYPES, strict=True)
                ]
                if self.rows
                else [pa.array([], kind) for kind in _TYPES],
                strict=True,
            )
        )
        table = pa.table(
            {
                **{name: columns[name] for name in SPAN_COLUMNS[:11]},
                **attrs.columns(),
                "events": pa.ListArray.from_arrays(pa.array(self.ev_offsets, _OFFSETS), events),
                "links": pa.ListArray.from_arrays(pa.array(self.ln_offsets, _OFFSETS), links),
                **{name: columns[name] for name in SPAN_COLUMNS[11:]},
            }
        )
        return EncodedSpans(table, self.resources)


def encode_spans(spans: Sequence[Span]) -> EncodedSpans:
    out = SpanRows()
    by_object: dict[int, int] = {}  # id(resource dict) -> resource id; dicts live for this call
    resource_ids: list[int] = []
    for span in spans:
        resource = span.resource
        rid = by_object.get(id(resource))
        if rid is None:
            rid = by_object[id(resource)] = _resource_id(resource)
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
                out.ln_attributes.append(link.attributes)
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
    out.attributes = [s.attributes for s in spans]
    events = [event for s in spans for event in s.events]
    out.ev_offsets = list(accumulate([len(s.events) for s in spans], initial=0))
    out.ev_time = [event.time_ns for event in events]
    out.ev_name = [event.name for event in events]
    out.ev_attributes = [event.attributes for event in events]
    return out.encoded()
