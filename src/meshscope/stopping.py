"""Stopping work that never checks a deadline itself: a store's own query engine.

A read's Budget (query/budget.py) is checked cooperatively by meshscope's evaluators, but a
single DuckDB statement runs in C++ until it is done. While a budget is `watched`, code that
starts such work registers how to stop it (`on_stop`, e.g. DuckDB's `interrupt` of the
thread's cursor); a watchdog thread calls it once the budget is spent (past its deadline, or
cancelled because the client went away), and never after the watched block has ended. The
interrupted statement raises, and the read handler answers 503 as for any timed-out query.
`remaining_s` lets a remote store bound a statement itself (ClickHouse's
`max_execution_time`).

This module sits below both the query layer and the stores, which import it and nothing
of each other.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often the watchdog looks at the watched budgets while some registered work may need
stopping: a spent query stops within this. With none, it waits to be woken."""


class Stoppable(Protocol):
    """A running query's budget, as this module needs it."""

    def spent(self) -> bool:
        """Whether the query must stop now (past its deadline, or cancelled)."""
        ...

    def remaining_s(self) -> float:
        """Seconds left before its deadline (inf: none)."""
        ...


class _Watched:
    __slots__ = ("interrupts", "stoppable")

    def __init__(self, stoppable: Stoppable) -> None:
        self.stoppable = stoppable
        self.interrupts: dict[int, Callable[[], None]] = {}


_current: ContextVar[_Watched | None] = ContextVar("meshscope_stopping", default=None)


class _Watchdog:
    """One daemon thread (started by the first `on_stop`) that interrupts spent work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watched: set[_Watched] = set()
        self._thread: threading.Thread | None = None
        self.sweeps = 0
        """How many times the watchdog has looked at the watched budgets (for tests)."""

    def add(self, watched: _Watched) -> None:
        with self._lock:
            self._watched.add(watched)

    def remove(self, watched: _Watched) -> None:
        # Under the lock: once this returns, no interrupt of `watched` runs or will run.
        with self._lock:
            self._watched.discard(watched)
            watched.interrupts.clear()

    def register(self, watched: _Watched, key: object, interrupt: Callable[[], None]) -> None:
        with self._lock:
            if watched in self._watched:
                watched.interrupts.setdefault(id(key), interrupt)
                self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meshscope-query-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:  # parked while no registered work could need stopping
                while not any(watched.interrupts for watched in self._watched):
                    self._wake.wait()
            time.sleep(POLL_S)
            with self._lock:
                self.sweeps += 1
                for watched in self._watched:
                    if watched.interrupts and watched.stoppable.spent():
                        for interrupt in watched.interrupts.values():
                            try:
                                interrupt()
                            except Exception:  # an interrupt must not end the watchdog
                                log.exception("interrupting a spent query failed")
                        watched.interrupts.clear()


_WATCHDOG = _Watchdog()


@contextmanager
def watched(stoppable: Stoppable) -> Iterator[None]:
    """Within this block (in this thread or context), `on_stop` registrations are called
    when `stoppable` is spent."""
    entry = _Watched(stoppable)
    _WATCHDOG.add(entry)
    token = _current.set(entry)
    try:
        yield
    finally:
        _current.reset(token)
        _WATCHDOG.remove(entry)


def on_stop(key: object, interrupt: Callable[[], None]) -> None:
    """Call `interrupt` (once, from the watchdog thread) if the watched query is spent before
    its block ends; registered once per `key` (e.g. a cursor). Nothing without a watched
    query (writes, tests, internal callers)."""
    entry = _current.get()
    if entry is not None:
        _WATCHDOG.register(entry, key, interrupt)


def remaining_s() -> float:
    """Seconds the watched query has left (inf without one)."""
    entry = _current.get()
    return math.inf if entry is None else entry.stoppable.remaining_s()
