"""Ingest worker processes: decompress, decode and prepare request bodies off the owner's GIL.

The process that owns the store runs the listeners and the writer thread; the Python work per
span (decoding, encoding the store's rows, span durations, pairing records: see
`meshscope.pipeline.prepared`) runs in a pool of worker processes. A worker gets the raw
request body (bytes, pickled through a pipe) and returns a `Prepared` (Arrow tables and plain
tuples: cheap to pickle); the owner queues it on the writer, which commits many in one
transaction and only then answers each request (acknowledged = committed).

Bounded: the bytes of bodies in the pool's hands are capped (`max_inflight_bytes`); past it
`submit_encoded` raises OverloadedError at once (-> 429 + Retry-After), and the writer's queue
is bounded in items, so memory stays bounded whatever the offered load.

Bodies of every `BodyKind` (OTLP traces and logs, from HTTP and gRPC alike, and Zipkin JSON)
go to the workers. Metrics are NOT sent to workers: their delta-to-cumulative state lives in
the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, get_args

import pyarrow as pa

from meshscope.ingest.body import BodyError, decompress
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp import Decoded, decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.sink import BodyKind, OverloadedError
from meshscope.ingest.zipkin import decode_zipkin_json
from meshscope.limits.admission import admit_batch, admit_items
from meshscope.model.batch import Batch
from meshscope.pipeline.prepared import Prepared, prepare
from meshscope.pipeline.sampling.facts import SpanMatcher
from meshscope.pipeline.writer import Committer
from meshscope.store.span_columns import ColumnEncoder
from meshscope.store.twophase import SpanEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int = 2
    # Bodies admitted and not yet committed: ~80 requests of 500 spans, 1-2 s of work; more
    # would only add latency (clients time out at 10 s) and memory, not throughput.
    max_inflight_bytes: int = 16 * 1024 * 1024
    # Workers run at a lower CPU priority (nice) than the owner: the owner's threads (HTTP,
    # derive, the store's commit) are the serial path every request waits on, while decoding
    # is parallel work that can fill whatever CPU is left. On 2 cores, +5 raised the
    # sustained ingest rate from 38-40k to 41-43k spans/s (benchmarks/ingest.py, 60 s).
    nice: int = 5

    def __post_init__(self) -> None:
        if self.processes < 0:
            raise ValueError("processes must be >= 0 (0: decode in the owner process)")
        if self.max_inflight_bytes <= 0:
            raise ValueError("max_inflight_bytes must be > 0")
        if not 0 <= self.nice <= 19:
            raise ValueError("nice must be 0..19")


Outcome = tuple[Any, ...]
"""What a worker answers: ("ok", prepared, rejected, error_message) or ("refused", status,
message), errors as values (`refusal`)."""

REFUSED = (BodyError, DecodeError, OverflowError, pa.ArrowInvalid)
"""What a worker answers as a refusal of the body (`refusal`), not as a failure."""


def refusal(error: Exception) -> Outcome:
    """The worker's answer for a body it refused with `error` (one of `REFUSED`)."""
    if isinstance(error, BodyError):
        return ("refused", error.status, error.message)
    if isinstance(error, DecodeError):
        return ("refused", 400, error.message)
    # e.g. a time past 2262 (int64 ns)
    return ("refused", 400, f"a value does not fit the store's columns: {error}")


@dataclass(frozen=True, slots=True)
class SpanPreparation:
    """What a worker needs to prepare OTLP spans for the store (picklable): its column
    encoder and the tail-sampling matcher when sampling is on."""

    columns: ColumnEncoder
    matcher: SpanMatcher | None


def decode_body(kind: BodyKind, body: bytes, json: bool) -> Decoded:
    """Decode a (decompressed) body of `kind`; raises DecodeError."""
    if kind == "zipkin":
        return decode_zipkin_json(body)
    return decode_otlp(kind, body, json=json)


