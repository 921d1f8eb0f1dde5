"""The owner's metric updates (span metrics, service graph, request metrics: `Pipeline.observe`)
per batch against once per group of batches, on one core, in one run.

Batches are what the ingest workers send the owner: loadgen requests of 500 spans prepared by
`prepare_traces`, whole (one node) or split in three by a 3-node ring's owners (what each
node of a cluster gets when clients send to any node). Their observations are made outside
the timing; the timed part is `Pipeline.observe`, for each batch alone (as every group was
observed before) or once for groups of 6 and 18 (the writer's groups: one per commit), and
one collect of the registry at the end (where span metrics add their sums to the series).

    .venv/bin/python benchmarks/observe.py [--requests 120] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from meshscope.clock import ManualClock
from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Table, split_body
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.pipeline.chain import Observations, Pipeline
from meshscope.pipeline.prepared import Prepared
from meshscope.store.duckdb.span_rows import encode_columns
from meshscope.store.memory import MemoryStorage

GROUPS = (6, 18)


def _observations(batches: list[Prepared]) -> list[Observations]:
    pipeline = Pipeline(MemoryStorage(), ManualClock())
    return [pipeline.derive_deferred([batch])[1] for batch in batches]


def _observe_s(observations: list[Observations], group: int) -> float:
    """Seconds to observe them into a fresh registry, `group` at a time (1: each alone)."""
    pipeline = Pipeline(MemoryStorage(), ManualClock())
    began = time.perf_counter()
    for first in range(0, len(observations), group):
        together = Observations()
        for one in observations[first : first + group]:
            together.extend(one)
        pipeline.observe(together)
    pipeline.registry.collect(0)  # span metrics hand their sums to the series here
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=5, help="best of")
    args = parser.parse_args()
    bodies = build_requests(args.requests, 500, services=12, seed=7, base_ns=time.time_ns())
    ring = Ring.of(["a", "b", "c"])
    table = Table(ring.peers, ring.owners, "a")
    thirds = [
        part.body
        for body in bodies
        for part in (split_body("traces", body, "identity", False, table, 1 << 26) or {}).values()
    ]
    for name, raw in (("whole requests", bodies), ("thirds (a cluster node's parts)", thirds)):
        batches = [prepare_traces(body, encode=encode_columns)[0] for body in raw]
        spans = sum(batch.span_count for batch in batches)
        keys = statistics.mean(
            len(batch.span_metrics.keys) for batch in batches if batch.span_metrics
        )
        observations = _observations(batches)
        each = min(_observe_s(observations, 1) for _ in range(args.repeat)) / spans * 1e6
        print(f"{name}: {spans / len(batches):.0f} spans and {keys:.0f} span-metric label sets"
              f" per batch; each batch alone {each:.2f} us/span")  # fmt: skip
        for group in GROUPS:
            once = min(_observe_s(observations, group) for _ in range(args.repeat)) / spans * 1e6
            print(f"  once per {group} batches: {once:.2f} us/span ({once / each:.2f}x)")


if __name__ == "__main__":
    main()
