"""ClusterSink without servers: admission, error ranking, rejected counts."""

from __future__ import annotations

import asyncio
import time

import pytest

from meshscope.cluster.forward import Forwarder, Reply
from meshscope.cluster.metrics import ClusterCollector
from meshscope.cluster.ring import Ring
from meshscope.cluster.routes import Received
from meshscope.cluster.sink import ClusterSink
from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.sink import BodyKind, OverloadedError, UnavailableError
from meshscope.model.batch import Batch
from tests.cluster.traces import calls, logs_request, request

RING = Ring.of(["a", "b", "c"])


class LocalSink:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def submit(self, batch: Batch) -> None:
        raise AssertionError("not used")

    async def submit_encoded(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded:
        self.bodies.append(raw)
        return Decoded(Batch(), 1, "one bad span here")


class Peers(Forwarder):
    def __init__(self, answers: dict[str, BaseException | Reply]) -> None:
        super().__init__("a", {"a": "", "b": "", "c": ""}, 1.0, 1 << 20)
        self.answers = answers

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        answer = self.answers[peer]
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _sink(answers: dict[str, BaseException | Reply], saturated: bool = False) -> ClusterSink:
    return ClusterSink(LocalSink(), RING, Peers(answers), 1 << 24, saturated=lambda: saturated)


def _submit(sink: ClusterSink) -> Decoded:
    body = request(calls(30))
    return asyncio.run(sink.submit_encoded("traces", body, "identity", json=False))


def test_rejected_counts_and_messages_of_every_owner_are_summed() -> None:
    sink = _sink({"b": Reply(2, "two in b"), "c": Reply(0, "")})
    decoded = _submit(sink)
    assert decoded.rejected == 3
    assert "one bad span here" in decoded.error_message and "two in b" in decoded.error_message
    assert sink.split_requests == 1


@pytest.mark.parametrize(
    ("b", "c", "raised"),
    [
        (UnavailableError("b down"), OverloadedError("c busy"), UnavailableError),
        (BodyError(400, "bad"), OverloadedError("c busy"), OverloadedError),
        (BodyError(400, "bad"), Reply(0, ""), BodyError),
    ],
)
def test_the_most_telling_error_wins(
    b: BaseException | Reply, c: BaseException | Reply, raised: type[BaseException]
) -> None:
    with pytest.raises(raised):
        _submit(_sink({"b": b, "c": c}))


def test_a_saturated_node_refuses_before_splitting() -> None:
    sink = _sink({}, saturated=True)
    with pytest.raises(OverloadedError):
        _submit(sink)
    samples = [
        sample
        for family in ClusterCollector(sink, Received()).collect()
        for sample in family.samples
        if sample.name == "meshscope_cluster_refused_requests_total"
    ]
    assert [sample.value for sample in samples] == [1]  # what /metrics shows


def test_an_unreachable_owner_is_unavailable_and_counted() -> None:
    forwarder = Forwarder("a", {"b": "http://127.0.0.1:9"}, 2.0, 1 << 20)
    part = Part(b"x", 5, False)

    async def send() -> None:
        try:
            await forwarder.send("b", "traces", part)
        finally:
            await forwarder.close()

    with pytest.raises(UnavailableError, match="cluster peer b"):
        asyncio.run(send())
    assert forwarder.failed["traces", "b"] == 5 and forwarder.inflight["b"] == 0


def test_a_backed_up_owner_is_refused_at_once() -> None:
    forwarder = Forwarder("a", {"b": "http://127.0.0.1:9"}, 2.0, 10)
    forwarder.inflight["b"] = 8
    with pytest.raises(OverloadedError, match="backed up"):
        asyncio.run(forwarder.send("b", "traces", Part(b"12345", 1, False)))


def test_traces_in_flight_at_a_ring_change_are_counted_once() -> None:
    """After peer c leaves, spans (of traces started before the change) routed to the slots c
    owned are counted as split traces, each once; spans of traces that started after the
    change, other slots, and anything after the watch window are not."""
    sink = ClusterSink(LocalSink(), RING, Peers({"b": Reply(0, "")}), 1 << 24, watch_s=60)
    before = calls(60, seed=3, now_ns=time.time_ns() - 10**9)
    sink.use(RING.without(["c"]))
    moved = {c.trace_id for c in before if RING.owner(int.from_bytes(c.trace_id[8:], "big")) == "c"}
    assert 0 < len(moved) < len(before)
    body = request(before)
    asyncio.run(sink.submit_encoded("traces", body, "identity", json=False))
    assert sink.split_traces == len(moved)
    asyncio.run(sink.submit_encoded("traces", body, "identity", json=False))  # again: once
    assert sink.split_traces == len(moved)
    later = calls(60, seed=4, now_ns=time.time_ns() + 10**9)  # started after the change
    asyncio.run(sink.submit_encoded("traces", request(later), "identity", json=False))
    assert sink.split_traces == len(moved)


def test_no_split_traces_without_a_change_or_after_the_watch() -> None:
    sink = ClusterSink(LocalSink(), RING, Peers({"b": Reply(0, ""), "c": Reply(0, "")}), 1 << 24,
                       watch_s=0)  # fmt: skip
    sink.use(RING.without(["c"]))
    asyncio.run(sink.submit_encoded("traces", request(calls(60)), "identity", json=False))
    assert sink.split_traces == 0 and not sink.table.moved  # the window had passed


def test_over_a_shared_store_a_logs_body_stays_whole_where_it_arrived() -> None:
    """Nothing is derived from log records: over the shared shards any node writes each to
    its trace's shard. Over stores of their own, the records with a trace id follow it."""
    body = logs_request([call.trace_id for call in calls(30)])
    for shared, forwarded in ((True, set()), (False, {"b", "c"})):
        local = LocalSink()
        peers = KeptPeers()
        sink = ClusterSink(local, RING, peers, 1 << 24, shared_store=shared)
        asyncio.run(sink.submit_encoded("logs", body, "identity", json=False))
        assert {peer for peer, _ in peers.sent} == forwarded
        assert len(local.bodies) == 1 and (local.bodies[0] == body) == shared


class KeptPeers(Peers):
    def __init__(self) -> None:
        super().__init__({"b": Reply(0, ""), "c": Reply(0, "")})
        self.sent: list[tuple[str, str]] = []

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        self.sent.append((peer, kind))
        return await super().send(peer, kind, part)
