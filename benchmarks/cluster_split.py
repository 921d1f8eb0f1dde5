"""What cluster routing adds to the ingest workers' CPU per span, on one core.

Builds pre-encoded `ExportTraceServiceRequest` bodies (`meshscope.ingest.loadgen`), then
times, per span: the workers' own work for a request (the direct walk into the ClickHouse
store's columns and the derivation inputs, `ingest.otlp_direct`), the cluster's split of the
request by trace owner over N peers (`cluster.split.split_body`: parse, group, re-encode one
protobuf part per owner), and the walk of this node's part: the two worker calls a node
made before `route_traces`. Then `cluster.split.route_traces`, which splits and prepares the
local share in one pass, on the same sprayed bodies and on pre-routed ones (bodies whose
spans are all this node's: a full parse to learn that, then the walk, before). Prints the
ratios of the routed paths (what every node does for the requests it receives, plus the
owners' walks of the forwarded parts: one walk per forwarded span) to the single-node path,
measured in this run. The forward's HTTP request is not in it (counted per request, not per
span).

    .venv/bin/python benchmarks/cluster_split.py [--requests 40] [--spans 500] [--peers 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Table, route_traces, split_body
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.workers import SpanPreparation
from meshscope.store.clickhouse.span_rows import encode_columns

MAX = 64 * 1024 * 1024


def _us_per_span(bodies: list[bytes], work: Callable[[bytes], int], rounds: int) -> float:
    """Best microseconds per span over `rounds` passes through all bodies."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        spans = sum(work(body) for body in bodies)
        best = min(best, (time.perf_counter() - start) / spans * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--spans", type=int, default=500)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--peers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    bodies = build_requests(args.requests, args.spans, args.services)
    ring = Ring.of(f"n{i}" for i in range(args.peers))
    table = Table(ring.peers, ring.owners, ring.peers[0])
    spans: int = args.spans

    def walk(body: bytes) -> int:
        return prepare_traces(body, encode=encode_columns)[0].span_count

    def split(body: bytes) -> int:
        split_body("traces", body, "identity", False, table, MAX)
        return spans

    def routed(body: bytes) -> int:
        parts = split_body("traces", body, "identity", False, table, MAX) or {}
        local = parts.get(table.local)
        if local is not None:
            prepare_traces(local.body, encode=encode_columns)
        return spans

    spans_prep = SpanPreparation(encode_columns, None)

    def one_call(body: bytes) -> int:
        routed = route_traces(body, "identity", False, table, MAX, spans_prep)
        assert routed.outcome[0] == "ok"
        return spans

    local_bodies = [_only(body, table) for body in bodies]
    local_spans = [_count(body) for body in local_bodies]

    def pre_split(body: bytes) -> int:  # before: a full parse to learn it is all local
        assert split_body("traces", body, "identity", False, table, MAX) is None
        return walk(body)

    def pre_one_call(body: bytes) -> int:
        routed = route_traces(body, "identity", False, table, MAX, spans_prep)
        assert not routed.parts
        return int(routed.outcome[1].span_count)

    one = _us_per_span(bodies, walk, args.rounds)
    cut = _us_per_span(bodies, split, args.rounds)
    both = _us_per_span(bodies, routed, args.rounds)
    fused = _us_per_span(bodies, one_call, args.rounds)
    local_walk = _us_per_span(local_bodies, walk, args.rounds)
    pre_before = _us_per_span(local_bodies, pre_split, args.rounds)
    pre_after = _us_per_span(local_bodies, pre_one_call, args.rounds)
    share = both - cut
    remote = 1 - sum(local_spans) / (len(bodies) * spans)  # the share other owners walk
    print(f"{len(bodies)} requests x {spans} spans, {args.peers} peers")
    print(f"single node, worker walk:            {one:6.2f} us/span")
    print(f"split by owner:                      {cut:6.2f} us/span")
    print(f"split + walk of the local share:     {both:6.2f} us/span (walk {share:.2f})")
    print(f"route_traces (one pass):             {fused:6.2f} us/span")
    sprayed_before = both + remote * one
    sprayed_after = fused + remote * one
    print(
        f"sprayed, worker CPU per span, cluster/single: before {sprayed_before / one:.2f}x, "
        f"one pass {sprayed_after / one:.2f}x"
    )
    print(f"pre-routed bodies, walk alone:       {local_walk:6.2f} us/span")
    print(f"pre-routed, split + walk (before):   {pre_before:6.2f} us/span")
    print(f"pre-routed, route_traces:            {pre_after:6.2f} us/span")
    print(
        f"pre-routed, worker CPU per span, cluster/single: before {pre_before / local_walk:.2f}x, "
        f"one pass {pre_after / local_walk:.2f}x"
    )


def _only(body: bytes, table: Table) -> bytes:
    """The spans of `body` that `table`'s node owns, as one request (pre-routed traffic)."""
    request = ExportTraceServiceRequest.FromString(body)
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            kept = [span for span in ss.spans if table.owner(span.trace_id) == table.local]
            del ss.spans[:]
            ss.spans.extend(kept)
    return bytes(request.SerializeToString())


def _count(body: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


if __name__ == "__main__":
    main()
