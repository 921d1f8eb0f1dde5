"""Span columns -> the `spans` table's Arrow rows: pure, so ingest workers can run it.

`encode_columns` is the DuckDB store's column encoder and `encode_spans` its span encoder (see
`meshscope.store.twophase`): they build the rows exactly as the table lays them out, resource
ids included, and list the distinct resources so the owner can insert unseen ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.duckdb.packed import pack_columns, pack_events, pack_links
from meshscope.store.span_columns import SPAN_COLUMNS, SpanColumns, span_columns


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


_TYPES = (
    pa.int64(), pa.int64(), pa.uint64(), pa.uint64(), pa.uint64(), pa.uint64(), pa.string(),
    pa.string(), pa.uint8(), pa.uint8(), pa.string(), pa.uint64(), pa.string(), pa.string(),
    pa.string(), pa.uint32(),
)  # fmt: skip
"""The Arrow types of SPAN_COLUMNS, in order."""


def encode_columns(columns: SpanColumns) -> EncodedSpans:
    """The `spans` table's Arrow rows from backend-neutral columns (the DuckDB store's
    `column_encoder`: runs in ingest workers)."""
    rows = columns.rows
    attrs, attr_types = pack_columns(columns.attrs)
    starts = [row[0] for row in rows]  # SPAN_COLUMNS[0] is start_ns
    events, event_offset, event_times = pack_events(
        columns.ev_offsets, columns.ev_time, columns.ev_name, columns.ev_attrs, starts
    )
    plain = dict(
        zip(
            SPAN_COLUMNS,
            [
                pa.array(values, kind)
                for values, kind in zip(zip(*rows, strict=True), _TYPES, strict=True)
            ]
            if rows
            else [pa.array([], kind) for kind in _TYPES],
            strict=True,
        )
    )
    table = pa.table(
        {
            **{name: plain[name] for name in SPAN_COLUMNS[:11]},
            "attrs": attrs,
            "attr_types": attr_types,
            "events": events,
            "event_offset": event_offset,
            "event_times": event_times,
            "links": pack_links(
                columns.ln_offsets, columns.ln_hi, columns.ln_lo, columns.ln_span, columns.ln_attrs
            ),
            **{name: plain[name] for name in SPAN_COLUMNS[11:]},
        }
    )
    return EncodedSpans(table, columns.resources)


def encode_spans(spans: Sequence[Span]) -> EncodedSpans:
    """The DuckDB store's span encoder (model spans -> its Arrow rows)."""
    return encode_columns(span_columns(spans))
