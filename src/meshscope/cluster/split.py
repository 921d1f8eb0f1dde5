"""Split a request body by the owner of each item's trace id: pure, so ingest workers run it.

OTLP traces and logs (protobuf or JSON) and Zipkin JSON spans are split into one body per
owner, each a valid request of the same kind (OTLP parts are always protobuf: the compact
forwarding format, decoded by the owner's own workers like any client request). A resource
and a scope are copied into every part that holds some of their items. Items whose trace id
is missing or malformed stay with this node, whose decoder answers them as usual (a log
record without a trace id belongs to no trace: it stays where it arrived); so do spans the
decoder would reject for any other reason (`checks.span_problem`), so that a forwarded part,
which may travel in one request with other clients' parts, holds only spans its owner
stores.

`split_body` answers None when everything belongs to this node (the common one-node and
already-routed case): then the original body is used unchanged, with no re-encoding.
`route_traces` is what a node with ingest workers runs on a traces body instead: the same
split, and this node's share prepared for its store, in one pass (the same parts, the same
refusals). Over a shared store without tail sampling it keeps every span here and makes
the other owners' parts of their traces' pairing records only (`cluster/sides.py`).

Right after a ring change (`Table.moved`), `split_watching` also names the traces that were
in flight when it happened and whose spans now go to a slot's new owner: a span in a moved
slot that started before the change. Their earlier spans went to the old owner, so pairing,
span metrics and tail sampling may see them split (counted: `meshscope_cluster_split_traces`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.cluster.ring import SLOTS
from meshscope.cluster.sides import encode_sides
from meshscope.ingest.body import BodyError, decompress
from meshscope.ingest.checks import span_problem
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import parse_json, parse_protobuf
from meshscope.ingest.otlp_direct import prepare_resource_spans
from meshscope.ingest.otlp_lazy import LazyTraceRequest
from meshscope.ingest.workers import REFUSED, Outcome, SpanPreparation, prepare_body, refusal
from meshscope.ingest.zipkin import zipkin_spans
from meshscope.pipeline.prepared import Prepared
from meshscope.store.twophase import SpanEncoder

_MASK64 = (1 << 64) - 1
_TRACES, _LOGS = "ExportTraceServiceRequest", "ExportLogsServiceRequest"
_SPANS = ("resource_spans", "scope_spans", "spans")


@dataclass(frozen=True, slots=True)
class Table:
    """What a worker needs of a `Ring`: the peer ids and each slot's owner (picklable)."""

    peers: tuple[str, ...]
    owners: bytes
    local: str  # this node's id
    moved: bytes = b""  # per slot, 1 if it changed owner at the last ring change (or empty)
    changed_ns: int = 0  # when that change happened (wall clock, ns)

    def in_moved_slot(self, trace_id: bytes) -> bool:
        return (
            bool(self.moved)
            and len(trace_id) == 16
            and self.moved[(int.from_bytes(trace_id[8:], "big") & _MASK64) % SLOTS] == 1
        )

    def owner(self, trace_id: bytes) -> str:
        """The owner of a 16-byte trace id; this node for anything else."""
        if len(trace_id) != 16 or not any(trace_id):
            return self.local
        return self.owner_of_int(int.from_bytes(trace_id[8:], "big"))

    def owner_of_int(self, trace: int) -> str:
        """The owner of a valid trace id given as an integer (its low 64 bits pick the slot)."""
        return self.peers[self.owners[(trace & _MASK64) % SLOTS]]

    def owner_of_hex(self, trace_id: Any) -> str:
        """The owner of a trace id of 16 or 32 hex characters; this node for anything else
        (its decoder answers it: an all-zero or malformed id)."""
        if not isinstance(trace_id, str) or len(trace_id) not in (16, 32):
            return self.local
        try:
            low, whole = int(trace_id[-16:], 16), int(trace_id, 16)
        except ValueError:
            return self.local
        return self.peers[self.owners[low % SLOTS]] if whole else self.local


