"""Decode throughput of the OTLP span decoder on one core.

Builds pre-encoded `ExportTraceServiceRequest` bodies (`meshscope.ingest.loadgen`: ~500 spans
each, 8 attributes and one event per span, parent/child traces over several services), then
prints spans/s for: protobuf parse alone (upb), the full protobuf decode to model spans, the
ingest workers' direct walk into the DuckDB store's columns and the derivation inputs
(`ingest.otlp_direct`, the model path's equivalent being decode + `prepare`), and the
OTLP/JSON decode, with ratios measured in this run.

    .venv/bin/python benchmarks/decode.py [--requests 40] [--spans 500] [--services 8]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.otlp_traces import decode_traces_json, decode_traces_protobuf
from meshscope.pipeline.prepared import prepare
from meshscope.store.duckdb.span_rows import encode_columns, encode_spans


def _rate(bodies: list[bytes], decode: Callable[[bytes], int], rounds: int) -> float:
    """Best spans/s over `rounds` passes through all bodies."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        spans = sum(decode(body) for body in bodies)
        best = max(best, spans / (time.perf_counter() - start))
    return best


def _parse_only(body: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--spans", type=int, default=500)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    bodies = build_requests(args.requests, args.spans, args.services)
    size = sum(map(len, bodies)) / len(bodies)
    print(f"{len(bodies)} requests x {args.spans} spans, {size / 1024:.0f} KiB each")

    parse = _rate(bodies, _parse_only, args.rounds)
    full = _rate(bodies, lambda b: len(decode_traces_protobuf(b).batch.spans), args.rounds)
    model = _rate(
        bodies,
        lambda b: prepare(decode_traces_protobuf(b).batch, encode_spans).span_count,
        args.rounds,
    )
    direct = _rate(
        bodies, lambda b: prepare_traces(b, encode=encode_columns)[0].span_count, args.rounds
    )
    json_bodies = [
        MessageToJson(ExportTraceServiceRequest.FromString(b)).encode() for b in bodies[:8]
    ]
    json_rate = _rate(json_bodies, lambda b: len(decode_traces_json(b).batch.spans), 2)

    print(f"protobuf parse only (upb):       {parse:>10,.0f} spans/s")
    print(f"protobuf decode -> model spans:  {full:>10,.0f} spans/s ({full / parse:.1%} of parse)")
    print(f"decode + prepare (model path):   {model:>10,.0f} spans/s")
    print(f"direct walk (what workers run):  {direct:>10,.0f} spans/s ({direct / model:.2f}x)")
    ratio = json_rate / full
    print(f"OTLP/JSON decode -> model spans: {json_rate:>10,.0f} spans/s ({ratio:.1%} of protobuf)")


if __name__ == "__main__":
    main()
