"""Span columns -> the `spans` and `trace_spans` insert columns: pure, so workers run it.

`encode_columns` is the ClickHouse store's column encoder and `encode_spans` its span encoder
(see `meshscope.store.twophase`). They build every column both tables are inserted with, as
plain Python lists in row order (what `clickhouse-driver` inserts). The search table's
attributes are laid out as `columns.encode_attrs` lays them out (None is "" with the letter
`n`); each row carries its resource's attributes (the tables are denormalised).
`trace_spans` gets the span as one msgpack payload (`span_payload`), packed here. Equal
lists of a batch are one object (rows of a resource share its lists, ...): pickle keeps them
shared, so the owner unpickles few lists. They are never changed after encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, compress, pairwise, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.clickhouse.span_payload import FORMAT, packer
from meshscope.store.codec import AttrColumns, resource_id
from meshscope.store.span_columns import SpanColumns, span_columns

SEARCH = (
    "trace_hi", "trace_lo", "start_ns", "span_id", "service", "name", "kind", "status",
    "attr_keys", "attr_values", "attr_types", "res_keys", "res_values", "res_types",
    "duration_ns",
)  # fmt: skip
"""The `spans` table's columns."""
BY_TRACE = ("trace_hi", "trace_lo", "start_ns", "span")
"""The `trace_spans` table's columns."""
COLUMNS = (*SEARCH, "span")
"""Every encoded column, in the order `EncodedClickHouseSpans.columns` holds them."""

_INDEX = {name: index for index, name in enumerate(COLUMNS)}


class EncodedClickHouseSpans:
    """The insert columns of a batch of spans (`COLUMNS`, each a list in row order)."""

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[list[Any]]) -> None:
        self.columns = tuple(columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    def table(self, names: Sequence[str]) -> dict[str, list[Any]]:
        """The columns `names` (SEARCH or BY_TRACE) by name, for an insert."""
        return {name: self.columns[_INDEX[name]] for name in names}

    def select(self, mask: npt.NDArray[np.bool_]) -> EncodedClickHouseSpans:
        """The rows where `mask` is true, in their order (tail sampling)."""
        keep = mask.tolist()
        if len(keep) != len(self):
            raise ValueError(f"a mask of {len(keep)} rows for {len(self)} rows")
        return EncodedClickHouseSpans([list(compress(column, keep)) for column in self.columns])

    def __reduce__(self) -> tuple[Any, ...]:
        return (EncodedClickHouseSpans, (self.columns,))


def concat(encoded: Sequence[EncodedClickHouseSpans]) -> EncodedClickHouseSpans:
    """One batch of the rows of `encoded`, in order (one insert per table for all of them)."""
    if len(encoded) == 1:
        return encoded[0]
    return EncodedClickHouseSpans(
        [
            list(chain.from_iterable(parts))
            for parts in zip(*(e.columns for e in encoded), strict=True)
        ]
    )


class _Shared:
    """Equal lists of one batch as one object. Pickle then sends each once and the owner
    builds each once: unpickling a list per row and column costs the owner as much as model
    spans would (many rows have the same attribute keys)."""

    __slots__ = ("_flat",)

    def __init__(self) -> None:
        self._flat: dict[tuple[Any, ...], list[Any]] = {}  # by content (str or int items)

    def flat(self, rows: list[list[Any]]) -> list[list[Any]]:
        seen = self._flat
        return [seen.setdefault(tuple(row), row) for row in rows]


AttrRows = tuple[list[list[str]], list[list[str]], list[str]]
"""Per row: attribute keys, texts ("" for None), type letters."""


def _attr_rows(attrs: AttrColumns, shared: _Shared | None = None) -> AttrRows:
    """With `shared`, equal lists are one object (for rows pickled to the owner; event and
    link rows are packed into payloads here and need not be)."""
    keys = attrs.keys
    texts = [text if text is not None else "" for text in attrs.values]
    bounds = list(pairwise(attrs.offsets))
    key_rows, text_rows = [keys[a:b] for a, b in bounds], [texts[a:b] for a, b in bounds]
    if shared is None:
        return key_rows, text_rows, attrs.tags
    return shared.flat(key_rows), shared.flat(text_rows), attrs.tags


def _per_span(items: list[Any], offsets: list[int]) -> list[list[Any]]:
    """Flat per-event (or per-link) values grouped into one list per span."""
    return [items[a:b] for a, b in pairwise(offsets)]


def _resources(
    resources: Sequence[Mapping[str, AttrValue]], ids: list[int]
) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """Each row's resource attributes; rows of one resource share its lists."""
    by_id: dict[int, tuple[list[str], list[str], str]] = {0: ([], [], "")}
    for resource in resources:
        by_id.setdefault(resource_id(resource), encode_attrs(resource))
    rows = [by_id[rid] for rid in ids]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def encode_columns(columns: SpanColumns) -> EncodedClickHouseSpans:
    """Both tables' insert columns from backend-neutral columns (the ClickHouse store's
    `column_encoder`: runs in ingest workers)."""
    if not columns.rows:
        return EncodedClickHouseSpans([[] for _ in COLUMNS])
    (start, duration, trace_hi, trace_lo, span_id, parent_id, service, name, kind, status,
     message, rids, scope_name, scope_version, trace_state, flags,
     ) = map(list, zip(*columns.rows, strict=True))  # fmt: skip
    shared = _Shared()
    kinds, statuses = list(map(int, kind)), list(map(int, status))
    attr_keys, attr_values, attr_types = _attr_rows(columns.attrs, shared)
    res_keys, res_values, res_types = _resources(columns.resources, rids)
    ev_keys, ev_values, ev_types = _attr_rows(columns.ev_attrs)
    ln_keys, ln_values, ln_types = _attr_rows(columns.ln_attrs)
    ev = columns.ev_offsets
    ev_start = [s for s, (a, b) in zip(start, pairwise(ev), strict=True) for _ in range(b - a)]
    ev_time = [t - s for t, s in zip(columns.ev_time, ev_start, strict=True)]
    # Tuples, packed as msgpack arrays as lists are.
    events = _per_span(list(zip(columns.ev_name, ev_keys, ev_values, ev_types, strict=True)), ev)
    links = _per_span(
        list(zip(columns.ln_hi, columns.ln_lo, columns.ln_span, ln_keys, ln_values, ln_types,
                 strict=True)),
        columns.ln_offsets,
    )  # fmt: skip
    pack = packer()
    payloads = [
        pack(row)
        for row in zip(
            repeat(FORMAT), service, name, kinds, res_keys, res_values, res_types, scope_name,
            scope_version, attr_keys, attr_types, events, trace_state, flags, links, statuses,
            message, attr_values, duration, _per_span(ev_time, ev), span_id, parent_id,
        )
    ]  # fmt: skip
    by_name: dict[str, list[Any]] = {
        "trace_hi": trace_hi, "trace_lo": trace_lo, "start_ns": start, "span_id": span_id,
        "service": service, "name": name, "kind": kinds, "status": statuses,
        "attr_keys": attr_keys, "attr_values": attr_values, "attr_types": attr_types,
        "res_keys": res_keys, "res_values": res_values, "res_types": res_types,
        "duration_ns": [d if d > 0 else 0 for d in duration],  # as Span.duration_ns
        "span": payloads,
    }  # fmt: skip
    return EncodedClickHouseSpans([by_name[column] for column in COLUMNS])


def encode_spans(spans: Sequence[Span]) -> EncodedClickHouseSpans:
    """The ClickHouse store's span encoder (model spans -> its insert columns)."""
    return encode_columns(span_columns(spans))
