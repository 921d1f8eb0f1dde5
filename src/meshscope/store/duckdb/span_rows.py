"""Spans -> the `spans` table's Arrow rows: pure, so ingest workers can run it.

`encode_spans` is the DuckDB store's span encoder (see `meshscope.store.twophase`): it builds
the rows exactly as the table lays them out, resource ids included (a resource id is a hash
of its content), and lists the distinct resources so the owner can insert unseen ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

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

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as one Arrow IPC stream: read back without per-array Python work.
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return (_from_ipc, (sink.getvalue().to_pybytes(), self.resources))


def _from_ipc(data: bytes, resources: list[Mapping[str, AttrValue]]) -> EncodedSpans:
    return EncodedSpans(pa.ipc.open_stream(data).read_all(), resources)


def encode_spans(spans: Sequence[Span]) -> EncodedSpans:
    ids = [id128(s.trace_id) for s in spans]
    attrs = AttrColumns()
    attrs.extend([s.attributes for s in spans])
    events = [event for s in spans for event in s.events]
    ev_offsets = list(accumulate([len(s.events) for s in spans], initial=0))
    ev_attrs = AttrColumns()
    ev_attrs.extend([event.attributes for event in events])
    ev_time = [event.time_ns for event in events]
    ev_name = [event.name for event in events]
    ln_offsets, ln_hi, ln_lo, ln_span, ln_attrs = [0], [], [], [], AttrColumns()
    resource_ids: list[int] = []
    by_object: dict[int, int] = {}  # id(resource dict) -> resource id; dicts live for this call
    resources: list[Mapping[str, AttrValue]] = []
    for span in spans:
        links = span.links
        if links:
            for link in links:
                high, low = id128(link.trace_id)
                ln_hi.append(high)
                ln_lo.append(low)
                ln_span.append(id64(link.span_id))
                ln_attrs.add(link.attributes)
        ln_offsets.append(len(ln_hi))
        resource = span.resource
        rid = by_object.get(id(resource))
        if rid is None:
            rid = by_object[id(resource)] = _resource_id(resource)
            if rid:
                resources.append(resource)
        resource_ids.append(rid)
    events_array = pa.StructArray.from_arrays(
        [pa.array(ev_time, pa.int64()), pa.array(ev_name, pa.string()), *ev_attrs.arrays()],
        fields=list(_EVENT),
    )
    links_array = pa.StructArray.from_arrays(
        [
            pa.array(ln_hi, pa.uint64()),
            pa.array(ln_lo, pa.uint64()),
            pa.array(ln_span, pa.uint64()),
            *ln_attrs.arrays(),
        ],
        fields=list(_LINK),
    )
    table = pa.table(
        {
            "start_ns": pa.array([s.start_ns for s in spans], pa.int64()),
            "duration_ns": pa.array([s.end_ns - s.start_ns for s in spans], pa.int64()),
            "trace_hi": pa.array([high for high, _ in ids], pa.uint64()),
            "trace_lo": pa.array([low for _, low in ids], pa.uint64()),
            "span_id": pa.array([id64(s.span_id) for s in spans], pa.uint64()),
            "parent_id": pa.array([id64(s.parent_span_id) for s in spans], pa.uint64()),
            "service": pa.array([s.service for s in spans], pa.string()),
            "name": pa.array([s.name for s in spans], pa.string()),
            "kind": pa.array([s.kind for s in spans], pa.uint8()),
            "status_code": pa.array([s.status_code for s in spans], pa.uint8()),
            "status_message": pa.array([s.status_message for s in spans], pa.string()),
            **attrs.columns(),
            "events": pa.ListArray.from_arrays(pa.array(ev_offsets, _OFFSETS), events_array),
            "links": pa.ListArray.from_arrays(pa.array(ln_offsets, _OFFSETS), links_array),
            "resource_id": pa.array(resource_ids, pa.uint64()),
            "scope_name": pa.array([s.scope_name for s in spans], pa.string()),
            "scope_version": pa.array([s.scope_version for s in spans], pa.string()),
            "trace_state": pa.array([s.trace_state for s in spans], pa.string()),
            "flags": pa.array([s.flags for s in spans], pa.uint32()),
        }
    )
    return EncodedSpans(table, resources)
