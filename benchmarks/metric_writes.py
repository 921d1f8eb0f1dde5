"""What the DuckDB metric store's sample cache costs the writer (ADR 0009).

Writes batches of one sample per series (as a scrape or a span-metrics flush does) to a
fresh DuckDB file, with the sample cache off and on, and prints the CPU time per point
(process time of this thread's work, averaged over the second half of the batches, when
the series' arrays are past their first growth steps).

    .venv/bin/python benchmarks/metric_writes.py [--batches 60] [--series 1000 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshscope.model.metrics import Histogram, MetricPoint, MetricType
from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.metrics import DEFAULT_SAMPLE_CACHE_BYTES, DuckDBMetricStore

INTERVAL_NS = 15 * 10**9


def batches(series: int, count: int, histograms: bool) -> Iterator[list[MetricPoint]]:
    for batch in range(count):
        time_ns = (batch + 1) * INTERVAL_NS
        if histograms:
            yield [
                MetricPoint("h", (("s", str(s)),), time_ns, MetricType.HISTOGRAM,
                            histogram=Histogram((0.1, 1.0), (batch, batch, batch), 1.0, 3 * batch))
                for s in range(series)
            ]  # fmt: skip
        else:
            yield [
                MetricPoint("m", (("s", str(s)),), time_ns, MetricType.COUNTER, float(batch))
                for s in range(series)
            ]


def cpu_per_point(series: int, count: int, histograms: bool, cache_bytes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "writes.duckdb")
        try:
            store = DuckDBMetricStore(db, cache_bytes)
            spent = 0.0
            for index, points in enumerate(batches(series, count, histograms)):
                began = time.process_time()
                store.write_points(points)
                if index >= count // 2:
                    spent += time.process_time() - began
        finally:
            db.close()
    return spent / ((count - count // 2) * series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()
    print("CPU per point written (us): cache off, cache on, difference")
    for histograms in (False, True):
        for series in args.series:
            off = cpu_per_point(series, args.batches, histograms, 0)
            on = cpu_per_point(series, args.batches, histograms, DEFAULT_SAMPLE_CACHE_BYTES)
            kind = "histogram" if histograms else "float"
            print(
                f"  {kind:>9} x {series:>6} series: {off * 1e6:6.2f} {on * 1e6:6.2f}"
                f" {(on - off) * 1e6:+6.2f}"
            )


if __name__ == "__main__":
    main()
