"""Tail sampler cost per trace as its state fills: `TailSampler.offer` + `tick` on a simulated
clock, every trace new (as real traffic's are), in windows of --window traces.

The requests are `meshscope.ingest.loadgen`'s (500 spans, traces of 1-8 calls), prepared once
as the ingest workers prepare them (encoded rows + `TraceSummary`); each pass offers them again
with new trace ids. The clock advances as at --rate spans/s, with the documented 10 s
decision wait; at 40,000 spans/s (~8,900 new traces/s) the buffer reaches `num_traces`
(50,000 by default) in ~5.6 s, after which each new trace decides the oldest, and the
decided-trace caches (100,000 ids each) fill after the first few hundred thousand traces.
A cost per trace that grows from the first windows to the last is state the sampler scans
(the last-window / first ratio is printed).

    .venv/bin/python benchmarks/tail_sampler.py [--traces 800000] [--rate 40000]
"""

from __future__ import annotations

import argparse
import time

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.pipeline.sampling.config import TailSamplingConfig
from meshscope.pipeline.sampling.facts import TraceSummary
from meshscope.pipeline.sampling.policy_config import (
    LatencyThreshold,
    PolicyConfig,
    Probabilistic,
    StatusCodeMatch,
)
from meshscope.pipeline.sampling.tail import TailSampler
from meshscope.store.duckdb.span_rows import encode_columns

POLICIES = (
    PolicyConfig("errors", StatusCodeMatch(("ERROR",))),
    PolicyConfig("slow", LatencyThreshold(500)),
    PolicyConfig("some", Probabilistic(10)),
)


def renamed(summary: TraceSummary, stamp: int) -> TraceSummary:
    """The summary with every trace id's last 8 hex digits replaced by `stamp`'s."""
    suffix = f"{stamp:08x}"
    return summary._replace(trace_ids=[t[:-8] + suffix for t in summary.trace_ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=800_000)
    parser.add_argument("--rate", type=int, default=40_000, help="simulated spans/s")
    parser.add_argument("--window", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40, help="distinct requests")
    args = parser.parse_args()

    sampler = TailSampler.from_config(TailSamplingConfig(enabled=True, policies=POLICIES))
    prepared = []
    for body in build_requests(args.requests, 500, services=12, seed=7):
        batch = prepare_traces(body, encode=encode_columns, matcher=sampler.matcher)[0]
        assert batch.traces is not None
        prepared.append((batch.encoded_spans, batch.traces, batch.span_count))
    per_pass = sum(len(summary.trace_ids) for _, summary, _ in prepared)
    print(f"{args.requests} requests, {per_pass:,} traces a pass; simulated {args.rate:,} spans/s")

    now, offered, stamp = 10**18, 0, 0
    windows: list[float] = []
    window_began, window_traces = time.perf_counter(), 0
    while offered < args.traces:
        stamp += 1
        for encoded, summary, spans in prepared:
            fresh = renamed(summary, stamp)
            sampler.offer(encoded, fresh, now)
            now += spans * 10**9 // args.rate
            sampler.tick(now)
            offered += len(fresh.trace_ids)
            window_traces += len(fresh.trace_ids)
            if window_traces >= args.window:
                took = time.perf_counter() - window_began
                windows.append(took / window_traces * 1e6)
                print(
                    f"  traces {offered - window_traces:>9,}-{offered:>9,}: "
                    f"{windows[-1]:.2f} us/trace; held {sampler.buffered_traces:,} traces, "
                    f"caches {len(sampler.kept):,} kept / {len(sampler.dropped):,} dropped"
                )
                window_began, window_traces = time.perf_counter(), 0
    stats = sampler.stats
    print(
        f"last window / first: {windows[-1] / windows[0]:.2f}x; decided "
        f"{stats.traces_sampled + stats.traces_not_sampled:,} traces "
        f"({stats.traces_sampled:,} kept, {stats.traces_evicted:,} before their wait was over)"
    )


if __name__ == "__main__":
    main()
