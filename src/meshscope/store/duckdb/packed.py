"""Attributes, events and links as one text column each (no LIST columns: ADR 0006 rev. 4).

DuckDB 2.0 logs a small append to a table with a LIST column by rewriting the list data of every
row appended to the same 2048-row vector since the last checkpoint, so at 10 spans/s each span
cost ~40 KB of log. A plain VARCHAR appends only its own bytes; so the DuckDB store keeps
attributes as one packed string per row, and events and links as JSON text.

The packed attributes of a row are its entries joined by `SEP` (U+001F), each entry
`key KV value KV` (KV = U+001E), key and value in their query text form (`attr_text`; a
missing value is `NONE`) with `ESC` (U+001D), KV and SEP escaped, so neither separator occurs
inside a key or a value. `attr_types` (one letter per entry, see `store.codec`) restores the
Python types. A condition `key = text` is then a substring test that can only match whole
entries:
`starts_with(attrs, E) OR contains(attrs, SEP || E)` with `E = key KV text KV` (`needle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from meshscope.store.codec import AttrColumns, decode_attrs

ESC = "\x1d"
KV = "\x1e"
SEP = "\x1f"
_ESCAPES = ((ESC, ESC + "0"), (KV, ESC + "1"), (SEP, ESC + "2"))  # ESC first: reversible
NONE = ESC + "n"
"""A value that is absent (`None`): no text escapes to it, so no condition matches it."""


def escape(text: str) -> str:
    for char, code in _ESCAPES:
        if char in text:
            text = text.replace(char, code)
    return text


def _unescape(text: str) -> str:
    if ESC not in text:
        return text
    for char, code in reversed(_ESCAPES):
        text = text.replace(code, char)
    return text


def needle(key: str, text: str) -> str:
    """The entry `key = text` as it appears in packed attributes."""
    return f"{escape(key)}{KV}{escape(text)}{KV}"


def key_needle(key: str) -> str:
    """The start of any entry for `key`."""
    return f"{escape(key)}{KV}"


def sql_has(column: str) -> str:
    """SQL true when `column` holds the entry (or entry start) given as its one parameter,
    which must be passed twice: `[n, SEP + n]`."""
    return f"(starts_with({column}, ?) OR contains({column}, ?))"


def has_params(entry: str) -> list[str]:
    return [entry, SEP + entry]


def sql_escape(expr: str) -> str:
    """SQL that escapes the text `expr` the way `escape` does."""
    for char, code in _ESCAPES:
        expr = f"replace({expr}, chr({ord(char)}), chr({ord(ESC)}) || '{code[1]}')"
    return expr


def sql_entry(key: str, value_expr: str, any_text: bool = True) -> str:
    """SQL for one packed entry with the constant `key` and the text `value_expr` (escaped
    unless `any_text` is false: a number or a constant holds no separator)."""
    value = sql_escape(value_expr) if any_text else value_expr
    return f"'{escape(key)}' || chr({ord(KV)}) || {value} || chr({ord(KV)})"


def _needs_escape(array: pa.Array) -> bool:
    data = array.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, np.uint8)
    return bool(((raw - np.uint8(ord(ESC))) < 3).any())  # any of U+001D..U+001F


def _escaped(array: pa.Array) -> pa.Array:
    if not _needs_escape(array):
        return array
    for char, code in _ESCAPES:
        array = pc.replace_substring(array, char, code)
    return array


def pack_columns(attrs: AttrColumns) -> tuple[pa.Array, pa.Array]:
    """The `attrs` (packed) and `attr_types` columns of the collected rows, built with Arrow
    kernels (no Python work per attribute)."""
    keys = _escaped(pa.array(attrs.keys, pa.string()))
    values = _escaped(pa.array(attrs.values, pa.string()))
    if values.null_count:
        values = pc.fill_null(values, NONE)
    entries = pc.binary_join_element_wise(
        keys, values, pa.nulls(len(keys), pa.string()), KV,
        null_handling="replace", null_replacement="",
    )  # fmt: skip
    rows = pa.ListArray.from_arrays(pa.array(attrs.offsets, pa.int32()), entries)
    return pc.binary_join(rows, SEP), pa.array(attrs.tags, pa.string())


def unpack(packed: str | None, tags: str | None) -> dict[str, Any]:
    """Typed attributes from the `attrs` and `attr_types` values."""
    if not packed:
        return {}
    keys: list[str] = []
    values: list[str | None] = []
    for entry in packed.split(SEP):
        key, _, value = entry[:-1].partition(KV)
        keys.append(_unescape(key))
        values.append(_unescape(value))
    return decode_attrs(keys, values, tags)


def pack_events(
    offsets: Sequence[int],
    times: Sequence[int],
    names: Sequence[str],
    attrs: AttrColumns,
    starts: Sequence[int],
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Each row's events as three columns (all NULL when it has none): JSON `[{n, a, y}]`
    with `a` the packed attributes and `y` their type letters; the first event's time as an
    offset from the span's start (`starts`), an integer; the other events' offsets in
    decimal, joined by commas (NULL when there is one event). Apart, the JSON repeats from span
    to span (dictionary-compressed) and an offset is a bit-packed integer: ~3 instead of 27
    bytes per span on disk for one event each (ADR 0020). The offsets are computed with NumPy
    (Python work only for rows with several events)."""
    rows = len(offsets) - 1
    if not names:  # most batches: no per-row work
        return pa.nulls(rows, pa.string()), pa.nulls(rows, pa.int64()), pa.nulls(rows, pa.string())
    events = _json_column(offsets, attrs, [{"n": n} for n in names])
    ends = np.asarray(offsets, np.int64)
    firsts, others = _event_offsets(ends, np.diff(ends), times, starts)
    return events, firsts, others


