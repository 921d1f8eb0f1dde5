"""Span columns -> the `spans` and `trace_spans` insert columns: pure, so workers run it.

`encode_columns` is the ClickHouse store's column encoder and `encode_spans` its span encoder
(see `meshscope.store.twophase`). They build every column both tables are inserted with as a
Native-format column (`native.py`, ADR 0025): ids and times as NumPy arrays, services,
operations, attribute keys and type letters and resources' keys and values as their distinct
values with an index per row or item, attribute values and payloads as lists (the driver's
string writer writes them). The search table's attributes
are laid out as `columns.encode_attrs` lays them out (None is "" with the letter `n`). A
search row names its resource by fingerprint (`resource`, `codec.resource_id`), and the batch
carries each distinct resource once (`Resources`), which the store writes to `resources` once
a day (ADR 0026). `trace_spans` gets the whole span, its resource included, as one msgpack
payload (`span_payload`), packed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.clickhouse import native
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.clickhouse.native import Lists, Numbers, Strings, Words, offsets_of
from meshscope.store.clickhouse.span_payload import FORMAT, packer
from meshscope.store.codec import AttrColumns, resource_id
from meshscope.store.span_columns import SpanColumns, span_columns

SEARCH = (
    "trace_hi", "trace_lo", "start_ns", "span_id", "service", "name", "kind", "status",
    "attr_keys", "attr_values", "attr_types", "resource", "duration_ns",
)  # fmt: skip
"""The `spans` table's columns."""
BY_TRACE = ("trace_hi", "trace_lo", "start_ns", "span")
"""The `trace_spans` table's columns."""
COLUMNS = (*SEARCH, "span")
"""Every encoded column, in the order `EncodedClickHouseSpans.columns` holds them."""

_INDEX = {name: index for index, name in enumerate(COLUMNS)}


RESOURCE_COLUMNS = ("fingerprint", "res_keys", "res_values", "res_types")
"""The `resources` table's columns a batch carries (the store adds `time_ns`)."""


class Resources:
    """The distinct resources of a batch of spans: a row each, `RESOURCE_COLUMNS` (a batch
    joined from several may hold one twice)."""

    __slots__ = ("columns",)

    def __init__(self, columns: Sequence[native.Column]) -> None:
        self.columns = tuple(columns)

    def __len__(self) -> int:
        return len(self.columns[0])

    @property
    def fingerprints(self) -> list[int]:
        return self.columns[0].values()

    def take(self, rows: npt.NDArray[np.int64]) -> dict[str, native.Column]:
        """The rows at `rows` by column name, for an insert."""
        return dict(zip(RESOURCE_COLUMNS, [c.take(rows) for c in self.columns], strict=True))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Resources, (self.columns,))


