"""Span columns -> the `spans` and `spans_by_trace` insert columns: pure, so workers run it.

`encode_columns` is the ClickHouse store's column encoder and `encode_spans` its span encoder
(see `meshscope.store.twophase`). They build every column both tables are inserted with, as
plain Python lists in row order (what `clickhouse-driver` inserts), except `seq`: the write
sequence is taken by the owner when it inserts (`Connection.seq`), so it orders writes, not
encodings. Attributes are laid out as `columns.encode_attrs` lays them out (None is "" with
the letter `n`); each row carries its resource's attributes (the tables are denormalised).
Equal lists of a batch are one object (rows of a resource share its lists, rows without
links one empty list, ...): pickle keeps them shared, so the owner unpickles few lists. They
are never changed after encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, compress, pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.codec import AttrColumns, resource_id
from meshscope.store.span_columns import SpanColumns, span_columns

SHARED = (
    "trace_hi", "trace_lo", "start_ns", "span_id", "service", "name", "kind", "status",
    "attr_keys", "attr_values", "attr_types", "res_keys", "res_values", "res_types",
)  # fmt: skip
"""The columns of both tables."""
SEARCH = (*SHARED, "duration_ns")
"""The `spans` table's columns."""
FULL = (
    *SHARED, "end_ns", "parent_id", "status_message", "scope_name", "scope_version",
    "trace_state", "flags", "ev_time", "ev_name", "ev_keys", "ev_values", "ev_types",
    "ln_hi", "ln_lo", "ln_span", "ln_keys", "ln_values", "ln_types",
)  # fmt: skip
"""The `spans_by_trace` table's columns but `seq` (the owner's)."""
COLUMNS = (*FULL, "duration_ns")
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
        """The columns `names` (SEARCH or FULL) by name, for an insert."""
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
    spans would (most rows have no links, many the same attribute keys)."""

    __slots__ = ("_flat", "_nested")

    def __init__(self) -> None:
        self._flat: dict[tuple[Any, ...], list[Any]] = {}  # by content (str or int items)
        self._nested: dict[tuple[int, ...], list[Any]] = {}  # by the ids of shared lists

    def flat(self, rows: list[list[Any]]) -> list[list[Any]]:
        seen = self._flat
        return [seen.setdefault(tuple(row), row) for row in rows]

    def nested(self, rows: list[list[list[Any]]]) -> list[list[list[Any]]]:
        """Rows of lists that `flat` returned (alive in it, so their ids are theirs)."""
        seen = self._nested
        return [seen.setdefault(tuple(map(id, row)), row) for row in rows]


AttrRows = tuple[list[list[str]], list[list[str]], list[str]]
"""Per row: attribute keys, texts ("" for None), type letters."""


def _attr_rows(attrs: AttrColumns, shared: _Shared) -> AttrRows:
    keys = attrs.keys
    texts = [text if text is not None else "" for text in attrs.values]
    bounds = list(pairwise(attrs.offsets))
    return (
        shared.flat([keys[a:b] for a, b in bounds]),
        shared.flat([texts[a:b] for a, b in bounds]),
        attrs.tags,
    )


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
    attr_keys, attr_values, attr_types = _attr_rows(columns.attrs, shared)
    res_keys, res_values, res_types = _resources(columns.resources, rids)
    ev_keys, ev_values, ev_types = _attr_rows(columns.ev_attrs, shared)
    ln_keys, ln_values, ln_types = _attr_rows(columns.ln_attrs, shared)
    ev, ln = columns.ev_offsets, columns.ln_offsets
    flat, nested = shared.flat, shared.nested
    by_name: dict[str, list[Any]] = {
        "trace_hi": trace_hi, "trace_lo": trace_lo, "start_ns": start, "span_id": span_id,
        "service": service, "name": name, "kind": list(map(int, kind)),
        "status": list(map(int, status)),
        "attr_keys": attr_keys, "attr_values": attr_values, "attr_types": attr_types,
        "res_keys": res_keys, "res_values": res_values, "res_types": res_types,
        "end_ns": [s + d for s, d in zip(start, duration, strict=True)],
        "parent_id": parent_id, "status_message": message, "scope_name": scope_name,
        "scope_version": scope_version, "trace_state": trace_state, "flags": flags,
        "ev_time": flat(_per_span(columns.ev_time, ev)),
        "ev_name": flat(_per_span(columns.ev_name, ev)),
        "ev_keys": nested(_per_span(ev_keys, ev)), "ev_values": nested(_per_span(ev_values, ev)),
        "ev_types": flat(_per_span(ev_types, ev)),
        "ln_hi": flat(_per_span(columns.ln_hi, ln)), "ln_lo": flat(_per_span(columns.ln_lo, ln)),
        "ln_span": flat(_per_span(columns.ln_span, ln)),
        "ln_keys": nested(_per_span(ln_keys, ln)), "ln_values": nested(_per_span(ln_values, ln)),
        "ln_types": flat(_per_span(ln_types, ln)),
        "duration_ns": [d if d > 0 else 0 for d in duration],  # as Span.duration_ns
    }  # fmt: skip
    return EncodedClickHouseSpans([by_name[column] for column in COLUMNS])


def encode_spans(spans: Sequence[Span]) -> EncodedClickHouseSpans:
    """The ClickHouse store's span encoder (model spans -> its insert columns)."""
    return encode_columns(span_columns(spans))
