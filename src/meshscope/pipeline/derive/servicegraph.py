"""The service graph: calls between services, derived from spans like the OTel servicegraph
connector, and written as its metrics.

A call is a parent->child span pair whose services differ (CLIENT->SERVER, PRODUCER->CONSUMER,
or a SERVER span whose parent lives in another service). Spans may arrive in any order and in
different batches: each side waits up to `ttl_ns` for the other. A CLIENT/PRODUCER span that is
never paired but names its peer (`db.system`, `peer.service`, `server.address`, ...) becomes a
call to a virtual node when it expires. Everything unpaired or evicted is counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

import numpy as np

from meshscope.model.attributes import AttrValue, attr_str
from meshscope.model.calls import UNOBSERVED, Call
from meshscope.model.metrics import Labels, MetricType
from meshscope.model.spans import Span, SpanKind
from meshscope.pipeline.derive.deltas import SMALL, Deltas, Slots, one_value
from meshscope.pipeline.derive.registry import MetricsRegistry

REQUESTS = "traces_service_graph_request_total"
FAILED = "traces_service_graph_request_failed_total"
SERVER_SECONDS = "traces_service_graph_request_server_seconds"
CLIENT_SECONDS = "traces_service_graph_request_client_seconds"
DEFAULT_BUCKETS_S: tuple[float, ...] = (
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
)  # fmt: skip
PEER_ATTRIBUTES = ("peer.service", "db.name", "db.namespace", "server.address", "net.peer.name")
_CALLER_KINDS = (SpanKind.CLIENT, SpanKind.PRODUCER)
_CALLERS = (int(SpanKind.CLIENT), int(SpanKind.PRODUCER))
_MESSAGING_KINDS = (SpanKind.PRODUCER, SpanKind.CONSUMER)

SpanKey = tuple[str, str]  # (trace_id, span_id)


class Side(NamedTuple):
    """What pairing needs of a span: kept instead of the span itself (a span with its
    attributes is ~20x larger, and up to `max_pending` of these live for the TTL). A plain
    tuple, so ingest workers make them and send them to the store owner cheaply."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    kind: int  # a SpanKind value
    start_ns: int
    duration_ns: int
    is_error: bool
    status_code: int
    method: str
    path: str
    peer: str  # the first peer attribute named, for virtual nodes
    db_system: str


MAX_STATUS = 2**31 - 1
"""The largest status code a call keeps (its stores' columns are int32)."""


def side_of(span: Span) -> Side:
    """The one place a span is reduced to its pairing record (in-process and in workers)."""
    return Side(
        *side_fields(
            span.trace_id,
            span.span_id,
            span.parent_span_id,
            span.service,
            int(span.kind),
            span.start_ns,
            span.duration_ns,
            span.is_error,
            span.attributes,
        )
    )


def side_fields(
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    service: str,
    kind: int,
    start_ns: int,
    duration_ns: int,
    is_error: bool,
    attrs: Mapping[str, AttrValue],
) -> tuple[Any, ...]:
    """A Side's fields as a plain tuple, from a span's parts (also used by decoders that
    never build a model span). The HTTP status is the attribute's integer when a status
    column (int32) holds it, else 0 (unknown): a call's access log must be storable
    whatever a span says (a status of 2**40 failed every access-log write it went with)."""
    status = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    caller = kind in _CALLERS
    return (
        trace_id,
        span_id,
        parent_span_id,
        service,
        kind,
        start_ns,
        duration_ns,
        is_error,
        status if type(status) is int and 0 <= status <= MAX_STATUS else 0,
        attr_str(attrs, "http.request.method", "http.method"),
        attr_str(attrs, "url.path", "http.target", "http.route"),
        attr_str(attrs, *PEER_ATTRIBUTES) if caller else "",
        attr_str(attrs, "db.system") if caller else "",
    )


# Field positions of a Side: the pairer indexes plain tuples (what workers send) directly.
_TRACE, _SPAN, _PARENT, _SERVICE, _KIND, _START, _DURATION, _ERROR = range(8)
_STATUS, _METHOD, _PATH, _PEER, _DB = range(8, 13)

