"""Pipeline cost: ingest spans/s with derivation + tail sampling on vs. off, in one run.

Realistic spans from `meshscope.ingest.loadgen` (pre-encoded OTLP requests of ~500 spans,
traces of 1-8 calls over 8 services, 5% errors), decoded with `decode_otlp` inside the timed
loop, then written to a fresh store (a DuckDB file in a temp dir by default, or MemoryStorage)
three ways:

    store only        decode -> storage.write_batch             (no derivation, no sampling)
    pipeline          decode -> Pipeline.consume (span metrics, service graph, access logs)
    pipeline + tail   decode -> Pipeline.consume -> TailSampler (errors, latency >= 48 ms,
                      10% of the rest; 10 s decision wait on a simulated clock) -> store

and prints spans/s of each and the cost of the pipeline as a share of the store-only rate
(target: <= 30%). Then the memory one buffered trace costs (tracemalloc): the sampler's own
bookkeeping, and with the store's encoded rows it holds.

    .venv/bin/python benchmarks/pipeline.py [--requests 120] [--spans 500] [--store duckdb]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from meshscope.clock import ManualClock
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.model.batch import Batch
from meshscope.model.spans import Span
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.sampling.config import TailSamplingConfig
from meshscope.pipeline.sampling.policy_config import (
    LatencyThreshold,
    PolicyConfig,
    Probabilistic,
    StatusCodeMatch,
)
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.store.base import Operation, Storage
from meshscope.store.duckdb.span_rows import encode_columns
from meshscope.store.factory import open_storage

SIMULATED_SECONDS_PER_REQUEST = 0.1  # 500 spans per 0.1 s: a service mesh at 5k spans/s
SIMULATED_NS_PER_REQUEST = int(SIMULATED_SECONDS_PER_REQUEST * 1e9)
FLUSH_NS = 15 * 10**9
TAIL = TailSamplingConfig(
    enabled=True,
    policies=(
        PolicyConfig("errors", StatusCodeMatch(("ERROR",))),
        PolicyConfig("slow", LatencyThreshold(48)),
        PolicyConfig("some", Probabilistic(10)),
    ),
)


def _run(
    bodies: list[bytes],
    storage: Storage,
    consume: Callable[[list[Span]], None],
    clock: ManualClock,
    finish: Callable[[], None],
) -> float:
    gc.collect()
    start = time.perf_counter()
    spans = 0
    for body in bodies:
        batch = decode_otlp("traces", body).batch
        consume(batch.spans)
        spans += len(batch.spans)
        clock.advance(SIMULATED_SECONDS_PER_REQUEST)
    finish()  # the tail sampler decides and writes what it still holds
    storage.close()
    return spans / (time.perf_counter() - start)


def _consumer(
    mode: str, storage: Storage, clock: ManualClock
) -> tuple[Callable[[list[Span]], None], Pipeline | None]:
    if mode == "store only":

        def write(spans: list[Span]) -> None:
            ops = [Operation(s.service, s.name, s.kind) for s in spans]
            storage.write_batch(spans=spans, operations=ops)

        return write, None
    tail = TailSampler.from_config(TAIL) if mode == "pipeline + tail" else None
    pipeline = Pipeline(storage, clock, tail=tail)

    def consume(spans: list[Span]) -> None:
        pipeline.consume(Batch(spans=spans))
        pipeline.tick()  # the server ticks every second; here every simulated 0.1 s
        if clock.now_ns() % FLUSH_NS < SIMULATED_NS_PER_REQUEST:
            pipeline.flush(changed_only=True)  # as the server does every 15 s

    return consume, pipeline


def measure(bodies: list[bytes], kind: str, directory: Path) -> dict[str, float]:
    rates: dict[str, float] = {}
    for mode in ("store only", "pipeline", "pipeline + tail"):
        path = directory / f"{len(rates)}.duckdb"
        clock = ManualClock()
        storage: Storage = open_storage(kind, str(path))
        consume, pipeline = _consumer(mode, storage, clock)
        finish = pipeline.drain if pipeline is not None else (lambda: None)
        rates[mode] = _run(bodies, storage, consume, clock, finish)
        if pipeline is not None and pipeline.tail is not None:
            stats = pipeline.tail.stats
            total = stats.traces_sampled + stats.traces_not_sampled
            print(f"  tail sampling kept {stats.traces_sampled:,}/{total:,} traces")
    return rates


def memory_per_trace(bodies: list[bytes]) -> tuple[float, float, int]:
    """(bytes of sampler bookkeeping per trace, bytes incl. the encoded rows it holds, traces).
    The rows are the DuckDB store's Arrow rows (allocated by Arrow, not seen by tracemalloc:
    counted with `pyarrow.total_allocated_bytes`)."""
    matcher = TailSampler.from_config(TAIL).matcher
    prepared = [prepare_traces(body, encode=encode_columns, matcher=matcher)[0] for body in bodies]
    sampler = TailSampler.from_config(TAIL)
    gc.collect()
    tracemalloc.start()
    for item in prepared:
        assert item.traces is not None
        sampler.offer(item.encoded_spans, item.traces, 0)
    bookkeeping = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    traces = sampler.buffered_traces
    del prepared, sampler
    gc.collect()
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    sampler = TailSampler.from_config(TAIL)
    for body in bodies:
        item = prepare_traces(body, encode=encode_columns, matcher=sampler.matcher)[0]
        assert item.traces is not None
        sampler.offer(item.encoded_spans, item.traces, 0)
        del item
    gc.collect()
    with_rows = tracemalloc.get_traced_memory()[0] + pa.total_allocated_bytes() - arrow_before
    tracemalloc.stop()
    return bookkeeping / traces, with_rows / traces, traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--spans", type=int, default=500)
    parser.add_argument("--store", choices=["duckdb", "memory"], default="duckdb")
    args = parser.parse_args()
    bodies = build_requests(args.requests, args.spans)
    total = args.requests * args.spans
    print(f"{args.requests} requests x {args.spans} spans ({total:,} spans), store: {args.store}")
    with tempfile.TemporaryDirectory() as directory:
        rates = measure(bodies, args.store, Path(directory))
    base = rates["store only"]
    for mode, rate in rates.items():
        cost = 1 - rate / base
        share = rate / base
        print(f"{mode:<16} {rate:>10,.0f} spans/s ({share:6.1%} of store only, cost {cost:.1%})")
    verdict = "meets" if 1 - rates["pipeline + tail"] / base <= 0.30 else "misses"
    print(f"derivation + tail sampling {verdict} the <= 30% cost target")
    own, with_spans, traces = memory_per_trace(bodies[:40])
    print(
        f"memory per buffered trace ({traces:,} traces): sampler bookkeeping {own:,.0f} B, "
        f"with its encoded rows {with_spans:,.0f} B"
    )


if __name__ == "__main__":
    main()
