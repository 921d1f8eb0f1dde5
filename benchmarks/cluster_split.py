"""What cluster routing adds to the ingest workers' CPU per span, on one core.

Builds pre-encoded `ExportTraceServiceRequest` bodies (`meshscope.ingest.loadgen`), then
times, per span: the workers' own work for a request (the direct walk into the ClickHouse
store's columns and the derivation inputs, `ingest.otlp_direct`), the cluster's split of the
request by trace owner over N peers (`cluster.split.split_body`: parse, group, re-encode one
protobuf part per owner), and the walk of this node's part. Prints the ratio of the routed
path (split + walk of the local share, as every node does for the requests it receives)
to the single-node path, measured in this run. The forward's HTTP request and the owner's
walk of the forwarded parts are not in it: the peers' walks add up to one walk per span, as
on one node; the HTTP POST per part is counted per request, not per span.

    .venv/bin/python benchmarks/cluster_split.py [--requests 40] [--spans 500] [--peers 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Table, split_body
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
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

    one = _us_per_span(bodies, walk, args.rounds)
    cut = _us_per_span(bodies, split, args.rounds)
    both = _us_per_span(bodies, routed, args.rounds)
    share = both - cut
    print(f"{len(bodies)} requests x {spans} spans, {args.peers} peers")
    print(f"single node, worker walk:          {one:6.2f} us/span")
    print(f"split by owner:                    {cut:6.2f} us/span")
    print(f"split + walk of the local share:   {both:6.2f} us/span (walk {share:.2f})")
    routed_total = cut + one  # every span is split once (receiver) and walked once (owner)
    print(f"worker CPU per span, cluster/single: {routed_total / one:.2f}x")


if __name__ == "__main__":
    main()