@dataclass(frozen=True, slots=True)
class Part:
    """One owner's share: a request body of the same kind and how many items it holds."""

    body: bytes
    items: int
    json: bool  # Zipkin parts are JSON; OTLP parts protobuf


def split_body(
    kind: str, raw: bytes, encoding: str, json: bool, table: Table, max_body_bytes: int
) -> dict[str, Part] | None:
    """The parts of a (still compressed) body by owner, None when all of it is this node's
    or the body cannot be read (then the normal path answers it as usual)."""
    return split_watching(kind, raw, encoding, json, table, max_body_bytes)[0]


def split_watching(
    kind: str, raw: bytes, encoding: str, json: bool, table: Table, max_body_bytes: int
) -> tuple[dict[str, Part] | None, frozenset[bytes]]:
    """`split_body`, and the ids of the OTLP traces in flight at the last ring change whose
    spans are in a moved slot (module docstring; empty unless `table.moved`)."""
    try:
        body = decompress(raw, encoding, max_body_bytes)
        if kind == "traces":
            return _split_traces(body, json, table)
        if kind == "logs":
            return _split_logs(body, json, table), frozenset()
        if kind == "zipkin":
            return _split_zipkin(body, table), frozenset()
    except (BodyError, DecodeError):
        pass
    return None, frozenset()


def _split_traces(
    body: bytes, json: bool, table: Table
) -> tuple[dict[str, Part] | None, frozenset[bytes]]:
    request = ExportTraceServiceRequest()
    request = parse_json(request, body, _TRACES) if json else parse_protobuf(request, body, _TRACES)
    parts = _split_otlp(request, ExportTraceServiceRequest, _SPANS, table, _span_owner(table))
    return parts, _moved_traces(request, table)


def _moved_traces(request: Any, table: Table) -> frozenset[bytes]:
    """The ids of traces in flight at the last ring change with spans in a moved slot."""
    if not table.moved:
        return frozenset()
    return frozenset(
        span.trace_id
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
        if span.start_time_unix_nano < table.changed_ns and table.in_moved_slot(span.trace_id)
    )


@dataclass(frozen=True, slots=True)
class Routed:
    """A traces body split by owner with this node's share already prepared (`route_traces`)."""

    outcome: Outcome  # this node's share prepared for its store, or the body's refusal
    parts: dict[str, Part]  # the other owners' shares; empty when all of it is this node's
    split: frozenset[bytes]  # as `split_watching`'s
    spans: int  # in the whole body
    parts_kind: str = "traces"  # "sides": the parts are pairing records (`cluster/sides.py`)


class _Parts:
    """Items collected by owner, per scope in the request's order; then one request of
    `factory` per owner (a resource and a scope copied into every part that holds some of
    their items), serialized."""

    def __init__(self, factory: Any, names: tuple[str, str, str]) -> None:
        self._factory, self._names = factory, names
        # id(scope) -> (its resource, the scope, its items by owner); insertion-ordered
        self._scopes: dict[int, tuple[Any, Any, dict[str, list[Any]]]] = {}
        self.owners: set[str] = set()
        self.count = 0

    def add(self, peer: str, item: Any, resource: Any, scope: Any) -> None:
        entry = self._scopes.get(id(scope))
        if entry is None:
            entry = self._scopes[id(scope)] = (resource, scope, {})
        entry[2].setdefault(peer, []).append(item)
        self.owners.add(peer)
        self.count += 1

    def serialized(self) -> dict[str, Part]:
        resources_name, scopes_name, items_name = self._names
        parts: dict[str, Any] = {}
        counts: dict[str, int] = defaultdict(int)
        entries: dict[tuple[str, int], Any] = {}  # (owner, id(resource)) -> its copy
        for resource, scope, by_owner in self._scopes.values():
            for peer, items in by_owner.items():
                entry = entries.get((peer, id(resource)))
                if entry is None:
                    part = parts.get(peer)
                    if part is None:
                        part = parts[peer] = self._factory()
                    entry = entries[peer, id(resource)] = getattr(part, resources_name).add()
                    entry.resource.CopyFrom(resource.resource)
                    entry.schema_url = resource.schema_url
                copied = getattr(entry, scopes_name).add()
                copied.scope.CopyFrom(scope.scope)
                copied.schema_url = scope.schema_url
                getattr(copied, items_name).extend(items)
                counts[peer] += len(items)
        return {peer: Part(m.SerializeToString(), counts[peer], False) for peer, m in parts.items()}