# What the pairer remembers per span: [side, arrived_ns, paired, state] (a list: cheapest to
# make). `paired`: the calls made with it that stand (a count; spools before session 16 hold
# a bool). The state is PENDING until the group that brought the span was committed
# (`confirm`: COMMITTED) or refused as unavailable (`refuse`: REFUSED, then forgotten).
_Seen = list[Any]
_ARRIVED, _PAIRED, _STATE = 1, 2, 3
PENDING, COMMITTED, REFUSED = 0, 1, 2  # 0 and 1 are what spools of session 15 hold (bools)
PairingState = tuple[dict[SpanKey, _Seen], dict[SpanKey, list[_Seen]]]
"""A pairer's spans by key, and the children waiting for each missing parent."""
Pair = tuple[Call, _Seen, _Seen]
"""A call and the entries of its parent and child side: it counts once neither is REFUSED."""


@dataclass(slots=True)
class Pairing:
    """What `SpanPairer.add_sides` made of one commit group's spans: their entries (for
    `confirm` once the group is committed, or `refuse`), the calls made with their two
    sides, and the spans left out as repeats of a span whose own group was still being
    committed (`deferred`, with that span's entry: paired after all if that group is
    refused)."""

    entries: list[_Seen] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    deferred: list[tuple[tuple[Any, ...], _Seen]] = field(default_factory=list)

    def extend(self, other: Pairing) -> None:
        self.entries += other.entries
        self.pairs += other.pairs
        self.deferred += other.deferred


@dataclass(slots=True)
class PairingStats:
    paired: int = 0
    virtual: int = 0
    expired_unpaired: int = 0
    evicted: int = 0
    repeated: int = 0  # a span again once committed, or while its group commits: left out
    refused: int = 0  # spans of groups refused as unavailable: forgotten, sent again


_new_call = tuple.__new__  # `Call(...)` without its Python-level __new__ (a call per pair)


def _call(parent: tuple[Any, ...], child: tuple[Any, ...]) -> Call:
    parent_kind, child_kind = parent[_KIND], child[_KIND]
    messaging = parent_kind in _MESSAGING_KINDS or child_kind in _MESSAGING_KINDS
    return _new_call(
        Call,
        (
            parent[_SERVICE],
            child[_SERVICE],
            parent[_START],
            parent[_ERROR] or child[_ERROR],
            parent[_DURATION] if parent_kind in _CALLER_KINDS else UNOBSERVED,
            child[_DURATION],
            "messaging_system" if messaging else "",
            child[_STATUS],
            child[_METHOD],
            child[_PATH],
            child[_TRACE],
            child[_SPAN],
        ),
    )


def _virtual_call(client: tuple[Any, ...]) -> Call | None:
    db_system = client[_DB]
    target = client[_PEER] or db_system
    if not target or client[_KIND] not in _CALLER_KINDS:
        return None
    return Call(
        source=client[_SERVICE],
        target=target,
        time_ns=client[_START],
        failed=client[_ERROR],
        client_duration_ns=client[_DURATION],
        connection_type="database" if db_system else "virtual_node",
        trace_id=client[_TRACE],
        span_id=client[_SPAN],
    )


RETRY_HOLD_NS = 60 * 10**9
"""How long a span whose call was taken back (`SpanPairer.refuse`) waits for the retry of
its other side, from the refusal: longer than exporters wait between retries (the OTel
SDKs' backoff reaches 32 s, the Collector's `retry_on_failure` 30 s), so a call refused
during a store outage is paired when its client sends it again, however long the outage
(each refusal of a retry starts the wait again)."""


