"""Service-graph pairing: exact edges whatever the arrival order, virtual nodes, bounds."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.calls import UNOBSERVED, Call
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.derive.registry import MetricsRegistry
from meshscope.pipeline.derive.servicegraph import (
    REQUESTS,
    SERVER_SECONDS,
    Pair,
    Pairing,
    ServiceGraphMetrics,
    SpanPairer,
    side_fields,
    side_of,
)
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION, SpanMetrics
from meshscope.store.base import LogQuery
from meshscope.store.duckdb import DuckDBStorage

SEC = 10**9


def make_trace(t: int, error_at: str = "") -> list[Span]:
    """web SERVER -> web CLIENT -> api SERVER -> api CLIENT -> db SERVER; plus a cache call."""
    tid = f"{t + 1:032x}"

    def s(n: int, service: str, kind: SpanKind, parent: int | None) -> Span:
        return Span(
            tid,
            f"{t * 16 + n + 1:016x}",
            f"op{n}",
            service,
            start_ns=1000 * n,
            end_ns=1000 * n + 500_000,
            parent_span_id=f"{t * 16 + parent + 1:016x}" if parent is not None else "",
            kind=kind,
            status_code=StatusCode.ERROR if service == error_at else StatusCode.UNSET,
        )

    return [
        s(0, "web", SpanKind.SERVER, None),
        s(1, "web", SpanKind.CLIENT, 0),
        s(2, "api", SpanKind.SERVER, 1),
        s(3, "api", SpanKind.CLIENT, 2),
        s(4, "db", SpanKind.SERVER, 3),
        s(5, "api", SpanKind.INTERNAL, 2),
        s(6, "cache", SpanKind.SERVER, 5),
    ]


EXPECTED = {("web", "api"): 1, ("api", "db"): 1, ("api", "cache"): 1}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_edges_are_exact_in_any_arrival_order_and_batching(data: st.DataObject) -> None:
    spans = [span for t in range(4) for span in make_trace(t)]
    order = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), max_size=6)))
    pairer = SpanPairer(ttl_ns=60 * SEC)
    calls = []
    for start, end in zip([0, *cuts], [*cuts, len(order)], strict=True):
        calls += pairer.add(order[start:end], now_ns=0)
    counts = Counter((c.source, c.target) for c in calls)
    assert counts == Counter({edge: 4 * n for edge, n in EXPECTED.items()})
    assert pairer.stats.paired == 12


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_spans_sent_again_are_paired_once(data: st.DataObject) -> None:
    """A client's retry or a pairing record re-sent to its owner after a partial failure:
    spans again once their batch was committed (confirmed), in any order and batching,
    before or after their pair came."""
    spans = [span for t in range(4) for span in make_trace(t)]
    first = data.draw(st.permutations(spans))
    cut = data.draw(st.integers(1, len(spans)))
    again = data.draw(st.lists(st.sampled_from(first[:cut]), max_size=40))
    pairer = SpanPairer(ttl_ns=60 * SEC)
    calls = []
    for batch in (first[:cut], again, first[cut:]):
        group = Pairing()
        calls += pairer.add_sides([tuple(side) for side in map(side_of, batch)], 0, group)
        assert len(group.entries) == (0 if batch is again else len(batch))
        pairer.confirm(group.entries)
    counts = Counter((c.source, c.target) for c in calls)
    assert counts == Counter({edge: 4 * n for edge, n in EXPECTED.items()})
    assert pairer.stats.paired == 12
    assert pairer.stats.repeated == len(again)


@pytest.mark.parametrize("first_group", ["committed", "refused"])
def test_spans_sent_again_while_their_group_is_committed_are_deferred(first_group: str) -> None:
    """A client that retries before its first delivery's group commit ended (or the same
    span twice in flight): the repeat is left out, and paired after all (as a first arrival)
    only if that first group is refused."""
    pairer = SpanPairer()
    trace = make_trace(0)
    first, second = Pairing(), Pairing()
    made = pairer.add_sides([side_of(span) for span in trace], 0, first)
    assert pairer.add_sides([side_of(span) for span in trace], 1, second) == []
    assert len(second.deferred) == len(trace) and pairer.stats.repeated == len(trace)
    if first_group == "committed":
        pairer.confirm(first.entries)
        counted = pairer.counted(first.pairs)
    else:
        pairer.refuse(first, second)
        assert pairer.counted(first.pairs) == [] and second.deferred == []
        pairer.confirm(second.entries)
        counted = pairer.counted(second.pairs)
    assert Counter((c.source, c.target) for c in counted) == Counter(EXPECTED)
    assert len(made) == len(counted) == pairer.stats.paired
    assert pairer.add(trace, now_ns=2) == []  # committed once: repeats from now on


Request = tuple[bool, list[tuple[object, ...]]]  # (a peer's records?, sides)


@dataclasses.dataclass
class _Derived:
    requests: list[Request]
    pairing: Pairing = dataclasses.field(default_factory=Pairing)


@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_groups_refused_and_sent_again_count_each_call_once(data: st.DataObject) -> None:
    """The writer's sequence: a group is derived while the one before it is committed, then
    that one is confirmed, or refused (taken back with what the next group made) and its
    requests sent again later, or so fast that they join that next group; a request may
    also come again while its group is being committed (a client that timed out). Whatever
    the requests, order, refusals, repeats and peer records (never sent again), each call
    is counted once: from the groups committed, and from a refused group's pairs of records
    alone."""
    spans = [span for t in range(2) for span in make_trace(t)]
    order = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.lists(st.integers(1, len(order) - 1), max_size=12, unique=True)))
    requests: list[Request] = [
        (data.draw(st.booleans(), label="records"), [tuple(side_of(x)) for x in order[a:b]])
        for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)
    ]
    refusals = data.draw(st.integers(0, 6), label="refusals")
    pairer = SpanPairer(ttl_ns=60 * SEC)
    queue = list(requests)
    counted: list[Call] = []
    standing: list[Pair] = []
    previous: _Derived | None = None
    while queue or previous is not None:
        owned = [] if previous is None else [r for r in previous.requests if not r[0]]
        refused = bool(owned and refusals and data.draw(st.booleans(), label="refused"))
        # A client that timed out sends its request again while its group commits.
        in_flight = bool(owned) and data.draw(st.booleans(), label="sent again in flight")
        again = refused and (in_flight or data.draw(st.booleans(), label="sent again at once"))
        if in_flight or again:
            queue = owned + queue
        current = None
        if queue:
            size = data.draw(st.integers(1, min(3, len(queue))), label="group")
            current, queue = _Derived(queue[:size]), queue[size:]
            for records, sides in current.requests:  # a peer's records: settled at once
                pairer.add_sides(sides, 0, current.pairing, settled=records)
        if previous is not None:
            if refused:
                refusals -= 1
                pairer.refuse(previous.pairing, current.pairing if current else None)
                if not again:
                    queue += owned
            else:
                pairer.confirm(previous.pairing.entries)
            counted += pairer.counted(previous.pairing.pairs)
            standing += [pair for pair in previous.pairing.pairs if pairer.counted([pair])]
        previous = current
    assert Counter((c.source, c.target) for c in counted) == Counter(
        {edge: 2 * n for edge, n in EXPECTED.items()}
    )
    assert pairer.stats.paired == len(counted)  # what was taken back is not counted there
    seen, _ = pairer.state()  # each span's count of standing calls (a caller with none
    calls_of = Counter(id(entry) for _, *sides in standing for entry in sides)  # is virtual)
    assert all(entry[2] == calls_of[id(entry)] for entry in seen.values())


def test_a_call_taken_back_once_is_not_paired_again_when_a_later_group_is_refused() -> None:
    """A client span refused in one group (G2) had been paired in the next (G3, derived
    meanwhile) with a peer's record of its server span, which G2's refusal put back to
    wait. The retry (G4) pairs it. When G3 is refused too, its own pairs hold that old call
    again; it is not the refusal of G3's spans, and must not pair the record a second time
    with the retry (found by the property test above: web -> api counted twice)."""
    _, web_client, api, *_ = make_trace(0)
    other = make_trace(1)[0]
    pairer = SpanPairer()
    g2, g3, g4 = Pairing(), Pairing(), Pairing()
    pairer.add_sides([side_of(web_client)], 0, g2)
    pairer.add_sides([side_of(api)], 0, g3, settled=True)  # a peer's record
    pairer.add_sides([side_of(other)], 0, g3)
    assert len(g3.pairs) == 1
    pairer.refuse(g2, g3)  # G2 refused; G3 derived meanwhile
    pairer.add_sides([side_of(web_client)], 0, g4)  # G2's retry
    pairer.refuse(g3, g4)  # G3 refused; G4 derived meanwhile
    pairer.confirm(g4.entries)
    calls = [*pairer.counted(g3.pairs), *pairer.counted(g4.pairs)]
    assert [(c.source, c.target) for c in calls] == [("web", "api")]


def test_another_span_under_a_remembered_id_still_takes_its_place() -> None:
    """Two spans sharing an id (Zipkin's client and server halves) are not a repeat: the
    later one is the parent its children pair with, as before."""
    web, web_client, api, *_ = make_trace(0)
    half = dataclasses.replace(api, span_id=web_client.span_id, parent_span_id=web.span_id)
    child = dataclasses.replace(api, span_id=f"{99:016x}", parent_span_id=half.span_id,
                                service="db")  # fmt: skip
    pairer = SpanPairer()
    calls = pairer.add([web, web_client, half, child], now_ns=0)
    # The server half's call from its parent, and the child's from the server half (from
    # the client half, the first one remembered, it would be web -> db).
    assert [(c.source, c.target) for c in calls] == [("web", "api"), ("api", "db")]
    assert pairer.stats.repeated == 0


def test_failed_calls_and_durations_are_attributed() -> None:
    calls = SpanPairer().add(make_trace(0, error_at="db"), now_ns=0)
    by_edge = {(c.source, c.target): c for c in calls}
    assert by_edge[("api", "db")].failed
    assert not by_edge[("web", "api")].failed
    assert by_edge[("web", "api")].client_duration_ns == 500_000
    assert by_edge[("api", "cache")].client_duration_ns == UNOBSERVED  # parent was INTERNAL


def test_unpaired_database_client_becomes_a_virtual_node_on_expiry() -> None:
    client = Span(
        "a" * 32,
        "b" * 16,
        "SELECT",
        "api",
        0,
        2_000_000,
        kind=SpanKind.CLIENT,
        attributes={"db.system": "postgresql", "db.name": "users"},
    )
    lonely = Span("c" * 32, "d" * 16, "GET", "api", 0, 1, kind=SpanKind.CLIENT)
    pairer = SpanPairer(ttl_ns=10 * SEC)
    assert pairer.add([client, lonely], now_ns=0) == []
    assert pairer.expire(now_ns=5 * SEC) == []  # not yet
    calls = pairer.expire(now_ns=11 * SEC)
    assert [(c.source, c.target, c.connection_type) for c in calls] == [
        ("api", "users", "database")
    ]
    assert pairer.stats.virtual == 1 and pairer.stats.expired_unpaired == 1
    assert len(pairer) == 0


def test_a_refused_span_is_forgotten_so_its_retry_makes_one_virtual_call() -> None:
    """A database client span whose group was refused is taken back: only its retry is
    remembered, and becomes the one virtual call when it expires."""
    client = Span("a" * 32, "b" * 16, "SELECT", "api", 0, 2_000_000, kind=SpanKind.CLIENT,
                  attributes={"db.system": "postgresql"})  # fmt: skip
    pairer = SpanPairer(ttl_ns=10 * SEC)
    refused, again = Pairing(), Pairing()
    pairer.add_sides([side_of(client)], 0, refused)
    pairer.refuse(refused)
    assert len(pairer) == 0 and pairer.stats.refused == 1
    pairer.add_sides([side_of(client)], SEC, again)
    pairer.confirm(again.entries)
    calls = pairer.expire(now_ns=20 * SEC)
    assert [(c.source, c.target) for c in calls] == [("api", "postgresql")]


def test_a_caller_whose_only_call_was_taken_back_becomes_a_virtual_call() -> None:
    """A client span naming its peer paired with the server span that answered it; that
    server span's group is refused and never sent again. The client span is then unpaired
    again, and becomes a call to the virtual node when it expires (it stayed flagged as
    paired, and the call was lost)."""
    client = Span("a" * 32, "b" * 16, "POST /pay", "api", 0, 2_000_000, kind=SpanKind.CLIENT,
                  attributes={"peer.service": "payments"})  # fmt: skip
    server = Span("a" * 32, "c" * 16, "POST /pay", "payments", 1, 1_000_000, client.span_id,
                  SpanKind.SERVER)  # fmt: skip
    pairer = SpanPairer(ttl_ns=10 * SEC)
    committed, refused = Pairing(), Pairing()
    pairer.add_sides([side_of(client)], 0, committed)
    pairer.confirm(committed.entries)
    assert len(pairer.add_sides([side_of(server)], 0, refused)) == 1
    pairer.refuse(refused)
    assert pairer.counted(refused.pairs) == [] and pairer.stats.paired == 0
    calls = pairer.expire(now_ns=20 * SEC)
    assert [(c.source, c.target, c.connection_type) for c in calls] == [
        ("api", "payments", "virtual_node")
    ]


_CLIENT = Span("a" * 32, "b" * 16, "POST /pay", "api", 0, 2_000_000, kind=SpanKind.CLIENT,
               attributes={"peer.service": "payments"})  # fmt: skip
_SERVER = Span("a" * 32, "c" * 16, "POST /pay", "payments", 1, 1_000_000, _CLIENT.span_id,
               SpanKind.SERVER)  # fmt: skip


@pytest.mark.parametrize("refused_side", ["server", "client"])
def test_a_call_refused_through_a_long_outage_pairs_with_its_retry(refused_side: str) -> None:
    """The side that came first (committed) waits for the retry of the refused one past its
    TTL: a store outage of 25 s, the client sending again every 16 s (refused again at 18 s),
    then accepted at 34 s: one call, no virtual one (before: the first side expired at 10 s,
    the retry found nothing, and the call became a virtual call or was lost)."""
    first, second = (_CLIENT, _SERVER) if refused_side == "server" else (_SERVER, _CLIENT)
    pairer = SpanPairer(ttl_ns=10 * SEC)
    committed = Pairing()
    pairer.add_sides([side_of(first)], 0, committed)
    pairer.confirm(committed.entries)
    calls: list[Call] = []
    for at in (2, 18):  # sent, refused; sent again, refused again
        refused = Pairing()
        pairer.add_sides([side_of(second)], at * SEC, refused)
        assert len(refused.pairs) == 1  # the retry found its other side waiting
        pairer.refuse(refused, now_ns=at * SEC)
        calls += pairer.expire((at + 14) * SEC)
    accepted = Pairing()
    pairer.add_sides([side_of(second)], 34 * SEC, accepted)
    pairer.confirm(accepted.entries)
    calls += [*pairer.counted(accepted.pairs), *pairer.expire(200 * SEC)]
    assert [(c.source, c.target, c.connection_type) for c in calls] == [("api", "payments", "")]
    assert pairer.stats.paired == 1 and pairer.stats.virtual == 0 and len(pairer) == 0


def test_spans_held_for_a_retry_do_not_hold_back_the_others_expiry() -> None:
    """A held server span waits in the map of children waiting for their parent; spans
    that came after it still expire on time (the maps are expired in arrival order: a held
    entry left in place would keep everything behind it for the whole hold)."""
    pairer = SpanPairer(ttl_ns=10 * SEC)
    committed, refused = Pairing(), Pairing()
    pairer.add_sides([side_of(_SERVER)], 0, committed)
    pairer.confirm(committed.entries)
    pairer.add_sides([side_of(_CLIENT)], 2 * SEC, refused)
    pairer.refuse(refused, now_ns=2 * SEC)
    others = [dataclasses.replace(_SERVER, trace_id=f"{n:032x}") for n in range(1, 4)]
    for n, span in enumerate(others):
        later = Pairing()
        pairer.add_sides([side_of(span)], (3 + n) * SEC, later)
        pairer.confirm(later.entries)
    for at in (13, 16, 30, 45):
        pairer.expire(at * SEC)
        assert len(pairer) == (3 if at == 13 else 1)  # the others gone by their TTL
        assert len(pairer._orphans) == len(pairer)
    accepted = Pairing()
    pairer.add_sides([side_of(_CLIENT)], 50 * SEC, accepted)
    assert [(c.source, c.target) for c in pairer.counted(accepted.pairs)] == [("api", "payments")]


def test_a_held_caller_whose_call_never_comes_back_becomes_a_virtual_call() -> None:
    """Held for RETRY_HOLD_NS after the refusal, then expired as any unpaired caller."""
    pairer = SpanPairer(ttl_ns=10 * SEC, hold_ns=60 * SEC)
    committed, refused = Pairing(), Pairing()
    pairer.add_sides([side_of(_CLIENT)], 0, committed)
    pairer.confirm(committed.entries)
    pairer.add_sides([side_of(_SERVER)], SEC, refused)
    pairer.refuse(refused, now_ns=SEC)
    for at in range(11, 61, 10):  # expired past its TTL, still held
        assert pairer.expire(at * SEC) == [] and len(pairer) == 1
    calls = pairer.expire(75 * SEC)
    assert [(c.source, c.target, c.connection_type) for c in calls] == [
        ("api", "payments", "virtual_node")
    ]
    assert len(pairer) == 0 and pairer._held == {}


def test_memory_is_bounded_and_evictions_are_counted() -> None:
    pairer = SpanPairer(ttl_ns=3600 * SEC, max_pending=100)
    for t in range(50):
        pairer.add(make_trace(t), now_ns=0)
    assert len(pairer) <= 100
    assert pairer.stats.evicted >= 250


def test_metrics_have_connector_names_and_exact_counts() -> None:
    registry = MetricsRegistry()
    metrics = ServiceGraphMetrics(registry)
    pairer = SpanPairer()
    for t in range(3):
        metrics.observe(pairer.add(make_trace(t, error_at="db" if t == 0 else ""), now_ns=0))
    points = {(p.name, p.label("client"), p.label("server")): p for p in registry.collect(1)}
    assert points[(REQUESTS, "web", "api")].value == 3
    assert points[(REQUESTS, "api", "db")].value == 3
    assert points[("traces_service_graph_request_failed_total", "api", "db")].value == 1
    histogram = points[(SERVER_SECONDS, "api", "db")].histogram
    assert histogram is not None and histogram.count == 3
    assert abs(histogram.sum - 3 * 0.0005) < 1e-12


def test_calls_measured_at_zero_count_in_the_latency_histograms() -> None:
    """0 ns meant "side not observed", so 199 calls of 0 ns and one of 100 ms made histograms
    of one call each (edge p99 100 ms; the truth is 0); an unobserved side still adds none."""
    registry = MetricsRegistry()
    metrics = ServiceGraphMetrics(registry)
    pairer = SpanPairer(ttl_ns=SEC)
    spans = []
    for t in range(200):
        tid, duration = f"{t + 1:032x}", (100_000_000 if t == 0 else 0)
        client = Span(tid, f"{2 * t + 1:016x}", "q", "y", 0, duration, kind=SpanKind.CLIENT)
        spans += [client, Span(tid, f"{2 * t + 2:016x}", "q", "yy", 0, duration,
                               client.span_id, SpanKind.SERVER)]  # fmt: skip
    # A database client no server reports: a virtual node, its server side unobserved.
    spans.append(Span("f" * 32, "e" * 16, "q", "y", 0, 0, kind=SpanKind.CLIENT,
                      attributes={"db.system": "redis"}))  # fmt: skip
    metrics.observe(pairer.add(spans, now_ns=0))
    metrics.observe(pairer.expire(2 * SEC))
    points = {(p.name, p.label("server")): p for p in registry.collect(1)}
    for name in (SERVER_SECONDS, "traces_service_graph_request_client_seconds"):
        histogram = points[(name, "yy")].histogram
        assert histogram is not None and histogram.count == 200
        assert histogram.counts[0] == 199  # the first bucket holds the 0 ns calls
    assert points[(REQUESTS, "redis")].value == 1
    assert (SERVER_SECONDS, "redis") not in points
    redis = points[("traces_service_graph_request_client_seconds", "redis")].histogram
    assert redis is not None and redis.count == 1


def test_series_start_when_their_first_call_is_observed_not_when_collected() -> None:
    """Both derivers sum a group's updates and hand them to the registry at its collect; a
    series still starts (OTLP start time: what a rate covers) when its first value came."""
    clock = ManualClock(0)
    registry = MetricsRegistry(now_ns=clock.now_ns)
    graph, spans = ServiceGraphMetrics(registry), SpanMetrics(registry)
    trace = make_trace(0, error_at="db")
    clock.advance(1)
    graph.observe(SpanPairer().add(trace, now_ns=0))
    spans.observe(trace)
    clock.advance(100)
    points = registry.collect(clock.now_ns())
    assert {p.name for p in points} >= {REQUESTS, SERVER_SECONDS, CALLS, DURATION}
    assert {p.start_ns for p in points} == {10**9}


def test_a_status_no_column_holds_is_unknown_and_the_call_is_stored(tmp_path: Path) -> None:
    """A span's HTTP status goes into its call's access log (int32 in both stores): one
    that does not fit, or is not an integer, is stored as 0 (unknown), never a failed
    write (a status of 2**40 failed the access-log write of every call it went with)."""
    for status, kept in ((503, 503), (2**31 - 1, 2**31 - 1), (2**31, 0), (2**40, 0),
                         (-1, 0), (True, 0), ("503", 0), (5.0, 0)):  # fmt: skip
        fields = side_fields("0" * 31 + "1", "1" * 16, "", "api", int(SpanKind.SERVER), 0, 1,
                             False, {"http.status_code": status})  # fmt: skip
        assert fields[8] == kept, status
    storage = DuckDBStorage(tmp_path / "calls.duckdb")
    try:
        pipeline = Pipeline(storage, ManualClock())
        web, api = make_trace(0)[1:3]
        api = dataclasses.replace(api, attributes={"http.response.status_code": 2**40})
        pipeline.consume(Batch(spans=[web, api]))
        [record] = storage.logs.find_logs(LogQuery(access=True))
        assert record.service == "api" and record.body.startswith("web -> api ")
        assert "http.response.status_code" not in record.attributes  # unknown
        assert pipeline.backlog.dropped == 0
    finally:
        storage.close()


def test_a_pairing_state_of_an_earlier_version_is_taken_as_committed() -> None:
    """A spool written before entries had their `confirmed` flag (three items each): those
    spans were committed before that stop, so the same spans again are repeats."""
    web, web_client, api, *_ = make_trace(0)
    earlier = SpanPairer()
    earlier.add([web, web_client], now_ns=0)
    seen, orphans = earlier.state()
    for entry in seen.values():
        del entry[3:]  # as the earlier version made them
    pairer = SpanPairer()
    pairer.restore((seen, orphans))
    calls = pairer.add([web_client, api], now_ns=1)
    assert [(c.source, c.target) for c in calls] == [("web", "api")]
    assert pairer.stats.repeated == 1


def test_a_pairing_state_of_session_15_drops_the_spans_of_refused_groups() -> None:
    """Session 15's spool: entries with a `confirmed` flag and a `paired` bool. A span never
    confirmed was in a group refused before that stop: it is dropped (as `refuse` drops one
    now), so its client's retry pairs; a confirmed one is a repeat when it comes again."""
    web, web_client, api, db_client, db, *_ = make_trace(0)
    earlier = SpanPairer()
    earlier.add([web, web_client, api, db], now_ns=0)
    seen, orphans = earlier.state()
    for entry in seen.values():  # as session 15 made them: paired flags, confirmed flags
        entry[2], entry[3] = bool(entry[2]), entry[0][1] != api.span_id
    pairer = SpanPairer()
    pairer.restore((seen, orphans))
    assert len(pairer) == 3  # api's server span was refused: dropped
    again = [side_of(span) for span in (api, db_client, web_client)]  # retries, db's caller
    calls = pairer.add_sides(again, 1, Pairing())  # as a commit group's
    assert sorted((c.source, c.target) for c in calls) == [("api", "db"), ("web", "api")]
    assert pairer.stats.repeated == 1  # web's client span, committed before the stop
