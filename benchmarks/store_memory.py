"""Store memory under sustained writes: the DuckDB store alone, in this process.

Writes fresh traces (the ingest benchmark's requests with new trace ids and times, decoded
here) into a `DuckDBStorage` with `--memory-limit` as fast as one process can, and prints
every 30 s: spans written, this process's RSS, what DuckDB accounts for in memory, the trace
locator's bytes in memory, the rest (RSS - DuckDB - locator) and glibc malloc's bytes in use
and free. A rest that stays level is a store whose memory outside DuckDB's limit does not grow
with the data it holds (the soak measures the whole server: `soak.py`).

    .venv/bin/python benchmarks/store_memory.py [--minutes 8] [--memory-limit 1GB]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import tempfile
import time
from pathlib import Path

from meshscope.ingest.loadgen import FreshTraces, build_requests
from meshscope.ingest.otlp import decode_otlp
from meshscope.store.duckdb import DuckDBStorage

_MALLINFO2 = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2.split()]


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--memory-limit", default="1GB")
    args = parser.parse_args()
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    bodies = build_requests(100, 500)
    fresh = FreshTraces(bodies, time.time_ns())
    work = Path(tempfile.mkdtemp(prefix="meshscope-store-memory-"))
    storage = DuckDBStorage(work / "store.duckdb", memory_limit=args.memory_limit)
    began = time.monotonic()
    stop_at, report_at, spans, sent = began + args.minutes * 60, began, 0, 0
    print(f"{'s':>5} {'spans':>11} {'RSS MiB':>8} {'DuckDB':>7} {'locator':>7} {'rest':>6}"
          f" {'malloc used':>11} {'free':>6}")  # fmt: skip
    try:
        while time.monotonic() < stop_at:
            body = fresh.request(sent % len(bodies), sent // len(bodies) + 1)
            sent += 1
            batch = decode_otlp("traces", body).batch
            storage.write_batch(batch.spans, batch.logs)
            spans += len(batch.spans)
            if time.monotonic() >= report_at:
                report_at += 30
                memory, rss, malloc = storage.memory(), _rss_mib(), libc.mallinfo2()
                duckdb, locator = memory.duckdb_bytes / 2**20, memory.locator_bytes / 2**20
                print(f"{time.monotonic() - began:5.0f} {spans:11,} {rss:8.0f} {duckdb:7.0f}"
                      f" {locator:7.0f} {rss - duckdb - locator:6.0f}"
                      f" {malloc.uordblks / 2**20:11.0f} {malloc.fordblks / 2**20:6.0f}",
                      flush=True)  # fmt: skip
    finally:
        storage.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