class SpanPairer:
    """Turns spans into Calls. Bounded: at most `max_pending` spans are remembered."""

    def __init__(
        self,
        ttl_ns: int = 10 * 10**9,
        max_pending: int = 1_000_000,
        hold_ns: int = RETRY_HOLD_NS,
    ) -> None:
        self.ttl_ns = ttl_ns
        self.max_pending = max_pending
        self.hold_ns = hold_ns
        self.stats = PairingStats()
        self._seen: dict[SpanKey, _Seen] = {}
        self._orphans: dict[SpanKey, list[_Seen]] = {}
        self._held: dict[SpanKey, int] = {}
        """Spans waiting for the retry of a taken-back call's other side, until when: `expire`
        keeps them past their TTL until then (they go to the end of the maps each TTL, so
        both stay in arrival order)."""

    def add(self, spans: Sequence[Span], now_ns: int) -> list[Call]:
        return self.add_sides([side_of(span) for span in spans], now_ns)

    def add_sides(
        self,
        sides: Iterable[tuple[Any, ...]],
        now_ns: int,
        into: Pairing | None = None,
        settled: bool = False,
    ) -> list[Call]:
        """Pair `Side` records (or plain tuples of a Side's fields, as workers send them).
        With `into`, what a commit group's writer needs (`Pairing`): the entries made (none
        when `settled`: a peer's records, committed at once, as nothing of them is stored
        here and no one sends them again), the calls with their sides, the repeats deferred.
        A span seen again once committed (a client's retry of a request it never got the
        answer to, a record re-sent to its trace's owner after another owner failed the
        request) is left out: its calls were counted; so is one seen again while its group
        is being committed (deferred: paired by `refuse` if that group is refused). A
        refused span is forgotten (`refuse`): its client's retry is what pairs, and counts."""
        calls: list[Call] = []
        seen, orphans = self._seen, self._orphans
        stats = self.stats
        pairs = into.pairs if into is not None else None
        added = into.entries if into is not None and not settled else None
        state = COMMITTED if settled else PENDING
        for side in sides:
            trace_id = side[_TRACE]
            key = (trace_id, side[_SPAN])
            earlier = seen.get(key)
            if earlier is not None and earlier[0] == side:
                if earlier[_STATE] == COMMITTED:
                    stats.repeated += 1
                    continue
                if into is not None:  # PENDING: its group is being committed
                    stats.repeated += 1
                    into.deferred.append((side, earlier))
                    continue
            entry: _Seen = [side, now_ns, 0, state]
            seen[key] = entry
            if added is not None:
                added.append(entry)
            parent_id = side[_PARENT]
            if parent_id:
                parent_key = (trace_id, parent_id)
                parent = seen.get(parent_key)
                if parent is None:
                    waiting = orphans.get(parent_key)
                    if waiting is None:
                        orphans[parent_key] = [entry]
                    else:
                        waiting.append(entry)
                elif parent[0][_SERVICE] != side[_SERVICE]:
                    parent[_PAIRED] += 1
                    entry[_PAIRED] += 1
                    stats.paired += 1
                    call = _call(parent[0], side)
                    calls.append(call)
                    if pairs is not None:
                        pairs.append((call, parent, entry))
            if orphans:
                for child in orphans.pop(key, ()):
                    if child[0][_SERVICE] != side[_SERVICE]:
                        entry[_PAIRED] += 1
                        child[_PAIRED] += 1
                        stats.paired += 1
                        call = _call(side, child[0])
                        calls.append(call)
                        if pairs is not None:
                            pairs.append((call, entry, child))
        if len(seen) > self.max_pending or len(orphans) > self.max_pending:
            calls.extend(self._evict_over_capacity())
        return calls

    def expire(self, now_ns: int) -> list[Call]:
        """Forget spans older than the TTL; unpaired callers naming a peer become virtual calls."""
        calls: list[Call] = []
        cutoff = now_ns - self.ttl_ns
        seen, orphans, held = self._seen, self._orphans, self._held
        expired = []
        for key, entry in seen.items():
            if entry[_ARRIVED] > cutoff:
                break
            expired.append(key)
        for key in expired:
            entry = seen.pop(key)
            if held and held.get(key, 0) > now_ns:  # waits on, from the end
                entry[_ARRIVED] = now_ns
                seen[key] = entry
                continue
            held.pop(key, None)
            self._retire(entry, calls)
        expired, later = [], []
        for key, children in orphans.items():
            first = children[0]
            if held and (first[0][_TRACE], first[0][_SPAN]) in held:
                later.append(key)  # a held child (first in its list) was refreshed above
                continue
            if first[_ARRIVED] > cutoff:
                break
            expired.append(key)
        for key in later:  # to the end: the map stays in arrival order
            orphans[key] = orphans.pop(key)
        for key in expired:  # (a held child is always first in its list: `refuse`)
            del orphans[key]
        return calls

    def _retire(self, entry: _Seen, calls: list[Call]) -> None:
        if entry[_PAIRED]:
            return
        virtual = _virtual_call(entry[0])
        if virtual is not None:
            self.stats.virtual += 1
            calls.append(virtual)
        elif entry[0][_KIND] in _CALLER_KINDS:
            self.stats.expired_unpaired += 1

    def _evict_over_capacity(self) -> list[Call]:
        calls: list[Call] = []
        seen, orphans = self._seen, self._orphans
        for key in list(islice(seen, max(0, len(seen) - self.max_pending))):
            self.stats.evicted += 1
            self._held.pop(key, None)
            self._retire(seen.pop(key), calls)
        for key in list(islice(orphans, max(0, len(orphans) - self.max_pending))):
            del orphans[key]
            self.stats.evicted += 1
        return calls

    def __len__(self) -> int:
        return len(self._seen)

    @staticmethod
    def confirm(entries: Iterable[_Seen]) -> None:
        """The entries `add_sides` made for a group now committed: the same spans again
        are repeats from now on. (Only a flag: the store thread sets it.)"""
        for entry in entries:
            entry[_STATE] = COMMITTED

    def refuse(
        self, group: Pairing, later: Pairing | None = None, now_ns: int | None = None
    ) -> None:
        """Forget the spans of a group refused as unavailable, as if they had not come: their
        clients send them again, and those are paired then. `later`: what the next group,
        derived meanwhile and not yet committed, made. The calls made with the refused spans
        (by the group and by `later`) are taken back: their other side, when a child that is
        not refused, waits for its parent again (the retry of a refused client span found
        nothing waiting, and the call was never counted), or pairs now, into `later`, with a
        parent that took the refused one's place meanwhile; and the repeats `later` deferred
        of the refused spans are paired now, into `later`, as first arrivals. With `now_ns`,
        the other sides that wait again do so for `hold_ns` from now (`RETRY_HOLD_NS`)."""
        seen, orphans = self._seen, self._orphans
        entries = group.entries
        taken_back = {id(entry) for entry in entries}
        # The calls made with these spans, not already taken back by an earlier refusal: the
        # child of each (when it is not taken back itself) waits for its parent again.
        undone = [
            (parent, child)
            for _, parent, child in [*group.pairs, *(later.pairs if later is not None else ())]
            if (id(parent) in taken_back or id(child) in taken_back)
            and parent[_STATE] != REFUSED
            and child[_STATE] != REFUSED
        ]
        for entry in entries:
            entry[_STATE] = REFUSED
            side = entry[0]
            key = (side[_TRACE], side[_SPAN])
            if seen.get(key) is entry:
                del seen[key]
                self._held.pop(key, None)
            if side[_PARENT]:
                parent_key = (side[_TRACE], side[_PARENT])
                waiting = orphans.get(parent_key)
                if waiting is not None:
                    kept = [child for child in waiting if child is not entry]
                    if not kept:
                        del orphans[parent_key]
                    elif len(kept) < len(waiting):
                        orphans[parent_key] = kept
        self.stats.paired -= len(undone)
        for parent, child in undone:
            parent[_PAIRED] -= 1  # a caller left with none becomes a virtual call on expiry
            child[_PAIRED] -= 1
            if child[_STATE] == REFUSED:
                if parent[_STATE] != REFUSED and now_ns is not None:
                    self._hold(parent, now_ns)  # for the child's retry
                continue  # taken back itself: its retry pairs
            child_side = child[0]
            parent_key = (child_side[_TRACE], child_side[_PARENT])
            now = seen.get(parent_key)
            if later is not None and now is not None:
                if now[0][_SERVICE] != child_side[_SERVICE]:
                    now[_PAIRED] += 1
                    child[_PAIRED] += 1
                    self.stats.paired += 1
                    later.pairs.append((_call(now[0], child_side), now, child))
                continue
            if now_ns is not None:
                self._hold(child, now_ns)  # for the parent's retry
            # First in its list, the list last: the list expires by its first child's time,
            # and the map stays in arrival order.
            waiting = [other for other in orphans.pop(parent_key, ()) if other is not child]
            orphans[parent_key] = [child, *waiting]
        self.stats.refused += len(entries)
        if later is not None and later.deferred:
            again = [side for side, first in later.deferred if id(first) in taken_back]
            if again:
                later.deferred = [d for d in later.deferred if id(d[1]) not in taken_back]
                self.stats.repeated -= len(again)
                arrived = max(entry[_ARRIVED] for entry in entries)
                self.add_sides(again, arrived, later)

    def _hold(self, entry: _Seen, now_ns: int) -> None:
        """Keep `entry` (a remembered span) until `hold_ns` from now, from the end of the map."""
        side = entry[0]
        key = (side[_TRACE], side[_SPAN])
        if self._seen.get(key) is entry:
            del self._seen[key]
            entry[_ARRIVED] = now_ns
            self._seen[key] = entry
            self._held[key] = now_ns + self.hold_ns

    @staticmethod
    def counted(pairs: Iterable[Pair]) -> list[Call]:
        """The calls of `pairs` to count: those neither of whose sides was refused."""
        return [
            call
            for call, parent, child in pairs
            if parent[_STATE] != REFUSED and child[_STATE] != REFUSED
        ]

    def state(self) -> PairingState:
        """The spans remembered for pairing (their entries shared between the two maps, as
        pickle keeps them), for a restart to go on with (pipeline/spool.py): a call whose
        two sides arrive either side of a restart was never paired."""
        return self._seen, self._orphans

    def restore(self, state: PairingState) -> None:
        """Take the pairing state `state` gave (before any span arrives). Entries of an
        earlier version's with no state were committed before its stop; those still
        PENDING (False in session 15's spools: a group refused, never taken back) are
        dropped, as `refuse` drops them now."""
        seen, orphans = state
        for entry in seen.values():  # the orphans' entries are these same lists
            if len(entry) == _STATE:
                entry.append(COMMITTED)
        self._seen = {key: entry for key, entry in seen.items() if entry[_STATE] != PENDING}
        self._orphans, self._held = {}, {}
        for key, waiting in orphans.items():
            kept = [child for child in waiting if child[_STATE] != PENDING]
            if kept:
                self._orphans[key] = kept


