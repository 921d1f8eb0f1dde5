"""Growable, time-sorted sample arrays of one series (the `SampleCache`'s unit).

`Rows` holds columns (time_ns first) whose first `size` rows are samples; the rest is room
for appends. Readers take views of the first `size` rows; a writer only writes beyond
`size` or puts in new arrays, so a view handed out never changes. Changes are made by one
writer at a time (the database's write lock) under the cache's lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
Columns = tuple[Array, ...]  # time_ns first, then payload columns of the same length
Bounds = tuple[float, ...]
GROWTH = 4  # capacity grows by 1/GROWTH of the size: at most 25% room


class Rows:
    __slots__ = ("columns", "size")

    def __init__(self, columns: Columns, size: int) -> None:
        self.columns = columns
        self.size = size

    @staticmethod
    def copy_of(columns: Columns) -> Rows:
        """Rows owning copies of `columns` (sorted by time), without room."""
        return Rows(tuple(column.copy() for column in columns), len(columns[0]))

    @property
    def times(self) -> Array:
        return self.columns[0][: self.size]

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for column in self.columns)

    def add(self, new: Columns) -> int:
        """Add `new` (sorted by time among themselves): into the room after `size` when it
        starts no earlier than the last row, merged into new arrays otherwise (equal times:
        older rows first). Returns the change in bytes."""
        size, count = self.size, len(new[0])
        columns = self.columns
        if size and new[0][0] < columns[0][size - 1]:  # late samples
            before = self.nbytes
            merged = [
                np.concatenate((old[:size], more)) for old, more in zip(columns, new, strict=True)
            ]
            order = np.argsort(merged[0], kind="stable")
            self.columns = tuple(column[order] for column in merged)
            self.size = size + count
            return self.nbytes - before
        grown = 0
        if size + count > len(columns[0]):
            grown = self._grow(size + count)
            columns = self.columns
        for column, more in zip(columns, new, strict=True):
            column[size : size + count] = more
        self.size = size + count
        return grown

    def add_one(self, time_ns: int, *payload: Any) -> int | None:
        """`add` of one sample (time, then a value per payload column) not older than the
        last; None (nothing done) if it is older."""
        size = self.size
        columns = self.columns
        if size and time_ns < columns[0][size - 1]:
            return None
        grown = 0
        if size == len(columns[0]):
            grown = self._grow(size + 1)
            columns = self.columns
        columns[0][size] = time_ns
        for column, value in zip(columns[1:], payload, strict=True):
            column[size] = value
        self.size = size + 1
        return grown

    def add_float(self, time_ns: int, value: float) -> int | None:
        """`add_one` for (time, value) columns: the writer's most frequent call."""
        size = self.size
        times, values = self.columns
        if size and time_ns < times[size - 1]:
            return None
        grown = 0
        if size == len(times):
            grown = self._grow(size + 1)
            times, values = self.columns
        times[size] = time_ns
        values[size] = value
        self.size = size + 1
        return grown

    def _grow(self, needed: int) -> int:
        before = self.nbytes
        size = self.size
        capacity = max(needed, size + size // GROWTH, 16)
        self.columns = tuple(_grown(column, size, capacity) for column in self.columns)
        return self.nbytes - before

    def restore(self, columns: Columns, size: int) -> int:
        """Back to an earlier state, in new arrays (views of the later one stay intact)."""
        before = self.nbytes
        self.columns = tuple(column[:size].copy() for column in columns)
        self.size = size
        return self.nbytes - before

    def drop_before(self, start_ns: int) -> int:
        """Keep the rows from `start_ns` on, in new compact arrays; the change in bytes."""
        low = int(np.searchsorted(self.times, start_ns, "left"))
        if not low:
            return 0
        before = self.nbytes
        self.columns = tuple(column[low : self.size].copy() for column in self.columns)
        self.size -= low
        return self.nbytes - before

    def window(self, start_ns: int, end_ns: int) -> Columns | None:
        times = self.times
        low = int(np.searchsorted(times, start_ns, "left"))
        high = int(np.searchsorted(times, end_ns, "right"))
        if high <= low:
            return None
        return tuple(_frozen(column[low:high]) for column in self.columns)


class SeriesSamples:
    """One series' cached samples: floats (time, value) and histograms per bounds (time,
    counts matrix, sum, count), bounds in order of first appearance."""

    __slots__ = ("floats", "histograms")

    def __init__(
        self, floats: Rows | None = None, histograms: dict[Bounds, Rows] | None = None
    ) -> None:
        self.floats = floats
        self.histograms = histograms if histograms is not None else {}

    def all_rows(self) -> Iterator[Rows]:
        if self.floats is not None:
            yield self.floats
        yield from self.histograms.values()

    @property
    def nbytes(self) -> int:
        return sum(rows.nbytes for rows in self.all_rows())


def _grown(column: Array, size: int, capacity: int) -> Array:
    grown = np.empty((capacity, *column.shape[1:]), column.dtype)
    grown[:size] = column[:size]
    return grown


def _frozen(array: Array) -> Array:
    array.flags.writeable = False
    return array
