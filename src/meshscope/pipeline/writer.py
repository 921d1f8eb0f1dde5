"""The store owner: one writer runs the pipeline, so the DuckDB file has exactly one writer.

Receivers `await submit(batch)` with a raw Batch or one an ingest worker process already
prepared (`pipeline.prepared`); the writer takes everything queued and commits it in one go
(group commit: one transaction for many requests), then wakes each waiting receiver. A
receiver is answered only after its batch is committed. The queue is bounded in items: past
the bound `submit` raises OverloadedError at once (-> 429 + Retry-After), so memory stays
bounded under overload.

Two threads, one stage each, so Python and DuckDB work overlap: `meshscope-writer` derives
(pairs spans: holds the GIL) and hands each group to `meshscope-store`, which runs the store
transaction (DuckDB releases the GIL) and answers the group's receivers; the writer
meanwhile makes the derived-metric updates of the group before it, whose transaction has
ended (for a group refused as unavailable, only the calls paired from a peer's records: its
clients send the rest again, and the pairer takes its spans back), which queues
its calls paired from spans: they go with a later group handed over (on ClickHouse at most
once a second: `paired_calls_interval_s`), or with the tick when none is (ADR 0027). The
store thread clocks the groups: while it commits one, the writer derives every batch that
arrives into the next, which it hands over as soon as the store thread is free (so the
slower the commits, the larger the groups, and neither stage waits for the other while there
is work).
Only when the store thread is idle and ingest workers still hold admitted batches
(`expect_from`) does a group linger for them, briefly; and at low load a small group may be
held open for requests still to come (the commit window, `commit_window.py`), so that they
share one durable commit. A store whose inserts make parts (ClickHouse) also sets a floor
between commits (`min_commit_interval_s`): while more batches are being prepared upstream, a
group gathers until that long after the previous one went, so under load the store makes
fewer, larger parts (ADR 0030).
The writer thread also flushes derived metrics on an interval, applies retention, and runs
the store's upkeep (a checkpoint) when the load is low.

One bad batch must not fail its neighbours: decoders refuse what the store cannot hold, and
should one slip through, a failed group transaction is retried one request per transaction
(the slow path, `_isolate`), so only that request is refused. Unless the store said it is
unavailable (StoreUnavailableError: its server is down or hung): then every request of the
group is refused at once (503), not retried one by one, each retry waiting for the server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from meshscope.ingest.sink import OverloadedError, UnavailableError, UnstorableError
from meshscope.model.batch import Batch
from meshscope.model.calls import Call
from meshscope.pipeline.backlog import is_data_error
from meshscope.pipeline.chain import Derived, Observations, Pipeline
from meshscope.pipeline.commit_window import CommitWindow, Hold
from meshscope.pipeline.prepared import Prepared
from meshscope.store.base import StoreUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterSettings:
    # ~1-2 s of work at full speed: past it a receiver answers 429 instead of queueing.
    max_pending_items: int = 50_000
    max_merge_items: int = 100_000
    flush_interval_s: float = 15.0
    retention_interval_s: float = 300.0
    tick_interval_s: float = 1.0  # tail-sampling decisions
    # The calls paired from spans go with a group's transaction (or a tick's write, when
    # no group is being committed) at most this often; 0: with every group (ADR 0027).
    paired_calls_interval_s: float = 0.0
    # Store upkeep (`maintenance`, e.g. a checkpoint) runs every `maintenance_interval_s`
    # when the store thread was busy less than `low_load_share` of it: never on the
    # saturated path, where the store thread commits back to back (ADR 0006).
    maintenance_interval_s: float = 5.0
    low_load_share: float = 0.5
    # Group commit when the store thread is idle: while more admitted batches are still
    # being prepared upstream (ingest workers), the group waits for them, up to `linger_s`
    # after its first batch was queued or until it holds `linger_items`. A store
    # transaction costs ~10 ms whatever its size (~4 ms for 500 spans' rows), so one per
    # request would double the store's CPU per span; waiting for ALL that is in flight
    # (16k) made every closed-loop sender wait for one commit in lockstep (benchmarks/
    # ingest.py: 29.7k vs 37.9k spans/s with 4k, 36.5k with 1k; ADR 0006).
    linger_s: float = 0.2
    linger_items: int = 4_000
    # The commit window (pipeline/commit_window.py, ADR 0018): at low load a group smaller
    # than `commit_window_items` waits up to `commit_window_s` after its first request for
    # more to share its durable commit. 0 (here): off; `meshscope serve`: 1 s.
    commit_window_s: float = 0.0
    commit_window_items: int = 512
    # While batches are still being prepared upstream (`expect_from`), a group goes to the
    # store no sooner than this after the one before it went, so that a store whose every
    # insert makes parts (ClickHouse) gets at most one insert per table in this time under
    # load: the requests arriving meanwhile share the next (as ClickHouse's async inserts
    # gather them). A group holding every request in flight goes at once: its clients wait
    # for it, so waiting would gain nothing. 0: no floor (`InsertsMakeParts`).
    min_commit_interval_s: float = 0.0
    # The store owner allocates ~30 objects per span (unpickled pairing records, calls,
    # metric rows). With CPython's default gen-0 threshold (700) a collection runs every
    # ~25 spans, and every 10th/100th one walks the pairer's 100k+ pending entries: ~2 us of
    # the owner's CPU per span. `start` sets these process-wide thresholds (None: leave).
    gc_thresholds: tuple[int, int, int] | None = (50_000, 20, 20)

    def __post_init__(self) -> None:
        if self.linger_s < 0:
            raise ValueError("linger_s must be >= 0")
        if not self.commit_window_s >= 0:  # NaN too
            raise ValueError("commit_window_s must be >= 0")
        if not self.min_commit_interval_s >= 0:
            raise ValueError("min_commit_interval_s must be >= 0")


@dataclass(slots=True)
class _Job:
    batch: Batch | Prepared
    done: Callable[[BaseException | None], None]
    queued_at: float


@dataclass(slots=True)
class _Group:
    """Jobs derived together, on their way to one store transaction, and their metric updates
    (made once the transaction is known to have happened: `_observe_committed`)."""

    jobs: list[_Job]
    items: int
    derived: Derived | None
    observations: Observations | None = None
    refused: bool = False  # refused whole (503): its clients send it again
    taken_back: bool = False  # refused, and the pairer took back what it made of it
    carried: list[Call] = field(default_factory=list)  # earlier groups' paired calls (`_carry`)


_STOP = _Group([], 0, None)
"""Handed to the store thread last: it stops."""


class Committer(Protocol):
    """What receivers and ingest workers use of a writer: a `BatchWriter`, or with tenancy
    on `tenancy.writers.TenantWriters` (each batch to its tenant's writer)."""

    @property
    def pipeline(self) -> Pipeline: ...

    @property
    def pending_items(self) -> int: ...

    async def submit(self, batch: Batch | Prepared) -> None: ...

    async def queue(self, batch: Batch | Prepared) -> None: ...

    def saturated(self) -> bool: ...

    def nudge(self) -> None: ...

    def expect_from(self, upstream: Callable[[], int]) -> None: ...


class BatchWriter:
    def __init__(
        self,
        pipeline: Pipeline,
        settings: WriterSettings | None = None,
        retention: Callable[[], None] | None = None,
        maintenance: Callable[[], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings or WriterSettings()
        self.retention = retention  # applied every retention_interval_s
        self._maintenance = maintenance
        self._store_busy_s = 0.0  # time the store thread spent committing, in all
        self._jobs: deque[_Job] = deque()
        self._pending_items = 0  # queued or being committed
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="meshscope-writer", daemon=True)
        # The store thread's next group (None: nothing; _STOP: finish), under `_cond`.
        self._handed: _Group | None = None
        self._handed_at = -math.inf  # when the last group was handed over (monotonic)
        self._store_idle = True
        # The last group handed over whose metric updates are still to be made (writer thread).
        self._unobserved: _Group | None = None
        self._carry_at = 0.0  # when waiting paired calls next go with a group (`_carry`)
        self._store_thread = threading.Thread(
            target=self._store_run, name="meshscope-store", daemon=True
        )
        self._upstream: Callable[[], int] | None = None
        self.commit_window = CommitWindow(
            self.settings.commit_window_s, self.settings.commit_window_items
        )
        self._last_arrival: float | None = None  # when the last job taken was queued
        self.committed_items = 0
        self.rejected_items = 0
        self.commits = 0

    @property
    def pending_items(self) -> int:
        return self._pending_items

    def expect_from(self, upstream: Callable[[], int]) -> None:
        """`upstream()` tells how many admitted batches are still being prepared elsewhere
        (and will be queued here): a group waits up to `linger_s` for them. Call `nudge`
        when one of them is dropped instead of queued."""
        self._upstream = upstream

    def nudge(self) -> None:
        """Wake the writer: what it waits for upstream may have changed."""
        with self._cond:
            self._cond.notify_all()

    def saturated(self) -> bool:
        """Whether the queue is full: a new batch would be refused now."""
        return self._pending_items >= self.settings.max_pending_items

    def start(self) -> None:
        if self.settings.gc_thresholds is not None:
            gc.set_threshold(*self.settings.gc_thresholds)
        self._store_thread.start()
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, flush derived metrics, and stop the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    async def submit(self, batch: Batch | Prepared) -> None:
        """Return once `batch` (raw, or prepared by an ingest worker) is committed."""
        if not len(batch):
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, error)

        self.enqueue(batch, done)
        await future

    async def queue(self, batch: Batch | Prepared) -> None:
        """Queue `batch` without waiting for its commit: for what nobody acknowledges as
        stored, e.g. a cluster peer's pairing records, which only feed derived data (written
        later, ADR 0023). Raises OverloadedError when the queue is full."""
        if len(batch):
            self.enqueue(batch, _nobody_waits)

    def enqueue(
        self, batch: Batch | Prepared, done: Callable[[BaseException | None], None]
    ) -> None:
        """Queue a batch; `done(None)` is called from the writer thread once it is committed,
        `done(error)` if it could not be. Raises OverloadedError when the queue is full."""
        size = len(batch)
        with self._cond:
            if self._stopping:
                raise UnavailableError("meshscope is shutting down")
            if not self._admits(size):
                self.rejected_items += size
                raise OverloadedError(
                    f"ingest queue full ({self._pending_items} items waiting); retry later"
                )
            self._pending_items += size
            self._jobs.append(_Job(batch, done, time.monotonic()))
            self._cond.notify_all()

    def _admits(self, size: int) -> bool:
        """Whether a batch of `size` items may join the queue: while it fits; a batch larger
        than the whole queue while the queue is at most half full (waiting for an empty queue
        starved it as long as anyone else kept sending: a 60k-span request got 429 five
        times in six beside one client of 1-span requests). Memory stays bounded by half the
        queue plus one batch, which the request size limit bounds."""
        pending, room = self._pending_items, self.settings.max_pending_items
        if pending + size <= room or not pending:
            return True
        return size > room and pending <= room // 2

    def _gather(self, timeout: float) -> _Group | None:
        """The next group: queued jobs, derived as they are taken, for as long as the store
        thread is busy with the previous group (group commit clocked by the store: the
        slower a commit, the larger the next group). When the store is idle the group goes
        at once, unless batches are still being prepared upstream (`expect_from`): then it
        lingers for them, up to `linger_s` after its first job was queued and `linger_items`;
        or unless the commit window holds it open for requests still to come (at low load,
        `commit_window`)."""
        jobs: list[_Job] = []
        items = 0
        derived = Derived()
        observations = Observations()
        deadline = 0.0
        hold: Hold | None = None
        asked = False  # whether the commit window was asked about this group
        joined: list[float] = []  # when the jobs that joined during the hold came in
        with self._cond:
            if not self._jobs and not self._stopping:
                self._cond.wait(timeout)
        while True:
            with self._cond:
                if jobs:
                    while not self._jobs and not self._ready(items, deadline, hold):
                        self._cond.wait(self._wait_s(deadline, hold))
                taken = self._pop(self.settings.max_merge_items - items)
            if taken:
                if not jobs:
                    deadline = taken[0].queued_at + self.settings.linger_s
                elif hold is not None:
                    joined += [job.queued_at for job in taken]
                part = self._derive(taken)
                if part is not None:
                    jobs += part[0]
                    items += sum(len(job.batch) for job in part[0])
                    derived.extend(part[1])
                    observations.extend(part[2])
            if jobs and not asked and self._ready(items, deadline, None):
                asked = True
                hold = self.commit_window.hold(jobs[0].queued_at, self._last_arrival, items)
            if not jobs or self._ready(items, deadline, hold):
                break
        if hold is not None:
            self.commit_window.done(hold, joined)
        if jobs:
            self._last_arrival = jobs[-1].queued_at
        return _Group(jobs, items, derived, observations) if jobs else None

    def _ready(self, items: int, deadline: float, hold: Hold | None) -> bool:
        """Whether the open group goes to the store thread now: the store is idle and the
        group need not linger nor is held, or the group is as large as one transaction may
        be."""
        if items >= self.settings.max_merge_items:
            return True
        if not self._store_idle or self._lingering(items, deadline) or self._too_soon():
            return False
        return (
            hold is None
            or self._stopping
            or items >= self.commit_window.items
            or time.monotonic() >= hold.until
        )

    def _wait_s(self, deadline: float, hold: Hold | None) -> float:
        """How long to wait for news (a job, the store going idle): until the linger or the
        hold ends when the group waits, else a short while (both are also notified)."""
        if self._store_idle:
            floor = self._next_commit_at if self._too_soon() else 0.0
            until = max(deadline, hold.until if hold is not None else 0.0, floor)
            return max(0.0, until - time.monotonic())
        return 0.5

    @property
    def _next_commit_at(self) -> float:
        """The earliest a group may go to the store (`min_commit_interval_s`)."""
        return self._handed_at + self.settings.min_commit_interval_s

    def _too_soon(self) -> bool:
        """Whether the open group waits for `min_commit_interval_s`: only while batches are
        still being prepared upstream to join it (a group that holds every request in flight
        goes at once: its clients wait for it, so nothing more would come), never when
        stopping."""
        upstream = self._upstream
        return (
            not self._stopping
            and time.monotonic() < self._next_commit_at
            and upstream is not None
            and upstream() > 0
        )

    def _open(self, items: int, deadline: float) -> bool:
        """Whether the group may wait for batches still being prepared upstream: only when
        fed by ingest workers, within `linger_s` and `linger_items`."""
        return (
            self._upstream is not None
            and self.settings.linger_s > 0
            and not self._stopping
            and items < self.settings.linger_items
            and time.monotonic() < deadline
        )

    def _lingering(self, items: int, deadline: float) -> bool:
        """Whether to wait for batches still being prepared upstream."""
        upstream = self._upstream
        return upstream is not None and upstream() > 0 and self._open(items, deadline)

    def _pop(self, limit: int) -> list[_Job]:
        """Queued jobs, up to `limit` items (at least one job if any is queued)."""
        taken: list[_Job] = []
        items = 0
        while self._jobs and (not taken or items < limit):
            job = self._jobs.popleft()
            taken.append(job)
            items += len(job.batch)
        return taken

    def _derive(self, jobs: list[_Job]) -> tuple[list[_Job], Derived, Observations] | None:
        """Derive from the jobs' batches: the jobs taken and what they write. A batch whose
        rows cannot be encoded is answered alone (`_prepare_each`); if deriving fails, all
        are answered with the error (None)."""
        raw = [job for job in jobs if not isinstance(job.batch, Prepared)]
        prepared = [job.batch for job in jobs if isinstance(job.batch, Prepared)]
        if raw:
            try:
                merged = Batch()
                for job in raw:
                    merged.extend(job.batch)  # type: ignore[arg-type]
                prepared.append(self.pipeline.prepare(merged))
            except Exception as exc:
                log.warning("preparing %d batches failed (%s); retrying each alone", len(raw), exc)
                kept = self._prepare_each(raw)
                prepared += [part for _, part in kept]
                bad = {id(job) for job in raw} - {id(job) for job, _ in kept}
                jobs = [job for job in jobs if id(job) not in bad]
                if not jobs:
                    return None
        try:
            return (jobs, *self.pipeline.derive_deferred(prepared))
        except Exception as exc:
            items = sum(len(job.batch) for job in jobs)
            log.exception("deriving from %d items failed", items)
            self._finish(_Group(jobs, items, None), UnavailableError(f"pipeline failed: {exc}"))
            return None

    def _prepare_each(self, jobs: list[_Job]) -> list[tuple[_Job, Prepared]]:
        """Prepare raw batches one by one (the slow path after preparing them together
        failed); answer those that fail alone with UnstorableError (400)."""
        kept: list[tuple[_Job, Prepared]] = []
        for job in jobs:
            assert isinstance(job.batch, Batch)
            try:
                kept.append((job, self.pipeline.prepare(job.batch, count=False)))
            except Exception as exc:
                log.error(
                    "a decoder let through an item the store cannot hold (a bug; the "
                    "request is refused): %s: %s",
                    type(exc).__name__,
                    exc,
                )
                error = UnstorableError(f"a value cannot be stored: {exc}")
                self._finish(_Group([job], len(job.batch), None), error)
        return kept

    def _run(self) -> None:
        next_flush = time.monotonic() + self.settings.flush_interval_s
        next_retention = time.monotonic() + self.settings.retention_interval_s
        next_tick = time.monotonic() + self.settings.tick_interval_s
        next_upkeep = time.monotonic() + self.settings.maintenance_interval_s
        busy_at_upkeep = 0.0
        while True:
            now = time.monotonic()
            due = min(next_flush, next_retention, next_tick, next_upkeep)
            gathered = self._gather(max(0.0, due - now))
            if gathered is not None:
                self._carry(gathered)
                self._hand_over(gathered)
                # The previous group's metric updates while the store thread commits this
                # one (DuckDB releases the GIL): its transaction has ended.
                self._observe_committed(gathered)
            now = time.monotonic()
            if now >= next_tick:
                self._guard(self._tick)
                next_tick = now + self.settings.tick_interval_s
            if now >= next_flush:
                self._observe_committed(None)
                self._guard(self.pipeline.flush)
                next_flush = now + self.settings.flush_interval_s
            if self.retention is not None and now >= next_retention:
                self._guard(self.retention)
                next_retention = now + self.settings.retention_interval_s
            if now >= next_upkeep:
                busy, busy_at_upkeep = self._store_busy_s - busy_at_upkeep, self._store_busy_s
                window = self.settings.maintenance_interval_s + now - next_upkeep
                if self._maintenance is not None and busy < self.settings.low_load_share * window:
                    self._guard(self._maintenance)
                next_upkeep = now + self.settings.maintenance_interval_s
            with self._cond:
                if self._stopping and not self._jobs:
                    break
        self._hand_over(_STOP)  # the store thread finishes what it was given, then stops
        self._store_thread.join()
        self._observe_committed(None, stopped=True)
        self._guard(self.pipeline.drain)
        flushed = self._guard(self.pipeline.flush)
        # What the store could not take now (it is down) goes to the spool for the next start.
        self._guard(lambda: self.pipeline.spool(totals=not flushed))

    def _observe_committed(
        self, handed: _Group | None, stopped: bool = False, wait: bool = True
    ) -> bool:
        """Make the metric updates of the group handed over before `handed` (None: wait
        until the store thread is idle, or has `stopped`, then those of the last one; not
        `wait`: only if it is idle now, else nothing and False). Of a group refused whole,
        only the calls paired from a peer's records are counted (the pairer took the rest
        back: `_take_back`): its clients send it again, and its spans would be counted twice
        (a retry after a ClickHouse outage counted every span of it again in calls_total,
        RED and SLOs)."""
        if handed is None and not stopped:
            with self._cond:
                while not self._store_idle:
                    if not wait:
                        return False
                    self._cond.wait()
        if handed is None:
            self._take_back(None)
        group, self._unobserved = self._unobserved, handed
        if group is not None and group.observations is not None:
            observations, refused = group.observations, group.refused
            self._guard(lambda: self.pipeline.observe(observations, refused))
        return True

    def _take_back(self, later: _Group | None) -> None:
        """If the group the store thread ended last was refused as unavailable, have the
        pairer take back what it made of it (`Pipeline.refuse`), with what `later`, derived
        meanwhile, made of the same spans; before `later` is handed over, so that the store
        thread does not confirm `later`'s entries while the pairer adds to them."""
        group = self._unobserved
        if group is None or not group.refused or group.taken_back or group.observations is None:
            return
        group.taken_back = True
        observations = group.observations
        following = later.observations if later is not None else None
        self._guard(lambda: self.pipeline.refuse(observations, following))

    def _tick(self) -> None:
        """The pipeline's tick. With the store thread idle (low load), the last group's
        updates are made first and the tick also writes the waiting paired calls; while it
        commits, those go with the next group instead (`_carry`), so that this thread,
        which derives the next group meanwhile, does not write them."""
        idle = self._observe_committed(None, wait=False)
        self.pipeline.tick(waiting=idle)

    def _carry(self, group: _Group) -> None:
        """At most every `paired_calls_interval_s`, put the paired calls waiting in the
        backlog into `group`'s transaction, ahead of its own rows, on the store thread (so
        ClickHouse gets one access-log insert for many groups: ADR 0027). Kept in the
        backlog again if the group is refused as unavailable; written on their own if it is
        retried per job."""
        now = time.monotonic()
        if now < self._carry_at or group.derived is None:
            return
        self._carry_at = now + self.settings.paired_calls_interval_s
        group.carried = self.pipeline.backlog.take_waiting()
        if group.carried:
            group.derived.calls = [*group.carried, *group.derived.calls]

    def _hand_over(self, group: _Group) -> None:
        """Give the store thread its next group once it is idle (and the one it ended, if
        refused, taken back first: `_take_back`)."""
        with self._cond:
            while not self._store_idle:
                self._cond.wait()
        self._take_back(group if group is not _STOP else None)
        with self._cond:
            self._handed = group
            self._handed_at = time.monotonic()
            self._store_idle = False
            self._cond.notify_all()

    def _store_run(self) -> None:
        while True:
            with self._cond:
                while self._handed is None:
                    self._cond.wait()
                group, self._handed = self._handed, None
            if group is _STOP:
                return
            began = time.monotonic()
            try:
                self._commit(group)
            finally:
                self._store_busy_s += time.monotonic() - began
                with self._cond:
                    self._store_idle = True
                    self._cond.notify_all()

    def _commit(self, group: _Group) -> None:
        """Commit the group in one transaction and answer its jobs; if that fails, retry
        each job alone (`_isolate`), so one bad batch does not fail its neighbours (not when
        the store is unavailable: every job is refused)."""
        derived = group.derived
        assert derived is not None
        errors: list[BaseException | None] | None = None
        try:
            self.pipeline.store(derived)
        except StoreUnavailableError as exc:
            # Every request is refused and sent again by its client, which derives what this
            # group derived again (pairs, tail-sampled spans): none of it is kept, the pairer
            # takes its spans back and its metric updates are not made, except for calls
            # paired from a peer's records, which no one sends again (`_observe_committed`).
            group.refused = True
            self.pipeline.backlog.keep([], group.carried)
            log.error("store unavailable, %d items refused: %s", group.items, exc)
            errors = [UnavailableError(f"store write failed: {exc}")] * len(group.jobs)
        except Exception as exc:
            log.warning(
                "committing %d items failed (%s); retrying each request alone", group.items, exc
            )
            errors = self._isolate(group, derived)
        else:
            self.committed_items += group.items
            self.commits += 1
        if not group.refused and group.observations is not None:
            # Its calls will be counted (`_observe_committed`): the same spans from now on
            # (a client's retry, a pairing record re-sent) are repeats. Entries are only
            # flagged here: the writer thread's pairer reads a flag either way.
            self.pipeline.pairer.confirm(group.observations.pairing.entries)
        with self._cond:
            self._pending_items -= group.items
        for i, job in enumerate(group.jobs):
            job.done(None if errors is None else errors[i])

    def _isolate(self, group: _Group, derived: Derived) -> list[BaseException | None]:
        """The slow path after a failed group transaction (rolled back): one transaction per
        job with its own rows, then one for what no job owns (tail-sampled spans, the paired
        calls it carried, the backlog). A job that fails alone is answered 400
        (UnstorableError: a value its decoder should have refused, logged as such) while
        other jobs could be stored, else 503 (the store itself is failing). Derived metrics
        were counted once, when the group was derived, and are not counted again."""
        try:
            own, rest = self.pipeline.split(derived, [job.batch for job in group.jobs])
        except Exception as exc:
            log.exception("splitting a failed group of %d items failed", group.items)
            return [UnavailableError(f"store write failed: {exc}")] * len(group.jobs)
        failures: list[tuple[int, Exception]] = []
        for i, (job, part) in enumerate(zip(group.jobs, own, strict=True)):
            try:
                self.pipeline.store(part)
            except Exception as exc:
                failures.append((i, exc))
            else:
                self.committed_items += len(job.batch)
                self.commits += 1
        try:  # kept in the pipeline's backlog if this fails: no request waits for them
            self.pipeline.store_unowned(rest.encoded, calls=group.carried)
        except Exception:
            log.exception(
                "storing %d calls paired from spans and %d encodings of tail-sampled spans"
                " failed; %d rows kept for the next write",
                len(group.carried),
                len(rest.encoded),
                self.pipeline.backlog.rows,
            )
        errors: list[BaseException | None] = [None] * len(group.jobs)
        store_works = len(failures) < len(group.jobs)
        for i, failure in failures:
            if store_works or is_data_error(failure):
                log.error(
                    "a decoder let through an item the store cannot hold (a bug; the "
                    "request is refused): %s: %s",
                    type(failure).__name__,
                    failure,
                )
                errors[i] = UnstorableError(f"a value cannot be stored: {failure}")
            else:
                log.error("store write failed: %s: %s", type(failure).__name__, failure)
                errors[i] = UnavailableError(f"store write failed: {failure}")
        return errors

    def _finish(self, group: _Group, error: BaseException | None) -> None:
        with self._cond:
            self._pending_items -= group.items
        for job in group.jobs:
            job.done(error)

    def _guard(self, action: Callable[[], None]) -> bool:
        """Run `action`; False (logged) if it failed."""
        try:
            action()
        except Exception:
            log.exception("background task %s failed", getattr(action, "__name__", action))
            return False
        return True


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _nobody_waits(error: BaseException | None) -> None:
    """The `done` of a queued batch nobody waits for (its failure is the writer's to log)."""