class EncodedClickHouseSpans:
    """The insert columns of a batch of spans (`COLUMNS`, each a `native.Column`) and the
    resources they name."""

    __slots__ = ("columns", "resources")

    def __init__(self, columns: Sequence[native.Column], resources: Resources) -> None:
        self.columns = tuple(columns)
        self.resources = resources

    def __len__(self) -> int:
        return len(self.columns[0])

    def native(self, names: Sequence[str]) -> dict[str, native.Column]:
        """The columns `names` (SEARCH or BY_TRACE) by name, for an insert."""
        return {name: self.columns[_INDEX[name]] for name in names}

    def table(self, names: Sequence[str]) -> dict[str, list[Any]]:
        """The columns `names` by name as Python values (payloads as bytes)."""
        return {name: self.columns[_INDEX[name]].values() for name in names}

    def select(self, mask: npt.NDArray[np.bool_]) -> EncodedClickHouseSpans:
        """The rows where `mask` is true, in their order (tail sampling, shards)."""
        if len(mask) != len(self):
            raise ValueError(f"a mask of {len(mask)} rows for {len(self)} rows")
        # The resources stay whole: the store writes only those its rows name.
        return EncodedClickHouseSpans(
            [column.select(mask) for column in self.columns], self.resources
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (EncodedClickHouseSpans, (self.columns, self.resources))


def concat(encoded: Sequence[EncodedClickHouseSpans]) -> EncodedClickHouseSpans:
    """One batch of the rows of `encoded`, in order (one insert per table for all of them)."""
    if len(encoded) == 1:
        return encoded[0]
    return EncodedClickHouseSpans(
        [native.concat(parts) for parts in zip(*(e.columns for e in encoded), strict=True)],
        Resources(
            [
                native.concat(parts)
                for parts in zip(*(e.resources.columns for e in encoded), strict=True)
            ]
        ),
    )


def _no_rows() -> list[native.Column]:
    none = np.zeros(0, np.int32)
    kinds: dict[str, native.Column] = {
        "trace_hi": Numbers(none.astype(np.uint64)), "trace_lo": Numbers(none.astype(np.uint64)),
        "start_ns": Numbers(none.astype(np.int64)), "span_id": Numbers(none.astype(np.uint64)),
        "service": Words([], none), "name": Words([], none),
        "kind": Numbers(none.astype(np.uint8)), "status": Numbers(none.astype(np.uint8)),
        "attr_keys": Lists(Words([], none), offsets_of([])),
        "attr_values": Lists(Strings([]), offsets_of([])),
        "attr_types": Words([], none), "resource": Numbers(none.astype(np.uint64)),
        "duration_ns": Numbers(none.astype(np.int64)), "span": Strings([]),
    }  # fmt: skip
    return [kinds[name] for name in COLUMNS]


def _no_resources() -> Resources:
    none = np.zeros(0, np.int32)
    return Resources([
        Numbers(none.astype(np.uint64)), Lists(Words([], none), offsets_of([])),
        Lists(Words([], none), offsets_of([])), Words([], none),
    ])  # fmt: skip


_EMPTY = EncodedClickHouseSpans(_no_rows(), _no_resources())


AttrRows = tuple[list[list[str]], list[list[str]], list[str]]
"""Per row: attribute keys, texts ("" for None), type letters."""


def _attr_rows(attrs: AttrColumns, texts: list[str]) -> AttrRows:
    """Each row's attribute keys, texts (`texts`: all rows' texts, "" for None) and tags."""
    keys = attrs.keys
    bounds = list(pairwise(attrs.offsets))
    return [keys[a:b] for a, b in bounds], [texts[a:b] for a, b in bounds], attrs.tags


def _texts(attrs: AttrColumns) -> list[str]:
    return [text if text is not None else "" for text in attrs.values]


def _per_span(items: list[Any], offsets: list[int]) -> list[Sequence[Any]]:
    """Flat per-event (or per-link) values grouped into one list per span (with none at all,
    the usual for links and events, one shared empty tuple: packed as an empty list is)."""
    if not items:
        return [()] * (len(offsets) - 1)
    return [items[a:b] for a, b in pairwise(offsets)]


def _resources(
    resources: Sequence[Mapping[str, AttrValue]], ids: list[int]
) -> tuple[AttrRows, Resources]:
    """Each row's resource attributes as lists (rows of one resource share them; for the
    payloads), and the distinct resources (0, no resource, is not one)."""
    by_id: dict[int, tuple[list[str], list[str], str]] = {0: ([], [], "")}
    for resource in resources:
        by_id.setdefault(resource_id(resource), encode_attrs(resource))
    rows = [by_id[rid] for rid in ids]
    lists = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    del by_id[0]
    distinct = list(by_id.values())
    offsets = offsets_of([len(keys) for keys, _, _ in distinct])  # one row per resource
    return lists, Resources([
        Numbers.of(list(by_id), np.uint64),
        Lists(Words.of([key for keys, _, _ in distinct for key in keys]), offsets),
        Lists(Words.of([value for _, values, _ in distinct for value in values]), offsets),
        Words.of([letters for _, _, letters in distinct]),
    ])  # fmt: skip


def encode_columns(columns: SpanColumns) -> EncodedClickHouseSpans:
    """Both tables' insert columns from backend-neutral columns (the ClickHouse store's
    `column_encoder`: runs in ingest workers)."""
    if not columns.rows:
        return _EMPTY
    (start, duration, trace_hi, trace_lo, span_id, parent_id, service, name, kind, status,
     message, rids, scope_name, scope_version, trace_state, flags,
     ) = map(list, zip(*columns.rows, strict=True))  # fmt: skip
    kinds, statuses = list(map(int, kind)), list(map(int, status))
    texts = _texts(columns.attrs)
    attr_keys, attr_values, attr_types = _attr_rows(columns.attrs, texts)
    (res_keys, res_values, res_types), resources = _resources(columns.resources, rids)
    ev_keys, ev_values, ev_types = _attr_rows(columns.ev_attrs, _texts(columns.ev_attrs))
    ln_keys, ln_values, ln_types = _attr_rows(columns.ln_attrs, _texts(columns.ln_attrs))
    ev = columns.ev_offsets
    ev_time: list[int] = []
    if columns.ev_time:  # each event's time from its span's start
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
    attr_offsets = np.array(columns.attrs.offsets, np.int64)
    by_name: dict[str, native.Column] = {
        "trace_hi": Numbers.of(trace_hi, np.uint64), "trace_lo": Numbers.of(trace_lo, np.uint64),
        "start_ns": Numbers.of(start, np.int64), "span_id": Numbers.of(span_id, np.uint64),
        "service": Words.of(service), "name": Words.of(name),
        "kind": Numbers.of(kinds, np.uint8), "status": Numbers.of(statuses, np.uint8),
        "attr_keys": Lists(Words.of(columns.attrs.keys), attr_offsets),
        "attr_values": Lists(Strings(texts), attr_offsets),
        "attr_types": Words.of(attr_types), "resource": Numbers.of(rids, np.uint64),
        "duration_ns": Numbers(np.maximum(np.array(duration, np.int64), 0)),  # as Span's
        "span": Strings(payloads),
    }  # fmt: skip
    return EncodedClickHouseSpans([by_name[column] for column in COLUMNS], resources)


def encode_spans(spans: Sequence[Span]) -> EncodedClickHouseSpans:
    """The ClickHouse store's span encoder (model spans -> its insert columns)."""
    return encode_columns(span_columns(spans))
