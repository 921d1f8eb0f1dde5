"""ClusterSink over real ingest worker processes and the real writer over DuckDB: a traces body
is split, and this node's share prepared, in one worker call (`split.route_traces`). Peers
are stand-ins that keep what they are sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.clock import SystemClock
from meshscope.cluster.forward import Reply
from meshscope.cluster.sides import decode_sides
from meshscope.cluster.sink import ClusterSink
from meshscope.cluster.split import Part
from meshscope.ingest.body import BodyError
from meshscope.ingest.errors import DecodeError
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.otlp_lazy import LazyTraceRequest
from meshscope.ingest.sink import UnavailableError
from meshscope.ingest.workers import WorkerSettings, WorkerSink
from meshscope.limits.admission import Admission, current_admission
from meshscope.limits.config import LimitsConfig, TenantLimits
from meshscope.limits.limiter import Limiter, RateLimitedError
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.sampling.config import from_mapping
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.pipeline.writer import BatchWriter
from meshscope.store.duckdb import DuckDBStorage
from tests.cluster.test_sink import RING, Peers
from tests.cluster.traces import Call, calls, request
from tests.ingest.servers import worker_sink
from tests.ingest.test_otlp_direct import BAD_KEY


class KeepingPeers(Peers):
    def __init__(self) -> None:
        super().__init__({"b": Reply(0, ""), "c": Reply(1, "one in c")})
        self.sent: dict[str, list[bytes]] = {"b": [], "c": []}

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        self.sent[peer].append(part.body)
        return await super().send(peer, kind, part)

    def span_ids(self, peer: str) -> set[bytes]:
        return {
            span.span_id
            for body in self.sent[peer]
            for rs in ExportTraceServiceRequest.FromString(body).resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerSink]:
    pipeline = Pipeline(DuckDBStorage(tmp_path / "n.duckdb"), SystemClock())
    with worker_sink(pipeline, WorkerSettings(processes=1)) as sink:
        yield sink


def owner(call: Call) -> str:
    return RING.owner(int.from_bytes(call.trace_id[8:], "big"))


def span_ids(made: list[Call], peer: str) -> set[bytes]:
    return {s.span_id for c in made if owner(c) == peer for ss in c.spans.values() for s in ss}


def stored(workers: WorkerSink) -> int:
    return sum(workers.writer.pipeline.storage.traces.span_counts().values())


def submit(sink: ClusterSink, body: bytes, limiter: Limiter | None = None) -> int:
    async def run() -> int:
        if limiter is not None:
            current_admission.set(Admission(limiter, "t"))
        decoded = await sink.submit_encoded("traces", body, "identity", json=False)
        return decoded.rejected

    return asyncio.run(run())


def test_this_nodes_share_is_stored_and_the_rest_forwarded(workers: WorkerSink) -> None:
    peers = KeepingPeers()
    sink = ClusterSink(workers, RING, peers, 1 << 24, workers)
    made = calls(60)
    assert submit(sink, request(made)) == 1  # c's answer
    assert stored(workers) == len(span_ids(made, "a")) > 0
    assert peers.span_ids("b") == span_ids(made, "b") and peers.span_ids("c") == span_ids(made, "c")
    assert sink.split_requests == 1 and workers.prepared_bodies["traces"] == 1
    assert workers.inflight_bytes == 0 and workers.preparing == 0

    mine = [c for c in calls(60, seed=2) if owner(c) == "a"]  # pre-routed: one worker call
    assert submit(sink, request(mine)) == 0
    assert stored(workers) == len(span_ids(made + mine, "a"))
    assert sink.split_requests == 1 and workers.prepared_bodies["traces"] == 2


def test_an_invalid_attribute_of_any_owner_refuses_the_body_before_anything(
    workers: WorkerSink,
) -> None:
    peers = KeepingPeers()
    sink = ClusterSink(workers, RING, peers, 1 << 24, workers)
    made = calls(30)
    lazy = LazyTraceRequest.FromString(request(made))
    theirs = next(c.trace_id for c in made if owner(c) == "c")
    for span in lazy.resource_spans[0].scope_spans[0].spans:
        if span.trace_id == theirs:
            span.attributes.append(BAD_KEY)
    with pytest.raises(BodyError) as refused:
        submit(sink, lazy.SerializeToString())
    assert refused.value.status == 400
    assert stored(workers) == 0 and peers.sent == {"b": [], "c": []}
    assert workers.inflight_bytes == 0 and workers.preparing == 0


def test_a_split_request_is_charged_whole_once_and_refused_before_any_part(
    workers: WorkerSink,
) -> None:
    limiter = Limiter(LimitsConfig(defaults=TenantLimits(spans_per_second=0.001, spans_burst=100)))
    peers = KeepingPeers()
    sink = ClusterSink(workers, RING, peers, 1 << 24, workers)
    submit(sink, request(calls(30)), limiter)
    assert limiter.items["t", "spans"] == 90  # the local share's own charge did not count
    forwarded, kept = {peer: list(bodies) for peer, bodies in peers.sent.items()}, stored(workers)
    with pytest.raises(RateLimitedError):
        submit(sink, request(calls(30, seed=2)), limiter)  # over the burst left
    assert peers.sent == forwarded and stored(workers) == kept
    assert workers.inflight_bytes == 0 and workers.preparing == 0


ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


class SidesPeers(Peers):
    """Peers that keep the pairing records they are sent."""

    def __init__(self) -> None:
        super().__init__({"b": Reply(0, ""), "c": Reply(0, "")})
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        self.sent.append((peer, kind, part.body))
        return await super().send(peer, kind, part)


def test_over_a_shared_store_every_span_is_stored_here_and_owners_get_pairing_records(
    tmp_path: Path,
) -> None:
    """Node a stores every span it receives; b and c get only the pairing records of their
    traces, and b, committing its records, pairs each of its calls exactly once, as a node
    that received the whole trace would."""
    made = calls(60)
    peers = SidesPeers()
    pipelines = {n: Pipeline(DuckDBStorage(tmp_path / f"{n}.duckdb"), SystemClock()) for n in "ab"}
    with (
        worker_sink(pipelines["a"], WorkerSettings(processes=1)) as a,
        worker_sink(pipelines["b"], WorkerSettings(processes=1)) as b,
    ):
        sink = ClusterSink(a, RING, peers, 1 << 24, a, shared_store=True, committer=a.writer)
        assert submit(sink, request(made)) == 0
        assert stored(a) == 3 * len(made)  # every span, whoever owns its trace
        assert {(peer, kind) for peer, kind, _ in peers.sent} == {("b", "sides"), ("c", "sides")}
        for peer in "bc":
            [body] = [body for p, _, body in peers.sent if p == peer]
            sides = decode_sides(body)
            assert {bytes.fromhex(s[0]) for s in sides} == {
                c.trace_id for c in made if owner(c) == peer
            }
            assert len(sides) == 3 * len([c for c in made if owner(c) == peer])
        paired_here = pipelines["a"].pairer.stats.paired
        assert paired_here == len([c for c in made if owner(c) == "a"])

        node_b = ClusterSink(b, RING, Peers({}), 1 << 24, b, shared_store=True, committer=b.writer)
        [body] = [body for p, _, body in peers.sent if p == "b"]

        async def commit() -> int:
            decoded = await node_b.take_sides(body, "identity")
            return decoded.stored or 0

        assert asyncio.run(commit()) == 3 * len([c for c in made if owner(c) == "b"])
        # Queued, not committed, when answered: b's writer pairs them on its next group.
        want = len([c for c in made if owner(c) == "b"])
        deadline = time.monotonic() + 30
        while pipelines["b"].pairer.stats.paired < want and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pipelines["b"].pairer.stats.paired == want
        assert stored(b) == 0  # records only: the spans are a's to store

        # The same records again (a's client retried after another owner failed it), once
        # b committed the group that paired them: b's calls are not paired twice.
        assert isinstance(b.writer, BatchWriter)
        while b.writer.commits < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert asyncio.run(commit()) == 3 * want
        deadline = time.monotonic() + 30
        while pipelines["b"].pairer.stats.repeated < 3 * want and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pipelines["b"].pairer.stats.repeated == 3 * want
        assert pipelines["b"].pairer.stats.paired == want

        with pytest.raises(DecodeError):
            asyncio.run(node_b.take_sides(body[:-1], "identity"))


def test_tail_sampling_still_routes_whole_spans_over_a_shared_store(tmp_path: Path) -> None:
    """The tail sampler decides on whole traces: its spans go to their owners as before."""
    config = from_mapping(
        {"tail": {"enabled": True, "decision_wait_seconds": 5, "policies": [ERRORS]}}
    )
    pipeline = Pipeline(
        DuckDBStorage(tmp_path / "n.duckdb"),
        SystemClock(),
        tail=TailSampler.from_config(config.tail),
    )
    peers = KeepingPeers()
    made = calls(60)
    with worker_sink(pipeline, WorkerSettings(processes=1)) as workers:
        sink = ClusterSink(workers, RING, peers, 1 << 24, workers, shared_store=True)
        submit(sink, request(made))
        assert peers.span_ids("b") == span_ids(made, "b") and peers.span_ids("c") == span_ids(
            made, "c"
        )


def zipkin_body(made: list[Call], bad: bool = False) -> bytes:
    spans = [
        {"traceId": c.trace_id.hex(), "id": f"{i + 1:016x}", "name": "get", "kind": "SERVER",
         "timestamp": 1_700_000_000_000_000, "duration": 1000,
         "localEndpoint": {"serviceName": "zipkin-svc"}}
        for i, c in enumerate(made)
    ]  # fmt: skip
    if bad:
        spans[-1]["id"] = "not hex"
    return orjson.dumps(spans)


def test_over_a_shared_store_a_request_an_owner_cannot_take_stores_nothing_here(
    tmp_path: Path,
) -> None:
    """The pairing records go first: with owner c down the client gets a 503 before any of
    its spans is stored (or counted) here, so its retry stores and counts them once."""
    made = calls(60)
    down = Peers({"b": Reply(0, ""), "c": UnavailableError("c is down")})
    up = SidesPeers()
    pipeline = Pipeline(DuckDBStorage(tmp_path / "a.duckdb"), SystemClock())
    with worker_sink(pipeline, WorkerSettings(processes=1)) as a:
        sink = ClusterSink(a, RING, down, 1 << 24, a, shared_store=True, committer=a.writer)
        with pytest.raises(UnavailableError):
            submit(sink, request(made))
        assert stored(a) == 0 and a.writer.pending_items == 0
        sink = ClusterSink(a, RING, up, 1 << 24, a, shared_store=True, committer=a.writer)
        assert submit(sink, request(made)) == 0  # the retry, c back
        assert stored(a) == 3 * len(made)


def test_over_a_shared_store_a_zipkin_body_is_stored_here_and_owners_get_records(
    workers: WorkerSink,
) -> None:
    made = calls(40)
    peers = SidesPeers()
    sink = ClusterSink(workers, RING, peers, 1 << 24, workers, shared_store=True)

    async def send(body: bytes) -> Decoded:
        return await sink.submit_encoded("zipkin", body, "identity", json=True)

    with pytest.raises(BodyError):  # one bad span: the whole body, before anything
        asyncio.run(send(zipkin_body(made, bad=True)))
    assert stored(workers) == 0 and peers.sent == []
    asyncio.run(send(zipkin_body(made)))
    assert stored(workers) == len(made)  # every span, whoever owns its trace
    for peer in "bc":
        [(kind, body)] = [(kind, body) for p, kind, body in peers.sent if p == peer]
        assert kind == "sides"
        assert {bytes.fromhex(s[0]) for s in decode_sides(body)} == {
            c.trace_id for c in made if owner(c) == peer
        }
