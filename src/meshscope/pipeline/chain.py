"""The pipeline: every Batch from every receiver goes through here, in one direction.

    catalog  <- services and operations seen
    derive   <- span metrics, request metrics, service graph (+ access logs), BEFORE sampling
    store    <- spans, logs (with access logs), metric points

in two phases: `prepare` (per-span Python work: the store's row encoding, span durations,
pairing records; pure, so ingest worker processes run it next to decoding) and `commit` (in
the store owner: pair, merge metrics, write everything in ONE store transaction). `consume`
does both in-process, for the node and tests.

Derived metrics accumulate in a registry and reach the store on `flush()`, which the server
calls every flush interval (and the node before each answer).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshscope.clock import Clock
from meshscope.model.batch import Batch
from meshscope.model.calls import Call, ProxyRequest
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import Labels, MetricPoint
from meshscope.model.spans import SpanKind
from meshscope.pipeline import spool
from meshscope.pipeline.backlog import Backlog, is_data_error, rows_of
from meshscope.pipeline.derive.registry import MetricsRegistry
from meshscope.pipeline.derive.requestmetrics import RequestMetrics
from meshscope.pipeline.derive.servicegraph import Pairing, ServiceGraphMetrics, SpanPairer
from meshscope.pipeline.derive.spanmetrics import SpanDurations, SpanMetrics
from meshscope.pipeline.prepared import OperationKey, Prepared, prepare
from meshscope.pipeline.sampling.facts import SpanMatcher
from meshscope.pipeline.sampling.head import HeadSamplingFilter
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.store.base import LabelMatcher, MatchOp, Operation, Storage
from meshscope.store.twophase import column_encoder, span_encoder, write_encoded

log = logging.getLogger(__name__)

_MAX_OPERATIONS = 100_000
RESUME_WINDOW_NS = 120 * 10**9
"""Series flushed within this of the store's newest derived sample are the previous process's
last (each flush writes every series; a flush takes well under this)."""


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    servicegraph_ttl_ns: int = 10 * 10**9
    servicegraph_max_pending: int = 1_000_000
    max_series_per_metric: int = 10_000
    # Added to every derived series (a cluster node's `meshscope_node`, ADR 0015).
    series_labels: Labels = ()
    # Where a stop keeps what it could not write (pipeline/spool.py); "": nowhere.
    spool_path: str = ""


@dataclass(slots=True)
class Derived:
    """What one store transaction writes: encoded spans, logs, points, operations, and the
    calls the batches' proxy requests report (stored as access logs). The calls paired from
    spans are not in it: they are written after it (`Observations.paired`)."""

    encoded: list[Any] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def extend(self, other: Derived) -> None:
        """Add what `other` writes (derived later), for one transaction."""
        self.encoded += other.encoded
        self.logs += other.logs
        self.points += other.points
        self.operations += other.operations
        self.calls += other.calls


@dataclass(slots=True)
class Observations:
    """The metric updates (span, request and service-graph metrics: the registry) of the
    batches derived since the last `Pipeline.observe`. Made in one go for a whole group:
    the service graph and request metrics then aggregate per edge and per label set over all
    of the group's calls, not once per batch (batches arrive one by one, and a cluster node
    gets each request in three parts).

    `calls` are those the proxy requests report. The calls paired from spans (`pairing`,
    with the pairer's entries of the batches' spans, which a group commit confirms or a
    refusal takes back: `Pipeline.refuse`, ADR 0023) are no one request's rows: once
    observed they wait in the backlog, and about once a second the writer has them written
    with a group's transaction, or by `tick` when none is being committed: one access-log
    insert for many groups (ADR 0027)."""

    spans: list[SpanDurations] = field(default_factory=list)
    requests: list[ProxyRequest] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    pairing: Pairing = field(default_factory=Pairing)

    def extend(self, other: Observations) -> None:
        self.spans += other.spans
        self.requests += other.requests
        self.calls += other.calls
        self.pairing.extend(other.pairing)

    @property
    def paired(self) -> list[Call]:
        """The calls paired from spans that count: none of whose sides was refused."""
        return SpanPairer.counted(self.pairing.pairs)


def call_from_request(request: ProxyRequest) -> Call:
    return Call(
        source=request.source,
        target=request.service,
        time_ns=request.time_ns,
        failed=request.failed,
        server_duration_ns=request.duration_ns,
        status_code=request.status_code,
        method=request.method,
        path=request.path,
        trace_id=request.trace_id,
        span_id=request.span_id,
    )


class Pipeline:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        settings: PipelineSettings | None = None,
        head: HeadSamplingFilter | None = None,
        tail: TailSampler | None = None,
    ) -> None:
        settings = settings or PipelineSettings()
        self.storage = storage
        self.clock = clock
        self.head = head
        self.tail = tail
        self.registry = MetricsRegistry(settings.max_series_per_metric, clock.now_ns)
        self._series_labels = settings.series_labels
        self._spool_path = Path(settings.spool_path) if settings.spool_path else None
        # Tail sampling buffers spans as the store's encoded rows too (`TailSampler`).
        self.span_encoder = span_encoder(storage)
        self.column_encoder = column_encoder(storage)  # for workers' direct OTLP walk
        self._operation_memo: dict[OperationKey, Operation] = {}
        self.pairer = SpanPairer(settings.servicegraph_ttl_ns, settings.servicegraph_max_pending)
        self._span_metrics = SpanMetrics(self.registry)
        self._request_metrics = RequestMetrics(self.registry)
        self._graph_metrics = ServiceGraphMetrics(self.registry)
        self.backlog = Backlog()

    def resume_derived(self) -> int:
        """After a restart, go on with the derived series from their stored totals (see
        `MetricsRegistry.resume`): the series the previous process flushed last, those whose
        last sample is within `RESUME_WINDOW_NS` of the newest (older ones had stopped with
        an earlier process and are not brought back). With `series_labels` (a cluster node)
        only this node's series. Returns how many were resumed."""
        bounds = {
            **self._span_metrics.metrics(),
            **self._request_metrics.metrics(),
            **self._graph_metrics.metrics(),
        }
        resumed = 0
        spooled = spool.take(self._spool_path) if self._spool_path is not None else None
        if spooled is not None:  # what the last stop could not write: newer than the store
            self.backlog.keep(spooled.encoded, spooled.calls)
            resumed = self.registry.resume(spooled.points, bounds)
            if spooled.pairs is not None:
                self.pairer.restore(spooled.pairs)
            log.info(
                "taken from the spool of the last stop: %d spans and calls, %d derived series,"
                " %d spans waiting for their service-graph pair",
                rows_of(spooled.encoded, spooled.calls),
                resumed,
                len(self.pairer),
            )
        own = [LabelMatcher(name, MatchOp.EQ, value) for name, value in self._series_labels]
        extra = {name for name, _ in self._series_labels}
        now = self.clock.now_ns()
        points = [
            series.samples[-1]
            for name in bounds
            for series in self.storage.metrics.latest(name, own, now, now)
            if series.samples
        ]
        if not points:
            return resumed
        newest = max(point.time_ns for point in points)
        return resumed + self.registry.resume(
            (
                dataclasses.replace(
                    point, labels=tuple(kv for kv in point.labels if kv[0] not in extra)
                )
                for point in points
                if point.time_ns >= newest - RESUME_WINDOW_NS
            ),
            bounds,
        )

    def spool(self, totals: bool) -> None:
        """At stop, after the last writes: keep the spans waiting for their service-graph
        pair, the backlog (and with `totals`, because the last flush failed, the derived
        series' totals) in the spool for the next start; with no spool path the backlog and
        totals are lost, and logged."""
        encoded, calls = self.backlog.take((), ())
        points = self.registry.collect(self.clock.now_ns()) if totals else []
        unwritten = f"{rows_of(encoded, calls)} spans and calls, {len(points)} derived totals"
        if self._spool_path is None:
            if encoded or calls or points:
                log.error("the store could not take %s at stop; they are lost", unwritten)
            return
        if not (encoded or calls or points or len(self.pairer)):
            return
        pairs = self.pairer.state() if len(self.pairer) else None
        spool.save(self._spool_path, spool.Spooled(encoded, calls, points, pairs))
        if encoded or calls or points:
            log.warning(
                "the store could not take %s at stop; kept in %s", unwritten, self._spool_path
            )

    def declare_services(self, services: Sequence[str]) -> None:
        """Services known before they send anything (e.g. an instrumented call chain)."""
        self.storage.catalog.note([Operation(name, "", SpanKind.INTERNAL) for name in services])

    @property
    def span_matcher(self) -> SpanMatcher | None:
        """What `prepare` must summarise spans with for tail sampling (workers are given it)."""
        return self.tail.matcher if self.tail is not None else None

    @property
    def samples_in_process(self) -> bool:
        """Whether `prepare` must run in this process: head sampling counts its decisions
        here. Tail sampling decides here from summaries made wherever spans are decoded."""
        return self.head is not None

    def prepare(self, batch: Batch, count: bool = True) -> Prepared:
        """`prepare` with this pipeline's encoder, buckets, span matcher and head sampling
        (counted in the sampler's stats unless not `count`: a retry of spans already counted)."""
        keep = None
        if self.head is not None:
            keep = self.head.filter if count else self.head.sampled
        return prepare(batch, self.span_encoder, keep, self.span_matcher)

    def consume(self, batch: Batch) -> None:
        """Derive from the batch and write it in one store transaction. When this returns,
        the batch is durable."""
        self.commit([self.prepare(batch)])

    def commit(self, prepared: Sequence[Prepared]) -> None:
        """Derive from prepared batches (made by `prepare`, here or in a worker) and write
        them all in one store transaction, then the calls paired from their spans (and
        what an earlier failed write left) in a second. When this returns, both are
        durable."""
        self.store(self.derive(prepared))
        self.store_unowned()

    def derive(self, prepared: Sequence[Prepared]) -> Derived:
        """Pair, count and sample prepared batches (the Python half of `commit`); the result
        is ready for `store`, which a second thread may run while this one derives the next."""
        out, observations = self.derive_deferred(prepared)
        self.observe(observations)
        self.pairer.confirm(observations.pairing.entries)  # the same spans again: repeats
        return out

    def derive_deferred(self, prepared: Sequence[Prepared]) -> tuple[Derived, Observations]:
        """`derive`, with the metric updates (span, request and service-graph metrics: the
        registry, nothing the store transaction writes) returned to `observe` later, e.g.
        while the store thread commits the group: they are off the acknowledgement's path.
        Observe them (with any others gathered since) before the next `derive`'s, so the
        registry sees batches in order."""
        now = self.clock.now_ns()
        out = Derived()
        requests: list[ProxyRequest] = []
        pairing = Pairing()
        op_keys: dict[OperationKey, None] = {}
        for item in prepared:
            if item.sides:
                # A peer's pairing records (ADR 0015) are settled at once: nothing of them is
                # stored here, and no client sends them again if this group is refused.
                self.pairer.add_sides(item.sides, now, pairing, settled=item.records_only)
            if item.encoded_spans is not None:
                out.encoded.append(item.encoded_spans)
            out.logs += item.logs
            out.points += item.points
            requests += item.requests
            op_keys.update(dict.fromkeys(item.op_keys()))
        out.operations = self._operations(op_keys)
        out.calls = [call_from_request(r) for r in requests if r.source]
        observations = Observations(
            [item.span_metrics for item in prepared if item.span_metrics is not None],
            requests,
            list(out.calls),  # not the transaction's own list: groups join each apart
            pairing,
        )

        # Derived signals see every span; sampling decides what reaches the store.
        if self.tail is not None:
            out.encoded = []
            for item in prepared:
                if item.encoded_spans is None:
                    continue
                if item.traces is None:  # prepared without a summary: never dropped unseen
                    out.encoded.append(item.encoded_spans)
                    continue
                out.encoded += self.tail.offer(item.encoded_spans, item.traces, now)
        return out, observations

    def observe(self, observations: Observations, refused: bool = False) -> None:
        """Make the metric updates `derive_deferred` returned (of one or more derives), and
        queue their paired calls for the next unowned write. Of a group `refused` as
        unavailable (`refuse` first), only the calls paired from spans none of whose sides was
        refused (a cluster peer's pairing records): its clients send the rest again."""
        paired = observations.paired
        if refused:
            self._graph_metrics.observe(paired)
        else:
            self._span_metrics.merge(*observations.spans)
            self._request_metrics.observe(observations.requests)
            self._graph_metrics.observe([*paired, *observations.calls])
        self.backlog.add(paired)

    def refuse(self, observations: Observations, later: Observations | None) -> None:
        """Take back what the pairer made of a group refused as unavailable (`observations`)
        before its clients send it again; `later`: the group derived since and not yet
        handed to the store, whose calls with the refused spans are taken back too and whose
        repeats of them are paired now (`SpanPairer.refuse`)."""
        self.pairer.refuse(
            observations.pairing,
            later.pairing if later is not None else None,
            now_ns=self.clock.now_ns(),
        )

    def split(
        self, derived: Derived, batches: Sequence[Batch | Prepared]
    ) -> tuple[list[Derived], Derived]:
        """What one `derive` of `batches` made, as each batch's own rows and the rest: with
        tail sampling, the spans it released. For the writer's slow path after a failed
        transaction (one transaction per batch, so one bad batch fails alone). Nothing is
        derived again: no metric is counted twice, no span paired twice; raw batches' spans
        are encoded again (as `prepare` did, same sampling)."""
        own: list[Derived] = []
        for batch in batches:
            if isinstance(batch, Batch):
                batch = self.prepare(batch, count=False)
            spans = batch.encoded_spans
            own.append(
                Derived(
                    encoded=[spans] if spans is not None and self.tail is None else [],
                    logs=batch.logs,
                    points=batch.points,
                    operations=self._operations(batch.op_keys()),
                    calls=[call_from_request(r) for r in batch.requests if r.source],
                )
            )
        return own, self.unowned(derived)

    def unowned(self, derived: Derived) -> Derived:
        """What `derived` writes that no one batch of it owns: with tail sampling, the spans
        it released (of these batches or earlier ones)."""
        return Derived(encoded=derived.encoded if self.tail is not None else [])

    def _operations(self, keys: Iterable[OperationKey]) -> list[Operation]:
        """Catalog entries for operation keys, the objects made once per key (bounded)."""
        memo = self._operation_memo
        if len(memo) > _MAX_OPERATIONS:
            memo.clear()
        out = []
        for key in keys:
            op = memo.get(key)
            if op is None:
                op = memo[key] = Operation(key[0], key[1], SpanKind(key[2]))
            out.append(op)
        return out

    def store(self, derived: Derived) -> None:
        """Write what `derive` made in ONE store transaction; durable when this returns."""
        write_encoded(
            self.storage,
            derived.encoded,
            derived.logs,
            derived.points,
            derived.operations,
            derived.calls,
        )

    def store_unowned(
        self,
        encoded: Sequence[Any] = (),
        points: Sequence[MetricPoint] = (),
        calls: Sequence[Call] = (),
        waiting: bool = True,
    ) -> None:
        """Write rows no request waits for (spans tail sampling kept, calls paired from
        spans or expired, derived metric values) in one transaction, after the backlog's:
        the rows of an earlier such write that failed, then (unless not `waiting`) the calls
        paired and not yet written. When the store fails, the spans and calls are
        kept for the next one (`backlog`, bounded; metric values are written whole again
        at the next flush) and the error is raised. A write that failed on a value
        (`is_data_error`: a bug upstream, not an outage) is made again in parts
        (`_write_apart`): only the rows no column holds are dropped (counted, logged)."""
        encoded, calls = self.backlog.take(encoded, calls, waiting)
        if not (encoded or points or calls):
            return
        try:
            write_encoded(self.storage, encoded, points=points, calls=calls)
        except Exception as error:
            if not is_data_error(error):
                self.backlog.keep(encoded, calls)
                raise
            if points:  # the registry's values (written whole again at the next flush)
                try:
                    write_encoded(self.storage, [], points=points)
                except Exception as alone:
                    if not is_data_error(alone):
                        self.backlog.keep(encoded, calls)
                        raise
                    log.error("%d derived metric values not written: %s", len(points), alone)
            self._write_apart(encoded, calls)

    def _write_apart(self, encoded: Sequence[Any], calls: Sequence[Call]) -> None:
        """Write rows whose write failed on a value in halves, and their failing halves in
        halves again, down to single items (a span encoding or a call) that fail alone:
        only those are dropped (counted in the backlog's drops, logged). Bounded: after
        MAX_APART_WRITES writes (and the pair under way) the parts that failed are dropped
        whole. A store error on the way keeps what is not written yet (the backlog) and is
        raised."""
        parts = [(list(encoded), list(calls))]
        writes = dropped = 0
        first_error: BaseException | None = None
        while parts:
            if writes >= MAX_APART_WRITES:  # what is left failed as a whole: dropped so
                for part in parts:
                    self.backlog.drop(*part)
                    dropped += rows_of(*part)
                break
            halves = list(_halves(*parts.pop()))
            while halves:
                half = halves.pop(0)
                if not (half[0] or half[1]):
                    continue
                writes += 1
                try:
                    write_encoded(self.storage, half[0], calls=half[1])
                except Exception as error:
                    if not is_data_error(error):
                        rest = [half, *halves, *parts]
                        self.backlog.keep(
                            [item for part in rest for item in part[0]],
                            [call for part in rest for call in part[1]],
                        )
                        raise
                    first_error = first_error or error
                    if len(half[0]) + len(half[1]) > 1:
                        parts.append(half)
                    else:
                        self.backlog.drop(*half)
                        dropped += rows_of(*half)
        if dropped:
            log.error(
                "dropped %d rows no column holds (a value a decoder or the derivation should"
                " have refused: a bug) and wrote the rest: %s",
                dropped,
                first_error,
            )

    def tick(self, waiting: bool = True) -> None:
        """Write the kept spans of traces whose tail-sampling wait has passed, and the
        backlog (what an earlier failed write left; unless not `waiting`, the calls paired
        and not yet written)."""
        kept = self.tail.tick(self.clock.now_ns()) if self.tail is not None else []
        self.store_unowned(kept, waiting=waiting)

    def drain(self) -> None:
        """Decide every buffered trace now and write what is kept (on shutdown)."""
        kept = self.tail.drain(self.clock.now_ns()) if self.tail is not None else []
        self.store_unowned(kept)

    def flush(self, changed_only: bool = False) -> None:
        """Expire service-graph state and write the derived metrics' current values."""
        now = self.clock.now_ns()
        calls = self.pairer.expire(now)
        if calls:
            self._graph_metrics.observe(calls)
        points = self.registry.collect(now, changed_only=changed_only)
        if points and self._series_labels:
            points = [_labelled(point, self._series_labels) for point in points]
        # One durable commit for both (each costs a synced log page).
        self.store_unowned(points=points, calls=calls)


MAX_APART_WRITES = 64
"""Writes `Pipeline._write_apart` makes at most: one bad row among 2**30 is found alone (two
writes per halving)."""


def _halves(
    encoded: list[Any], calls: list[Call]
) -> tuple[tuple[list[Any], list[Call]], tuple[list[Any], list[Call]]]:
    """Span encodings and calls as two parts of about as many items each (an encoding is
    one item)."""
    middle = (len(encoded) + len(calls)) // 2
    cut = max(middle - len(encoded), 0)
    return (encoded[:middle], calls[:cut]), (encoded[middle:], calls[cut:])


def _labelled(point: MetricPoint, extra: Labels) -> MetricPoint:
    """`point` with the `extra` labels added (kept sorted by name, as `Labels` are)."""
    return dataclasses.replace(point, labels=tuple(sorted((*point.labels, *extra))))
