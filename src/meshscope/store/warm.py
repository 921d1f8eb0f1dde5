"""Warming a store's read cache after a restart, in the background (DuckDB: warmup.py)."""

from __future__ import annotations

import logging
import threading
from typing import Protocol, runtime_checkable

log = logging.getLogger("meshscope.store")


@runtime_checkable
class Warmable(Protocol):
    def warm_up(self, stop: threading.Event | None = None) -> object:
        """Load what reads need into memory; returns a summary (logged); `stop` ends it."""
        ...


class WarmUpThread:
    """Runs `store.warm_up` once on a daemon thread; `stop` ends it and waits briefly."""

    def __init__(self, store: Warmable) -> None:
        self._store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshscope-warm-up", daemon=True)
        self.result: object | None = None

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        try:
            self.result = self._store.warm_up(self._stop)
        except Exception:  # a failed warm-up costs only speed: say so and carry on
            log.exception("store warm-up failed")
            return
        log.info("store warmed up", extra={"warm_up": repr(self.result)})
