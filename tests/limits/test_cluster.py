"""In cluster mode a split request is charged whole on the node that received it, before any
part is stored or forwarded; the parts (local and forwarded) are not charged again."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.cluster.forward import Reply
from meshscope.cluster.sink import ClusterSink
from meshscope.cluster.split import Part
from meshscope.ingest.otlp_common import Decoded
from meshscope.ingest.sink import BodyKind
from meshscope.limits.admission import Admission, admit_items, current_admission
from meshscope.limits.config import LimitsConfig, TenantLimits
from meshscope.limits.limiter import Limiter, RateLimitedError
from tests.cluster.test_sink import RING, LocalSink, Peers
from tests.cluster.traces import calls, request


class ChargingLocal(LocalSink):
    """Like the worker sink: charges what it decodes to the current admission, if any."""

    async def submit_encoded(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded:
        admit_items(1, 0, 0)
        return await super().submit_encoded(kind, raw, encoding, json=json)


class CountingPeers(Peers):
    def __init__(self) -> None:
        super().__init__({"b": Reply(0, ""), "c": Reply(0, "")})
        self.sent = 0

    async def send(self, peer: str, kind: str, part: Part) -> Reply:
        self.sent += part.items
        return await super().send(peer, kind, part)


def _spans(body: bytes) -> int:
    parsed = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in parsed.resource_spans for ss in rs.scope_spans)


def _submit(sink: ClusterSink, limiter: Limiter, spans: int) -> None:
    async def run() -> None:
        current_admission.set(Admission(limiter, "t"))
        await sink.submit_encoded("traces", request(calls(spans)), "identity", json=False)

    asyncio.run(run())


def test_a_split_request_is_charged_whole_once_and_refused_before_any_part() -> None:
    config = LimitsConfig(defaults=TenantLimits(spans_per_second=0.001, spans_burst=100))
    limiter = Limiter(config)
    peers = CountingPeers()
    local = ChargingLocal()
    sink = ClusterSink(local, RING, peers, 1 << 24)
    _submit(sink, limiter, 30)
    assert sink.split_requests == 1 and local.bodies and peers.sent
    # All spans of the request, once: the local part's own charge (1) did not count.
    assert limiter.items["t", "spans"] == _spans(request(calls(30)))
    forwarded, stored = peers.sent, len(local.bodies)
    with pytest.raises(RateLimitedError):
        _submit(sink, limiter, 30)  # over the burst left: nothing stored, nothing forwarded
    assert (peers.sent, len(local.bodies)) == (forwarded, stored)