def route_traces(
    raw: bytes,
    encoding: str,
    json: bool,
    table: Table,
    max_body_bytes: int,
    spans: SpanPreparation,
    pairs_only: bool = False,
) -> Routed:
    """An ingest worker's whole work on a traces body a cluster node receives: split it by
    owner and prepare this node's share for the store (`otlp_direct`) in one pass, so a
    body that is all this node's (pre-routed traffic, or a one-owner request) costs what it
    costs on a single node, and this node's share of a sprayed one is not parsed twice.

    With `pairs_only` (every node writes to and reads from the same sharded ClickHouse, and
    no tail sampling: the caller decides), no span needs its trace's owner: this node
    prepares every span for the store and its span metrics, and only the pairing records of
    other owners' traces are parts, for their owners to pair (`cluster/sides.py`).

    The body is parsed once, lazily (`otlp_lazy`: attributes stay encoded), and walked once:
    the walk checks every span, keeps this node's and sets the other owners' aside
    (`divert`), which are then re-encoded from the lazy messages (the same bytes on the
    wire) and parsed by the generated classes (in C, ~0.6 us/span; decoding their attributes
    in Python would cost ten times that): an invalid attribute anywhere refuses the whole
    body here, before anything is stored or forwarded, as a full parse of the body does.
    Spans the decoder rejects stay here, as in `split_body`."""
    try:
        body = decompress(raw, encoding, max_body_bytes)
        if json:  # JSON is parsed by the generated classes, then read like a protobuf body
            body = parse_json(ExportTraceServiceRequest(), body, _TRACES).SerializeToString()
        request = parse_protobuf(LazyTraceRequest(), body, _TRACES)
        if pairs_only and len(table.peers) > 1:
            return _route_sides(request, table, spans)
        aside = _Parts(LazyTraceRequest, _SPANS)
        owner_of_int, local = table.owner_of_int, table.local

        def divert(trace: int, span: Any, resource: Any, scope: Any) -> bool:
            peer = owner_of_int(trace)
            if peer == local:
                return False
            aside.add(peer, span, resource, scope)
            return True

        prepared = prepare_resource_spans(  # one peer: every span is this node's
            request.resource_spans, spans.columns, spans.matcher,
            divert if len(table.peers) > 1 else None,
        )  # fmt: skip
        parts = aside.serialized()
        if not json:  # (a JSON body was read whole by the generated classes)
            for part in parts.values():  # their attributes too, as a full parse would
                parse_protobuf(ExportTraceServiceRequest(), part.body, _TRACES)
        moved = _moved_traces(request, table)
    except REFUSED as error:
        return Routed(refusal(error), {}, frozenset(), 0)
    count = prepared[0].span_count + prepared[1] + aside.count
    return Routed(("ok", *prepared), parts, moved, count)


def _route_sides(request: Any, table: Table, spans: SpanPreparation) -> Routed:
    """`route_traces` over a shared store: every span prepared here, the other owners'
    traces' pairing records set aside as their parts."""
    foreign: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    owner_of_int, local = table.owner_of_int, table.local

    def route_side(trace: int, side: tuple[Any, ...]) -> bool:
        peer = owner_of_int(trace)
        if peer == local:
            return False
        foreign[peer].append(side)
        return True

    prepared = prepare_resource_spans(request.resource_spans, spans.columns, None, None, route_side)
    moved = _moved_traces(request, table)
    count = prepared[0].span_count + prepared[1]
    return Routed(("ok", *prepared), _sides_parts(foreign), moved, count, "sides")


