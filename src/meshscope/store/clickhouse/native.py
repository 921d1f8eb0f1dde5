"""Insert columns that the owner writes in ClickHouse's Native format cheaply (ADR 0025).

clickhouse-driver writes an insert's columns value by value: ~3.5 us of the owner's CPU per
span for the two span tables, most of it in strings that repeat from row to row (attribute
keys and type letters, a resource's keys and values, services, operations). The ingest
workers therefore build those as `Words`: the distinct values and an int32 index per row
(per item, for arrays), which pickle small and are written with one join of the values'
encoded bytes (as `String`) or as a dictionary (as `LowCardinality(String)`), whichever the
server's sample block asks for: one worker encoding serves both schema profiles. Integers
are NumPy arrays (written with `tobytes`); strings of their own (attribute values, payloads)
stay Python lists, written by the driver's own string writer (C). A commit group's batches
are joined and tail sampling's or a shard's rows selected with a few calls per column
(`concat`, `select`).

`write` puts on the driver's output buffer exactly the bytes the driver's own column writer
puts there for the same values and type (tests/store/test_clickhouse_native.py checks it for
arbitrary values against `clickhouse_driver.columns.service.write_column`), and
`Connection.insert_native` frames them in the driver's Data packet (connection.py).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from itertools import chain, compress, pairwise
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

Index = npt.NDArray[np.signedinteger[Any]]
"""Row numbers, offsets (int64) and `Words` indexes (int32: half the bytes to pickle)."""
Mask = npt.NDArray[np.bool_]

_NUMBERS = {
    "UInt8": "<u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8",
    "Int8": "<i1", "Int16": "<i2", "Int32": "<i4", "Int64": "<i8",
}  # fmt: skip
"""Native layout of the integer types: little-endian, fixed width."""
_LOW_CARDINALITY = "LowCardinality(String)"
_KEYS_VERSION = struct.pack("<q", 1)
"""A LowCardinality column's state prefix (SharedDictionariesWithAdditionalKeys)."""
_LC_FLAGS = (1 << 9) | (1 << 10)
"""HasAdditionalKeysBit | NeedUpdateDictionary, as clickhouse-driver writes them."""
_INDEX_TYPES = ("<u1", "<u2", "<u4", "<u8")


class NativeTypeError(ValueError):
    """A column cannot be written as the type the server asked for (a table whose columns
    differ from the ones the store made)."""


class Out(Protocol):
    """What `write` writes to: clickhouse-driver's output buffer (`BufferedWriter`)."""

    def write(self, data: bytes) -> None: ...

    def write_strings(self, items: list[Any], encoding: str | None = None) -> None: ...


class Column(Protocol):
    """One insert column of a batch of rows."""

    def __len__(self) -> int: ...

    def take(self, rows: Index) -> Column:
        """The rows at `rows` (any order, repeats allowed)."""
        ...

    def select(self, mask: Mask) -> Column:
        """The rows where `mask` is true, in order."""
        ...

    def write(self, spec: str, out: Out) -> None:
        """Write the column as type `spec` (its state prefix, then its data) to `out`."""
        ...

    def values(self) -> list[Any]:
        """The rows as Python values (int, str, bytes, list of str)."""
        ...


C = TypeVar("C", bound=Column)


def concat(parts: Sequence[C]) -> C:
    """The rows of `parts` (columns of one kind) as one column."""
    if len(parts) == 1:
        return parts[0]
    joined: C = type(parts[0]).joined(parts)  # type: ignore[attr-defined]
    return joined


class Numbers:
    """An integer column."""

    __slots__ = ("array",)

    def __init__(self, array: npt.NDArray[Any]) -> None:
        self.array = array

    @classmethod
    def of(cls, values: Sequence[int], dtype: type[np.integer[Any]]) -> Numbers:
        """`values` as a column of `dtype` (OverflowError if one does not fit)."""
        return cls(np.array(values, dtype=dtype))

    def __len__(self) -> int:
        return len(self.array)

    @staticmethod
    def joined(parts: Sequence[Numbers]) -> Numbers:
        return Numbers(np.concatenate([part.array for part in parts]))

    def take(self, rows: Index) -> Numbers:
        """The rows at `rows` (any order, repeats allowed)."""
        return Numbers(self.array[rows])

    def select(self, mask: Mask) -> Numbers:
        return Numbers(self.array[mask])

    def write(self, spec: str, out: Out) -> None:
        layout = _NUMBERS.get(spec)
        if layout is None:
            raise NativeTypeError(f"an integer column cannot be written as {spec}")
        array = self.array
        if len(array) and not np.can_cast(array.dtype, layout):
            limits = np.iinfo(layout)
            if array.min() < limits.min or array.max() > limits.max:
                raise NativeTypeError(f"a value out of the range of {spec}")
        out.write(array.astype(layout, copy=False).tobytes())

    def values(self) -> list[Any]:
        return self.array.tolist()  # type: ignore[no-any-return]