def prepare_body(
    kind: BodyKind,
    raw: bytes,
    encoding: str,
    json: bool,
    max_body_bytes: int,
    encode_spans: SpanEncoder,
    encode_columns: ColumnEncoder | None,
    matcher: SpanMatcher | None = None,
) -> Outcome:
    """Runs in a worker: the whole per-request Python work, errors returned as values.
    With tail sampling (`matcher`), spans are also summarised for the owner's decisions."""
    try:
        body = decompress(raw, encoding, max_body_bytes)
        if kind == "traces" and encode_columns is not None:
            # Straight from the parsed request to the store's rows and derivation inputs.
            return (
                "ok",
                *prepare_traces(body, encode=encode_columns, json=json, matcher=matcher),
            )
        decoded = decode_body(kind, body, json)
        prepared = prepare(decoded.batch, encode_spans, matcher=matcher)
    except REFUSED as error:
        return refusal(error)
    return ("ok", prepared, decoded.rejected, decoded.error_message)


PIPE_BYTES = 1 << 20
"""The size asked for the pool's two pipes (`widen_pipes`): Linux's default limit for an
unprivileged process (/proc/sys/fs/pipe-max-size); a 500-span body is ~0.2 MB, its prepared
rows ~0.34 MB."""


def widen_pipes(pool: ProcessPoolExecutor, size: int = PIPE_BYTES) -> list[int]:
    """Give the pool's pipes (bodies to the workers, results back) room for whole messages;
    returns their sizes (empty where they cannot be read). With Linux's default 64 KiB a
    worker's write of a prepared request blocks until the owner has read all of it, in ~6
    reads that each wait for the owner's GIL (up to a switch interval, 5 ms, when the
    writer thread is deriving): a worker spent 28% of its time there, and the owner's feeder
    thread waited likewise on the way in (ADR 0006, revision 6). Past pipe-max-size (an
    unprivileged process on a host that lowered it) the pipes get that much. The queues are
    the executor's private attributes (CPython 3.11's): a test checks the sizes, so a Python
    that moves them fails it rather than silently losing the gain."""
    sizes: list[int] = []
    if sys.platform != "linux":
        return sizes
    for name in ("_call_queue", "_result_queue"):
        writer = getattr(getattr(pool, name, None), "_writer", None)
        if writer is None:
            continue
        fd = writer.fileno()
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:  # past pipe-max-size: as much as it allows
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _pipe_max_size())
            except OSError as error:  # e.g. the user's pipe pages used up
                log.info("ingest worker pipe left at its size (%s)", error)
        sizes.append(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))
    return sizes


def _pipe_max_size() -> int:
    with open("/proc/sys/fs/pipe-max-size") as limit:
        return int(limit.read())


def _ready() -> bool:
    return True


GC_THRESHOLDS = (50_000, 20, 20)
"""The workers' garbage-collection thresholds (`gc.set_threshold`)."""


def _init_worker(owner_pid: int, nice: int) -> None:
    """Worker initializer: collect garbage less often (a request allocates ~20 objects per
    span, all freed by reference counting), yield the CPU to the owner (`nice`), and exit
    when the owner is gone (e.g. SIGKILLed), instead of waiting forever on a task queue
    whose other end this worker itself keeps open."""
    gc.set_threshold(*GC_THRESHOLDS)
    if nice:
        os.nice(nice)

    def watch() -> None:
        while os.getppid() == owner_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="meshscope-owner-watch", daemon=True).start()


