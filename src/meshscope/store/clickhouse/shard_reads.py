"""Reads of a sharded store that survive a shard going down (ADR 0015, "a shard down").

Every shard has the `Distributed` tables (`<database>_dist`), so any shard can answer a read
over all of them. `ShardReads` reads through the first shard that answers, in the order the
shards are configured, and moves on to the next when one cannot be reached. A read that
needs a shard nobody can reach would fail as a whole (ClickHouse's default); instead, while
a shard is known to be down, reads set `skip_unavailable_shards` and the answer carries a
warning naming the missing shards (`budget.warn`: Prometheus' and Loki's `warnings`,
Jaeger's `errors`, a `Warning` header), as Thanos and Cortex answer partial responses.

A shard is known to be down when connecting to it failed (at start included), or when a
read failed because a shard was unreachable and a probe (`SELECT 1`) of each shard then
failed (or the server named its address); a read at least `PROBE_INTERVAL_S` later starts
a probe of it in the background, and it is up again once it answers and has its tables
(one unreachable at start gets them then). ClickHouse itself
skips any shard it cannot reach once `skip_unavailable_shards` is set, so a shard that goes
down between two probes may be missing from an answer before the warning names it (at most one probe
interval); with every shard up, reads run without the setting and fail rather than
leave anything out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clickhouse_driver.errors import ErrorCodes, ServerException

from meshscope.query.budget import warn
from meshscope.store.clickhouse.connection import (
    ClickHouseUnavailableError,
    Connection,
    RemoteShardUnavailableError,
    redacted,
)

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
"""How long a shard found down is taken as down before a read probes it again."""
_MISSING = frozenset((ErrorCodes.UNKNOWN_DATABASE, ErrorCodes.UNKNOWN_TABLE))


class ShardReads(Connection):
    """A `Connection` for reads through the `Distributed` tables of `database` (the
    `_dist` one) on any of the shards `dsns` (see the module docstring)."""

    def __init__(
        self,
        dsns: Sequence[str],
        database: str,
        settings: dict[str, Any] | None = None,
        *,
        ready: Sequence[Callable[[], None]] = (),
        down: Sequence[int] = (),
    ) -> None:
        """`ready`: per shard, what makes it ready to be read once it answers (its tables,
        for a shard unreachable at start: `Connection.set_up`); `down`: the shards already
        found down."""
        super().__init__(dsns[0], database, settings)
        self._shards = [Connection(dsn, database, settings) for dsn in dsns]
        self._ready = list(ready)
        now = time.monotonic()
        self._down: dict[int, float] = dict.fromkeys(down, now)  # index -> when found down
        self._down_lock = threading.Lock()
        self.probing: threading.Thread | None = None  # the background probe, while it runs
        self._checked = now - PROBE_INTERVAL_S  # when `refresh` last probed every shard

    def down(self) -> list[int]:
        """The shards found down (0-based, in configured order)."""
        with self._down_lock:
            return sorted(self._down)

    def execute(self, sql: str, params: Any = None, arrays: bool = False, **kw: Any) -> Any:
        self._reprobe()
        retried = False  # read again once after a shard was found missing
        last: ClickHouseUnavailableError | None = None
        tried: set[int] = set()
        while True:
            down = self.down()
            candidates = [i for i in range(len(self._shards)) if i not in tried]
            # Shards not known down first; a known-down one is still tried last.
            candidates.sort(key=lambda i: i in down)
            if not candidates:
                assert last is not None
                raise last
            index = candidates[0]
            settings = dict(kw.get("settings") or {})
            if down:
                settings["skip_unavailable_shards"] = 1
            try:
                result = self._shards[index].execute(
                    sql, params, arrays, **{**kw, "settings": settings}
                )
            except RemoteShardUnavailableError as error:
                # The shard answered; one it reads from did not: the ones whose address it
                # named (else a probe of each tells), then read again without them (once: a
                # second failure is the answer).
                last = error
                named = [i for i, s in enumerate(self._shards) if s.address in error.addresses]
                for i in named:
                    self._mark(i, error)
                if retried or not (named or self._probe_each(range(len(self._shards)))):
                    raise
                retried = True
                continue
            except ServerException as error:
                # A shard that was down came back without its tables (it was unreachable
                # when this node started): its probe makes them; then read again, once.
                if error.code not in _MISSING or not down or retried:
                    raise
                retried = True
                self._probe_each(down)
                continue
            except ClickHouseUnavailableError as error:
                last = error
                tried.add(index)
                self._mark(index, error)
                continue
            self._up(index)  # it answered: not down (if it was taken to be)
            down = self.down()
            if down:
                warn(self._warning(down))
            return result

    def _warning(self, down: list[int]) -> str:
        shards = ", ".join(f"{i + 1} ({redacted(self._shards[i].dsn)})" for i in down)
        return (
            f"ClickHouse shard {shards} of {len(self._shards)} unreachable: this answer leaves"
            " out the data stored there"
        )

    def _mark(self, index: int, error: Exception) -> None:
        with self._down_lock:
            first = index not in self._down
            self._down[index] = time.monotonic()
        if first:
            log.warning(
                "clickhouse shard %d unreachable; reads skip it until it answers: %s",
                index + 1,
                error,
            )

    def _up(self, index: int) -> None:
        with self._down_lock:
            was = self._down.pop(index, None) is not None
        if was:
            log.info("clickhouse shard %d answers again", index + 1)

    def _probe(self, index: int) -> bool:
        """Whether shard `index` answers now and is ready to be read (and record it)."""
        try:
            self._shards[index].execute("SELECT 1")
            if index < len(self._ready):
                self._ready[index]()
        except ClickHouseUnavailableError as error:
            self._mark(index, error)
            return False
        self._up(index)
        return True

    def _probe_each(self, indexes: Iterable[int]) -> bool:
        """Probe the shards `indexes`; whether any is down."""
        answered = [self._probe(index) for index in indexes]  # every one
        return not all(answered)

    def _reprobe(self) -> None:
        """Probe the shards found down longer than PROBE_INTERVAL_S ago, in a thread of its
        own (one at a time): no read waits for a probe, which may take a connect timeout
        when the host does not answer at all."""
        now = time.monotonic()
        with self._down_lock:
            if self.probing is not None:
                return
            due = [i for i, when in self._down.items() if now - when >= PROBE_INTERVAL_S]
            for index in due:
                self._down[index] = now
            self._start(due)

    def refresh(self) -> None:
        """Probe every shard in the background, at most every PROBE_INTERVAL_S (a scrape of
        `/metrics` does: the shards' state it reports then follows them without reads)."""
        now = time.monotonic()
        with self._down_lock:
            if self.probing is not None or now - self._checked < PROBE_INTERVAL_S:
                return
            self._checked = now
            self._start(list(range(len(self._shards))))

    def _start(self, due: list[int]) -> None:
        """Probe `due` in a thread of its own (called holding the lock, none running)."""
        if due:
            self.probing = threading.Thread(
                target=self._probe_due, args=(due,), name="meshscope-clickhouse-probe",
                daemon=True,
            )  # fmt: skip
            self.probing.start()

    def _probe_due(self, due: list[int]) -> None:
        try:
            self._probe_each(due)
        except Exception:  # e.g. making a returning shard's tables failed: it stays down
            log.exception("probing clickhouse shards failed")
        finally:
            with self._down_lock:
                self.probing = None

    def close(self) -> None:
        for shard in self._shards:
            shard.close()
        super().close()
