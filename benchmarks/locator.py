"""Trace locator: memory held and lookup time, runs in memory vs runs spilled to files.

Builds two locators over the same entries the way the store does (a run read at open, then
folds of --fold entries, half of them traces held already), one with every run in memory and
one spilling runs of SPILL_ENTRIES or more (ADR 0019 revision 2), and prints for each: the
entries, the runs, the bytes held in memory, and the time of `ranges` for 1 id and for 50 ids
(a search's first round of candidates), half of them held and half not, p50 / p99 over
--lookups rounds. Times are of this process, alternating the two locators round by round.

    .venv/bin/python benchmarks/locator.py [--entries 20000000] [--fold 250000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from meshscope.store.duckdb.trace_locator import Run, Spill, SpilledRun, TraceLocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000_000)
    parser.add_argument("--fold", type=int, default=250_000, help="entries per fold")
    parser.add_argument("--lookups", type=int, default=300, help="rounds per size")
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    opened = args.entries // 2  # read at open; the rest comes in folds
    keys = rng.integers(0, 2**64, opened, dtype=np.uint64)
    firsts = rng.integers(0, 10**15, opened)
    stored = Run.of(keys, firsts, firsts + 10**9)
    directory = Path(tempfile.mkdtemp(prefix="locator-bench-"))
    started = time.perf_counter()
    spilled = TraceLocator([stored], spill=Spill(directory))
    print(f"open: {opened:,} entries read, spilled in {time.perf_counter() - started:.2f} s")
    plain = TraceLocator([stored])
    del stored
    fold_seconds = {"in memory": 0.0, "spilled": 0.0}
    held = keys
    while len(plain) < args.entries:
        again = rng.choice(held, args.fold // 2)
        new = rng.integers(0, 2**64, args.fold - again.size, dtype=np.uint64)
        batch = np.concatenate([again, new])
        starts = rng.integers(0, 10**15, batch.size)
        for name, locator in (("in memory", plain), ("spilled", spilled)):
            began = time.perf_counter()
            locator.add(batch, starts, starts + 5)
            locator.fold()
            fold_seconds[name] += time.perf_counter() - began
        held = new
    lookups: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.lookups):
        for count in (1, 50):
            wanted = np.concatenate(
                [
                    rng.choice(keys, count - count // 2),
                    rng.integers(0, 2**64, count // 2, np.uint64),
                ]
            ).tolist()
            answers = []
            for name, locator in (("in memory", plain), ("spilled", spilled)):
                began = time.perf_counter()
                answers.append(locator.ranges(wanted))
                lookups.setdefault((name, count), []).append(time.perf_counter() - began)
            assert answers[0] == answers[1]
    print(f"{'':10} {'entries':>12} {'runs':>5} {'spilled':>7} {'memory MiB':>10} {'B/entry':>7}"
          f" {'folds s':>7} {'1 id p50/p99 ms':>16} {'50 ids p50/p99 ms':>18}")  # fmt: skip
    for name, locator in (("in memory", plain), ("spilled", spilled)):
        on_file = sum(isinstance(run, SpilledRun) for run in locator.runs)
        row = f"{name:10} {len(locator):12,} {len(locator.runs):5} {on_file:7} "
        row += f"{locator.nbytes / 2**20:10.1f} {locator.nbytes / len(locator):7.2f} "
        row += f"{fold_seconds[name]:7.2f}"
        for count in (1, 50):
            cuts = statistics.quantiles(lookups[(name, count)], n=100)
            row += f" {cuts[49] * 1e3:7.3f}/{cuts[98] * 1e3:<8.3f}"
        print(row)
    ratio = plain.nbytes / spilled.nbytes
    print(f"memory held, in memory / spilled: {ratio:.1f}x")


if __name__ == "__main__":
    main()
