"""Rows no request waits for: the calls paired since the last write, and what a failed
write left.

The writer stores most rows with the request that brought them, and a failed write is
answered 503 so the client sends them again. Some rows belong to no waiting request: the
spans tail sampling keeps (their requests were answered when the spans were buffered), the
service-graph calls paired from spans or expired. The paired calls of committed groups wait
here (`add`) for a later write: about once a second, with a group's transaction or a write
of their own (one access-log insert for many groups, ADR 0027). A failed write of those
rows would lose them, so they are kept here (`keep`) and written first with the next write:
a store outage shorter than the backlog's bound costs nothing. Past the bound the oldest
rows are dropped and counted (`dropped`), and so are the rows no column holds
(`is_data_error`: a bug upstream), which no retry would store and which would fail every
later write with them: `Pipeline.store_unowned` writes a write that failed on a value again
in halves, so only the rows that fail alone are dropped, not the others they went with.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from meshscope.model.calls import Call

MAX_ROWS = 250_000
"""Spans and calls held at most: a minute of a store outage at 40k spans/s with tail sampling
keeping a tenth, a few hundred MB of encoded rows at most."""


def rows_of(encoded: Sequence[Any], calls: Sequence[Call]) -> int:
    """The spans (span encodings, each sized by len()) and calls held."""
    return sum(map(len, encoded)) + len(calls)


def is_data_error(error: BaseException) -> bool:
    """Whether an error comes from a value, not from the store: raised while building rows
    (Arrow's ArrowInvalid is a ValueError, ArrowTypeError a TypeError)."""
    return isinstance(error, ValueError | TypeError | ArithmeticError)


@dataclass(slots=True)
class Backlog:
    """Used by the writer thread (ticks, flushes) and the store thread (a failed group's
    rows), so every method holds a lock."""

    limit: int = MAX_ROWS
    encoded: list[Any] = field(default_factory=list)  # span encodings, each sized by len()
    calls: list[Call] = field(default_factory=list)
    waiting: list[Call] = field(default_factory=list)  # paired calls, not written yet
    dropped: int = 0  # rows dropped past the bound, since start
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def rows(self) -> int:
        """The rows kept after a failed write (not the calls waiting for their first)."""
        with self._lock:
            return self._rows()

    def _rows(self) -> int:
        return rows_of(self.encoded, self.calls)

    def add(self, calls: Sequence[Call]) -> None:
        """Queue calls for the next write; past the bound the oldest are dropped."""
        with self._lock:
            self.waiting += calls
            excess = len(self.waiting) - self.limit
            if excess > 0:
                del self.waiting[:excess]
                self.dropped += excess

    def take(
        self, encoded: Sequence[Any], calls: Sequence[Call], waiting: bool = True
    ) -> tuple[list[Any], list[Call]]:
        """The kept rows (oldest first), the waiting calls (unless not `waiting`), then
        these; what was returned is no longer held."""
        with self._lock:
            held = self.waiting if waiting else []
            out = [*self.encoded, *encoded], [*self.calls, *held, *calls]
            self.encoded, self.calls = [], []
            if waiting:
                self.waiting = []
        return out

    def take_waiting(self) -> list[Call]:
        """The waiting calls, no longer held."""
        with self._lock:
            out, self.waiting = self.waiting, []
        return out

    def drop(self, encoded: Sequence[Any], calls: Sequence[Call]) -> None:
        """Count rows given up on."""
        with self._lock:
            self.dropped += sum(map(len, encoded)) + len(calls)

    def keep(self, encoded: Sequence[Any], calls: Sequence[Call]) -> None:
        """Hold rows whose write failed, before any kept meanwhile; past the bound the
        oldest are dropped."""
        with self._lock:
            self.encoded = [*encoded, *self.encoded]
            self.calls = [*calls, *self.calls]
            excess = self._rows() - self.limit
            while excess > 0 and self.encoded:
                rows = len(self.encoded.pop(0))
                self.dropped += rows
                excess -= rows
            if excess > 0:
                del self.calls[:excess]
                self.dropped += excess