class Strings:
    """A String column of values of their own: str (text) or bytes (payloads)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def joined(parts: Sequence[Strings]) -> Strings:
        return Strings(list(chain.from_iterable(part.items for part in parts)))

    def take(self, rows: Index) -> Strings:
        items = self.items
        return Strings([items[row] for row in rows.tolist()])

    def select(self, mask: Mask) -> Strings:
        return Strings(list(compress(self.items, mask.tolist())))

    def write(self, spec: str, out: Out) -> None:
        if spec != "String":
            raise NativeTypeError(f"a String column cannot be written as {spec}")
        if self.items:
            out.write_strings(self.items, encoding="utf-8")

    def values(self) -> list[Any]:
        return list(self.items)


class Words:
    """A column of strings with few distinct values: the values (`words`, each once) and
    each row's index into them. Written as String or LowCardinality(String)."""

    __slots__ = ("index", "words")

    def __init__(self, words: list[str], index: Index) -> None:
        self.words = words
        self.index = index

    @classmethod
    def of(cls, items: Sequence[str]) -> Words:
        words = list(dict.fromkeys(items))
        place = {word: n for n, word in enumerate(words)}
        return cls(words, np.fromiter(map(place.__getitem__, items), np.int32, len(items)))

    def __len__(self) -> int:
        return len(self.index)

    @staticmethod
    def joined(parts: Sequence[Words]) -> Words:
        seen: dict[str, int] = {}
        indexes = []
        for part in parts:
            mapping = np.array([seen.setdefault(w, len(seen)) for w in part.words], np.int32)
            indexes.append(mapping[part.index] if len(part.index) else part.index)
        return Words(list(seen), np.concatenate(indexes))

    def take(self, rows: Index) -> Words:
        return Words(self.words, self.index[rows])

    def select(self, mask: Mask) -> Words:
        return Words(self.words, self.index[mask])

    def write(self, spec: str, out: Out) -> None:
        if spec == "String":
            out.write(self.text())
        elif spec == _LOW_CARDINALITY:
            out.write(_KEYS_VERSION + self.dictionary())
        else:
            raise NativeTypeError(f"a String column cannot be written as {spec}")

    def text(self) -> bytes:
        """The rows as String data: each value's bytes, joined."""
        encoded = [_string(word) for word in self.words]
        return b"".join(map(encoded.__getitem__, self.index.tolist()))

    def dictionary(self) -> bytes:
        """The LowCardinality data (no state prefix): the distinct values in order of first
        use, then each row's index into them, as clickhouse-driver writes them."""
        if not len(self.index):
            return b""
        used, first = np.unique(self.index, return_index=True)
        order = used[np.argsort(first, kind="stable")]
        renumber = np.zeros(len(self.words), np.int64)
        renumber[order] = np.arange(len(order))
        count = len(order)
        width = int(math.log(count, 2) / 8)  # the driver's rule, float and all
        return b"".join((
            struct.pack("<qq", _LC_FLAGS | width, count),
            *[_string(self.words[i]) for i in order.tolist()],
            struct.pack("<q", len(self.index)),
            renumber[self.index].astype(_INDEX_TYPES[width]).tobytes(),
        ))  # fmt: skip

    def values(self) -> list[Any]:
        words = self.words
        return [words[i] for i in self.index.tolist()]


class Lists:
    """An Array(String) column: the rows' items as one column (`items`: Strings, or Words
    for items with few distinct values, which may be written as LowCardinality), row i's
    items from `offsets[i]` to `offsets[i + 1]`."""

    __slots__ = ("items", "offsets")

    def __init__(self, items: Strings | Words, offsets: Index) -> None:
        self.items = items
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @staticmethod
    def joined(parts: Sequence[Lists]) -> Lists:
        shifts = np.cumsum([0] + [int(part.offsets[-1]) for part in parts[:-1]])
        offsets = np.concatenate(
            [parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, shifts, strict=True)]
        )
        items: Strings | Words = concat([part.items for part in parts])
        return Lists(items, offsets)

    def take(self, rows: Index) -> Lists:
        """Rows `rows` (indexes, in that order, repeats allowed) as a column."""
        counts = np.diff(self.offsets)[rows]
        offsets = offsets_of(counts)
        # Item k of the result is item k - offsets[i] of row rows[i] here, for its i.
        items = np.repeat(self.offsets[:-1][rows] - offsets[:-1], counts) + np.arange(offsets[-1])
        return Lists(self.items.take(items), offsets)

    def select(self, mask: Mask) -> Lists:
        return self.take(np.flatnonzero(mask))

    def write(self, spec: str, out: Out) -> None:
        if not (spec.startswith("Array(") and spec.endswith(")")):
            raise NativeTypeError(f"an Array(String) column cannot be written as {spec}")
        inner, items = spec[6:-1], self.items
        offsets = self.offsets[1:].astype("<u8").tobytes()
        if inner == _LOW_CARDINALITY and isinstance(items, Words):
            out.write(_KEYS_VERSION + offsets + items.dictionary())  # the prefix comes first
        else:
            out.write(offsets)
            items.write(inner, out)

    def values(self) -> list[Any]:
        flat = self.items.values()
        return [flat[a:b] for a, b in pairwise(self.offsets.tolist())]


def offsets_of(counts: Sequence[int] | npt.NDArray[Any]) -> Index:
    """Row offsets from per-row counts (n + 1 values, from 0)."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def _string(text: str) -> bytes:
    """A String value as Native bytes: its length (a varint), then its UTF-8."""
    data = text.encode()
    size = len(data)
    if size < 0x80:
        return bytes((size,)) + data
    prefix = bytearray()
    while size >= 0x80:
        prefix.append((size & 0x7F) | 0x80)
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + data