class WorkerSink:
    """An IngestSink (`submit`) that also takes encoded bodies (`submit_encoded`: OTLP traces
    and logs, Zipkin spans), preparing them in worker processes before the writer commits
    them."""

    def __init__(
        self,
        writer: Committer,
        settings: WorkerSettings | None = None,
        max_body_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.writer = writer
        self.settings = settings or WorkerSettings()
        self.max_body_bytes = max_body_bytes
        pipeline = writer.pipeline
        self._encoder = pipeline.span_encoder
        self._columns = pipeline.column_encoder
        self._matcher = pipeline.span_matcher
        self._pool: ProcessPoolExecutor | None = None
        self.pipe_bytes: list[int] = []  # the pool's pipes' sizes (`widen_pipes`)
        self.inflight_bytes = 0
        self.preparing = 0  # bodies in the workers' hands: the writer groups them on arrival
        # Bodies refused before a worker decoded them (429), by reason.
        self.refused_bodies = {"inflight_bytes": 0, "queue_full": 0}
        self.prepared_bodies: dict[str, int] = dict.fromkeys(get_args(BodyKind), 0)
        writer.expect_from(self._preparing)

    def _preparing(self) -> int:
        return self.preparing

    def start(self) -> None:
        """Start the worker processes and wait until each has imported the decoders."""
        if self.settings.processes == 0:
            return
        # spawn: the owner has threads and an open DuckDB file, which must not be forked.
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            self.settings.processes,
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), self.settings.nice),
        )
        self.pipe_bytes = widen_pipes(self._pool)
        for future in [self._pool.submit(_ready) for _ in range(self.settings.processes)]:
            future.result(timeout=120)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def submit(self, batch: Batch | Prepared) -> None:
        await self.writer.submit(batch)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a picklable function in the worker processes (in a thread without them):
        e.g. the cluster's split of a body by trace owner (meshscope.cluster.split)."""
        if self._pool is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def saturated(self) -> bool:
        """Whether a new body would be refused now."""
        return self.inflight_bytes >= self.settings.max_inflight_bytes or self.writer.saturated()

    async def submit_encoded(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded:
        """Decode and prepare a (still compressed) body in a worker, then commit it.
        Returns what the OTLP response needs (rejected counts); raises BodyError,
        DecodeError, OverloadedError or UnavailableError like the in-process path."""
        if self._pool is None:

            def decode() -> Decoded:
                return decode_body(kind, decompress(raw, encoding, self.max_body_bytes), json)

            decoded = await asyncio.to_thread(decode)
            admit_batch(decoded.batch)
            await self.writer.submit(decoded.batch)
            return Decoded(Batch(), decoded.rejected, decoded.error_message, len(decoded.batch))
        with self.reserved(len(raw)):
            outcome = await self.prepare(
                prepare_body,
                kind,
                raw,
                encoding,
                json,
                self.max_body_bytes,
                self._encoder,
                self._columns,
                self._matcher,
            )
            return await self.commit(kind, outcome)

    @property
    def spans_direct(self) -> SpanPreparation | None:
        """What a worker needs to prepare OTLP spans straight into the store's columns
        (`otlp_direct`), or None when this sink does not (no worker processes, or a store
        without a column encoder)."""
        if self._pool is None or self._columns is None:
            return None
        return SpanPreparation(self._columns, self._matcher)

    @contextlib.contextmanager
    def reserved(self, size: int) -> Iterator[None]:
        """Admit a body of `size` bytes into the workers' budget for the block (the one
        admission point: a body counts until its answer, so work a worker did is never thrown
        away by a full writer queue further on); raises OverloadedError when it is full."""
        if self.inflight_bytes and self.inflight_bytes + size > self.settings.max_inflight_bytes:
            self.refused_bodies["inflight_bytes"] += 1
            raise OverloadedError(f"ingest pipeline busy ({self.inflight_bytes} bytes in flight)")
        if self.writer.saturated():  # e.g. by other receivers: refuse before a worker's effort
            self.refused_bodies["queue_full"] += 1
            raise OverloadedError(f"ingest queue full ({self.writer.pending_items} items waiting)")
        self.inflight_bytes += size
        try:
            yield
        finally:
            self.inflight_bytes -= size

    async def prepare(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` (e.g. `prepare_body`, which answers an `Outcome`) in a worker, counted
        as a batch on its way to the writer until it returns: `commit` its outcome next."""
        self.preparing += 1
        try:
            outcome = await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BaseException:
            self.preparing -= 1
            self.writer.nudge()  # (after the count) a batch it may wait for will not come
            raise
        self.preparing -= 1
        return outcome

    async def commit(self, kind: BodyKind, outcome: Outcome) -> Decoded:
        """Commit what a worker prepared from a body of `kind` (or raise its refusal)."""
        queued = False
        try:
            if outcome[0] == "refused":
                raise BodyError(outcome[1], outcome[2])  # answered like in-process failures
            _, prepared, rejected, error_message = outcome
            self.prepared_bodies[kind] += 1
            # The owner learns the item count here: a tenant's limits, before the commit queue.
            admit_items(prepared.span_count, len(prepared.logs), len(prepared.points))
            queued = len(prepared) > 0
            await self.writer.submit(prepared)
        finally:
            if not queued:  # a batch the writer may be waiting for will not come
                self.writer.nudge()
        return Decoded(Batch(), rejected, error_message, len(prepared))