def route_zipkin(
    raw: bytes, encoding: str, table: Table, max_body_bytes: int, encode_spans: SpanEncoder
) -> Routed:
    """An ingest worker's work on a Zipkin body a node receives over a shared store without
    tail sampling: decoded and prepared here whole, as this node's decoder does (a body
    with any span it rejects is refused whole), and the pairing records of the spans whose
    trace another node owns set aside as their owners' parts (the trace ids as the decoder
    reads them, short ones padded)."""
    outcome = prepare_body("zipkin", raw, encoding, True, max_body_bytes, encode_spans, None)
    if outcome[0] != "ok":
        return Routed(outcome, {}, frozenset(), 0)
    prepared: Prepared = outcome[1]
    owner_of_hex, local = table.owner_of_hex, table.local
    mine: list[tuple[Any, ...]] = []
    foreign: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for side in prepared.sides:
        peer = owner_of_hex(side[0])
        (mine if peer == local else foreign[peer]).append(side)
    prepared.sides = mine
    count = prepared.span_count + outcome[2]
    return Routed(outcome, _sides_parts(foreign), frozenset(), count, "sides")


def _sides_parts(foreign: dict[str, list[tuple[Any, ...]]]) -> dict[str, Part]:
    return {peer: Part(encode_sides(sides), len(sides), False) for peer, sides in foreign.items()}


def _span_owner(table: Table) -> Callable[[Any], str]:
    """A span's owner, except that a span the decoder would reject stays here: the decoder
    here answers its client about it, and a forward holds only spans its owner stores."""
    owner, local = table.owner, table.local

    def owner_of(span: Any) -> str:
        return local if span_problem(span) else owner(span.trace_id)

    return owner_of


def _split_logs(body: bytes, json: bool, table: Table) -> dict[str, Part] | None:
    request = ExportLogsServiceRequest()
    request = parse_json(request, body, _LOGS) if json else parse_protobuf(request, body, _LOGS)
    return _split_otlp(
        request, ExportLogsServiceRequest, ("resource_logs", "scope_logs", "log_records"), table
    )


def _split_otlp(
    request: Any,
    factory: Any,
    names: tuple[str, str, str],
    table: Table,
    owner_of: Callable[[Any], str] | None = None,
) -> dict[str, Part] | None:
    """Split an OTLP request (resources > scopes > items with a `trace_id`) by owner
    (`owner_of` an item; by default its trace id's)."""
    resources_name, scopes_name, items_name = names
    if owner_of is None:
        owner = table.owner

        def owner_of(item: Any) -> str:
            return owner(item.trace_id)

    collected = _Parts(factory, names)
    for resource in getattr(request, resources_name):
        for scope in getattr(resource, scopes_name):
            for item in getattr(scope, items_name):
                collected.add(owner_of(item), item, resource, scope)
    if collected.owners <= {table.local}:
        return None
    return collected.serialized()


def _split_zipkin(body: bytes, table: Table) -> dict[str, Part] | None:
    """Zipkin spans by the owner of their trace. The body is decoded whole first, as this
    node's decoder would: Zipkin refuses a body with any invalid span, so such a body stays
    here to be refused whole (parts of it stored on peers would answer a 400 with data
    kept), and ids are routed as the decoder reads them (short ones padded)."""
    try:
        items = orjson.loads(body)
        spans = zipkin_spans(items)
    except (orjson.JSONDecodeError, DecodeError):
        return None
    groups: dict[str, list[Any]] = defaultdict(list)
    for item, span in zip(items, spans, strict=True):
        groups[table.owner_of_hex(span.trace_id)].append(item)
    if set(groups) <= {table.local}:
        return None
    return {peer: Part(orjson.dumps(items), len(items), True) for peer, items in groups.items()}
