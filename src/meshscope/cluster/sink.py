"""ClusterSink: the sink receivers see in cluster mode. It splits each still-encoded body by
trace owner (in the ingest workers when there are any), hands this node's part to the local
sink (the workers and writer, unchanged) and forwards the others, answering only when every
part is committed by its owner. With worker processes, a traces body is split and this
node's share prepared for the store in one worker call (`split.route_traces`): a body that is
all this node's costs the workers what it costs on a single node. Over a shared store
(`cluster.shards`) without tail sampling, a traces body is stored here whole and the owners
get only their traces' pairing records, which they queue for their pairing (`take_sides`):
span rows and span metrics need no owner, pairing does (ADR 0015, revision 2026-12-07); a
Zipkin body likewise (`split.route_zipkin`); and a logs body is stored here whole (nothing
is derived from log records).

Failures: when any part fails, the request fails with the most telling error (503 over 429
over 400); parts that did commit stay committed, so the client's retry may store them twice
(at-least-once, like a failed ClickHouse write part way: ADR 0011). Batches submitted decoded
(metrics, Loki push, remote_write, scrapes) are not routed: they stay on this node.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from meshscope.cluster.forward import Forwarder, Reply
from meshscope.cluster.ring import Ring
from meshscope.cluster.sides import decode_sides
from meshscope.cluster.split import (
    Part,
    Routed,
    Table,
    route_traces,
    route_zipkin,
    split_watching,
)
from meshscope.ingest.body import BodyError, decompress
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.sink import (
    BodyKind,
    IngestSink,
    OverloadedError,
    PartlyStoredError,
    UnavailableError,
    takes_encoded,
)
from meshscope.ingest.workers import WorkerSink, decode_body
from meshscope.limits.admission import admit_batch, admit_body_items, current_admission
from meshscope.model.batch import Batch
from meshscope.pipeline.prepared import Prepared
from meshscope.pipeline.writer import Committer

_MAX_WATCHED = 1_000_000
"""Split trace ids remembered at most (so each is counted once) until the next ring change."""


class ClusterSink:
    def __init__(
        self,
        local: IngestSink,
        ring: Ring,
        forwarder: Forwarder,
        max_body_bytes: int,
        workers: WorkerSink | None = None,
        saturated: Callable[[], bool] = lambda: False,
        watch_s: float = 30.0,
        shared_store: bool = False,
        committer: Committer | None = None,
    ) -> None:
        """`workers`: the local sink's worker processes, when it has them (`local` itself
        or in front of it): bodies are split there, and a traces body's local share prepared
        in the same call. `saturated`: whether the local sink refuses new work now; then a
        body is refused (429) before the workers spend a split on it. `watch_s`: how long
        after a ring change spans of traces in flight at it are looked for (split traces).
        `shared_store`: every node writes to and reads from the same (sharded) store; then,
        without tail sampling, a node stores every span it receives and sends the owners
        only their traces' pairing records. `committer`: where pairing records that peers
        send here are committed (the local writer)."""
        self.local = local
        self.forwarder = forwarder
        self.max_body_bytes = max_body_bytes
        self._workers = workers
        self._saturated = saturated
        self.watch_s = watch_s
        self.shared_store = shared_store
        self._committer = committer
        self.split_requests = 0
        self.refused_requests = 0  # refused (429) before they were split: this node is busy
        self.split_traces = 0  # in flight at a ring change, spans routed to the new owner
        self._split_seen: set[bytes] = set()
        self._watch_until = 0.0
        self.ring = ring
        self.table = Table(ring.peers, ring.owners, forwarder.node_id)

    def use(self, ring: Ring) -> None:
        """Route by `ring` from now on (membership changes, from their thread). For `watch_s`
        the slots that changed owner are watched for spans of traces in flight now."""
        old, new = self.ring, ring
        moved = bytes(
            int(old.peers[a] != new.peers[b]) for a, b in zip(old.owners, new.owners, strict=True)
        )
        self._split_seen = set()
        self._watch_until = time.monotonic() + self.watch_s if any(moved) else 0.0
        table = Table(ring.peers, ring.owners, self.forwarder.node_id)
        if any(moved):
            table = dataclasses.replace(table, moved=moved, changed_ns=time.time_ns())
        self.ring, self.table = ring, table

    async def submit(self, batch: Batch) -> None:
        await self.local.submit(batch)

    async def submit_encoded(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded:
        table = self.table
        if table.moved and time.monotonic() > self._watch_until:
            table = self.table = dataclasses.replace(table, moved=b"", changed_ns=0)
        if (len(table.peers) < 2 and not table.moved) or (kind == "logs" and self.shared_store):
            # Nothing is derived from log records: over the shared shards any node writes
            # one to its trace's shard, where its trace's owner would have written it.
            return await self.submit_local(kind, raw, encoding, json=json)
        if self._saturated():
            self.refused_requests += 1
            raise OverloadedError("ingest pipeline busy, not splitting the request")
        workers = self._workers
        spans = workers.spans_direct if workers is not None else None
        # Over the shared store, spans stay here and only their pairing records go to their
        # owners; not with tail sampling, which decides on whole spans.
        pairs_only = self.shared_store and spans is not None and spans.matcher is None
        if kind == "traces" and workers is not None and spans is not None:
            return await self._routed(
                workers, "traces", route_traces, raw, encoding, json, table,
                self.max_body_bytes, spans, pairs_only,
            )  # fmt: skip
        if kind == "zipkin" and workers is not None and pairs_only:
            encoder = workers.writer.pipeline.span_encoder
            return await self._routed(
                workers, "zipkin", route_zipkin, raw, encoding, table, self.max_body_bytes,
                encoder,
            )  # fmt: skip
        parts: dict[str, Part] | None
        parts, split = await self._offload(
            split_watching, kind, raw, encoding, json, table, self.max_body_bytes
        )
        self._count_split(split)
        if parts is None:
            return await self.submit_local(kind, raw, encoding, json=json)
        mine = parts.pop(table.local, None)
        items = sum(part.items for part in parts.values()) + (0 if mine is None else mine.items)
        local = (
            None
            if mine is None
            else functools.partial(self.submit_local, kind, mine.body, "identity", json=mine.json)
        )
        return await self._spread(kind, items, local, parts)

    async def _routed(
        self, workers: WorkerSink, kind: BodyKind, route: Callable[..., Routed], raw: bytes,
        *args: Any,
    ) -> Decoded:  # fmt: skip
        """A body split by owner, and this node's share prepared, in one worker call
        (`route(raw, *args)`: `split.route_traces` or `route_zipkin`)."""
        with workers.reserved(len(raw)):
            routed: Routed = await workers.prepare(route, raw, *args)
            self._count_split(routed.split)
            local = functools.partial(workers.commit, kind, routed.outcome)
            if not routed.parts:
                return await local()
            return await self._spread(kind, routed.spans, local, routed.parts, routed.parts_kind)

    async def _spread(
        self,
        kind: BodyKind,
        items: int,
        local: Callable[[], Awaitable[Decoded]] | None,
        parts: dict[str, Part],
        parts_kind: str | None = None,
    ) -> Decoded:
        """Store this node's share (`local()`) and forward the other owners' `parts` (of
        `parts_kind`, by default `kind`) at the same time; answer when all of them are
        committed. Pairing records go first, and the share here is stored only once every
        owner took its records: a request an owner cannot take then stores nothing (its
        retry is stored, and its spans counted, once), at the cost of the owners' answer
        in each request's latency (ADR 0015)."""
        self.split_requests += 1
        # With limits on, the whole request is charged to its tenant here, before any part is
        # stored or forwarded (a refused request stores nothing); the parts then go uncharged.
        admit_body_items(kind, items)
        uncharged = current_admission.set(None)
        sent = parts_kind or kind
        try:
            pending: list[Awaitable[Decoded | Reply]] = [
                self.forwarder.send(peer, sent, part) for peer, part in parts.items()
            ]
            if local is not None and sent != "sides":
                pending.insert(0, local())
            results = await asyncio.gather(*pending, return_exceptions=True)
            if local is not None and sent == "sides":  # the records went first
                refused = [result for result in results if isinstance(result, BaseException)]
                if refused:
                    raise _worst(refused)  # nothing stored here
                results.append(await local())
        finally:
            current_admission.reset(uncharged)
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            worst = _worst(errors)
            if isinstance(worst, UnavailableError):  # some parts may be stored, even a late one
                raise PartlyStoredError(str(worst)) from worst
            raise worst
        rejected, messages = 0, []
        for result in results:
            assert isinstance(result, Decoded | Reply)
            rejected += result.rejected
            if result.error_message:
                messages.append(result.error_message)
        return Decoded(Batch(), rejected, "; ".join(messages))

    def _count_split(self, split: frozenset[bytes]) -> None:
        if split:
            new = split - self._split_seen
            self.split_traces += len(new)
            if len(self._split_seen) < _MAX_WATCHED:
                self._split_seen |= new

    async def _offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a picklable function off the event loop: in the workers, or a thread."""
        if self._workers is not None:
            return await self._workers.offload(fn, *args)
        return await asyncio.to_thread(fn, *args)

    async def take_sides(self, raw: bytes, encoding: str) -> Decoded:
        """Queue pairing records a peer sent (`cluster/sides.py`; `raw` compressed by
        `encoding`) for this node's pairing, where they join its own spans' records. Not
        waiting for a commit: they are not stored, only what is paired from them is (later,
        as this node's own calls are: ADR 0027). Raises DecodeError on a body that holds
        anything else, OverloadedError when the writer's queue is full."""
        if self._committer is None:
            raise UnavailableError("this node has no writer for pairing records")
        sides = decode_sides(decompress(raw, encoding, self.max_body_bytes))
        await self._committer.queue(Prepared(sides=sides))
        return Decoded(Batch(), 0, "", len(sides))

    async def submit_local(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded:
        """Store a body on this node (no routing): also what the internal route does."""
        if takes_encoded(self.local):
            return await self.local.submit_encoded(kind, raw, encoding, json=json)

        def decode() -> Decoded:
            return decode_body(kind, decompress(raw, encoding, self.max_body_bytes), json)

        decoded = await asyncio.to_thread(decode)
        if len(decoded.batch):
            admit_batch(decoded.batch)
            await self.local.submit(decoded.batch)
        return Decoded(Batch(), decoded.rejected, decoded.error_message)


_RANK: tuple[type[BaseException], ...] = (UnavailableError, OverloadedError, BodyError, DecodeError)


def _worst(errors: list[BaseException]) -> BaseException:
    """The error the client should see: unavailable (503) first, then overloaded (429), then
    refusals (4xx); anything unexpected before all of them (a 500, logged by the receiver)."""
    for error in errors:
        if not isinstance(error, _RANK):
            return error
    return min(errors, key=lambda e: next(i for i, t in enumerate(_RANK) if isinstance(e, t)))