_REQUESTS_HELP = "Calls between two services."
_FAILED_HELP = "Failed calls between two services."


_MAX_EDGES = 100_000
"""Edges numbered before the deltas are handed over early and the numbering restarts."""
EdgeKey = tuple[str, str, str]  # (client, connection type, server)


def _edge_labels(edge: EdgeKey) -> Labels:
    source, connection_type, target = edge
    return (("client", source), ("connection_type", connection_type), ("server", target))


class ServiceGraphMetrics:
    """Writes calls as the servicegraph connector's metrics: counted per group in
    `observe`, into the series when the registry collects (`deltas.py`, ADR 0024)."""

    def __init__(
        self, registry: MetricsRegistry, buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S
    ) -> None:
        self._registry = registry
        self._buckets = buckets_s
        self._edges: Slots[EdgeKey] = Slots()
        self._requests, self._failed = Deltas(), Deltas()
        # Server latency with an exponential histogram too (edge percentiles, ADR 0010).
        self._server = Deltas(buckets_s, exponential=True)
        self._client = Deltas(buckets_s)
        # Each metric's kind, help and bounds (for `MetricsRegistry.start`).
        self._made: dict[str, tuple[MetricType, str, tuple[float, ...]]] = {
            REQUESTS: (MetricType.COUNTER, _REQUESTS_HELP, ()),
            FAILED: (MetricType.COUNTER, _FAILED_HELP, ()),
            SERVER_SECONDS: (MetricType.HISTOGRAM, "", buckets_s),
            CLIENT_SECONDS: (MetricType.HISTOGRAM, "", buckets_s),
        }
        registry.before_collect.append(self._hand_over)

    def metrics(self) -> dict[str, tuple[float, ...]]:
        """The metrics made here: name -> histogram bounds (() for a counter)."""
        return {REQUESTS: (), FAILED: (), SERVER_SECONDS: self._buckets,
                CLIENT_SECONDS: self._buckets}  # fmt: skip

    def observe(self, calls: Sequence[Call]) -> None:
        if len(calls) <= SMALL:
            for call in calls:
                self._observe_one(call)
            return
        self._edges.renumber_when_full(
            _MAX_EDGES, self._hand_over, [deltas for _, deltas in self._each()]
        )
        source, target, _, failed, client_ns, server_ns, connection_type, *_ = zip(
            *calls, strict=True
        )
        edges = self._edges.of(list(zip(source, connection_type, target, strict=True)))
        server, client = (np.array(ns, dtype=np.int64) for ns in (server_ns, client_ns))
        server_seen, client_seen = server >= 0, client >= 0  # else UNOBSERVED
        first = (
            self._requests.add(edges),
            self._failed.add(edges[np.array(failed, dtype=np.bool_)]),
            self._server.add(edges[server_seen], server[server_seen] / 1e9),
            self._client.add(edges[client_seen], client[client_seen] / 1e9),
        )
        for (name, _), new in zip(self._each(), first, strict=True):
            for edge in new.tolist():  # a new series starts now, not when first handed over
                self._registry.start(name, self._labels(edge), *self._made[name])

    def _observe_one(self, call: Call) -> None:
        """One call straight into its series (`deltas.SMALL`)."""
        registry, buckets = self._registry, self._buckets
        labels = _edge_labels((call.source, call.connection_type, call.target))
        registry.inc(REQUESTS, labels, 1, help_text=_REQUESTS_HELP)
        if call.failed:
            registry.inc(FAILED, labels, 1, help_text=_FAILED_HELP)
        if call.server_duration_ns >= 0:  # else UNOBSERVED
            seconds = call.server_duration_ns / 1e9
            counts, exp = one_value(seconds, buckets, exponential=True)
            registry.merge_histogram(SERVER_SECONDS, labels, buckets, counts, seconds, 1, exp=exp)
        if call.client_duration_ns >= 0:
            seconds = call.client_duration_ns / 1e9
            counts, _ = one_value(seconds, buckets)
            registry.merge_histogram(CLIENT_SECONDS, labels, buckets, counts, seconds, 1)

    def _each(self) -> tuple[tuple[str, Deltas], ...]:
        return (
            (REQUESTS, self._requests),
            (FAILED, self._failed),
            (SERVER_SECONDS, self._server),
            (CLIENT_SECONDS, self._client),
        )

    def _labels(self, edge: int) -> Labels:
        return _edge_labels(self._edges.keys[edge])

    def _hand_over(self) -> None:
        """Add the deltas to the series (the registry applies its cap)."""
        registry = self._registry
        for name, deltas in self._each():
            kind, help_text, bounds = self._made[name]
            for edge, count, total, counts, exp in deltas.take():
                labels = self._labels(edge)
                if kind is MetricType.COUNTER:
                    registry.inc(name, labels, count, help_text)
                else:
                    registry.merge_histogram(
                        name, labels, bounds, counts, total, count, help_text, exp
                    )