_SAFE_NS = 2**62  # times and starts within +-2^62: their differences fit int64


def _event_offsets(
    ends: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], times: Sequence[int],
    starts: Sequence[int],
) -> tuple[pa.Array, pa.Array]:  # fmt: skip
    """The first event's offset from its span's start per row, and the others' joined."""
    has = counts > 0
    at = np.asarray(times, np.int64)
    begin = np.asarray(starts, np.int64)
    # (neither is empty: there are events, and every row has a start)
    if max(at.max(), begin.max()) >= _SAFE_NS or min(at.min(), begin.min()) <= -_SAFE_NS:
        return _event_offsets_slow(ends, times, starts)
    first = np.where(has, at[np.where(has, ends[:-1], 0)] - begin, 0)
    others: list[str | None] = [None] * len(counts)
    for row in np.flatnonzero(counts > 1).tolist():
        start = starts[row]
        others[row] = ",".join([str(t - start) for t in times[ends[row] + 1 : ends[row + 1]]])
    return pa.array(first, pa.int64(), mask=~has), pa.array(others, pa.string())


def _event_offsets_slow(
    ends: npt.NDArray[np.int64], times: Sequence[int], starts: Sequence[int]
) -> tuple[pa.Array, pa.Array]:
    firsts: list[int | None] = []
    others: list[str | None] = []
    for row, (first, end) in enumerate(pairwise(ends.tolist())):
        if end > first:
            start = starts[row]
            firsts.append(times[first] - start)
            others.append(",".join([str(t - start) for t in times[first + 1 : end]]) or None)
        else:
            firsts.append(None)
            others.append(None)
    return pa.array(firsts, pa.int64()), pa.array(others, pa.string())


def pack_links(
    offsets: Sequence[int],
    highs: Sequence[int],
    lows: Sequence[int],
    span_ids: Sequence[int],
    attrs: AttrColumns,
) -> pa.Array:
    """Each row's links as JSON text (NULL when it has none): `[{h, l, s, a, y}]`."""
    return _json_column(
        offsets,
        attrs,
        [{"h": h, "l": lo, "s": s} for h, lo, s in zip(highs, lows, span_ids, strict=True)],
    )


def _json_column(
    offsets: Sequence[int], attrs: AttrColumns, items: list[dict[str, Any]]
) -> pa.Array:
    if not items:
        return pa.nulls(len(offsets) - 1, pa.string())
    packed, tags = pack_columns(attrs)
    for item, a, y in zip(items, packed.to_pylist(), tags.to_pylist(), strict=True):
        item["a"] = a
        item["y"] = y
    out: list[str | None] = []
    for first, end in pairwise(offsets):
        out.append(orjson.dumps(items[first:end]).decode() if end > first else None)
    return pa.array(out, pa.string())


def unpack_events(
    text: str | None, first: int | None, others: str | None, start_ns: int
) -> list[tuple[int, str, dict[str, Any]]]:
    """(time, name, attributes) of each event `pack_events` packed for a span."""
    if not text or first is None:
        return []
    offsets = [first, *map(int, others.split(","))] if others else [first]
    return [
        (start_ns + offset, item["n"], item["attributes"])
        for offset, item in zip(offsets, unpack_json(text), strict=True)
    ]


def unpack_json(text: str | None) -> list[dict[str, Any]]:
    """The events or links of a row, each item's `a`/`y` unpacked into `attributes`."""
    if not text:
        return []
    items: list[dict[str, Any]] = orjson.loads(text)
    for item in items:
        item["attributes"] = unpack(item.pop("a"), item.pop("y"))
    return items
