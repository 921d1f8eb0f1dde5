"""Bytes written to disk per span at low and high ingest rates (write amplification).

For each rate a fresh `meshscope serve` (DuckDB file in a temp dir, free loopback ports) gets
pre-encoded OTLP/HTTP protobuf trace requests (ingest/loadgen.py: mesh-like spans) paced at
that rate for a fixed time, then is stopped with SIGINT. Printed per rate:
- `load B/span`: bytes the server's processes sent to the disk while the load ran
  (`write_bytes` of /proc/<pid>/io, the owner and its ingest workers);
- `total B/span`: the same from the start of the load through the clean stop (the final
  checkpoint included), from the exit status's rusage (`ru_oublock`);
- `file` and `wal`: the DuckDB file and its log after the stop (the log should be gone);
- the ratio of each rate's total to the 10,000 spans/s figure.
This is a byte count, not a speed measurement: it may run while the machine is busy.

Usage: .venv/bin/python benchmarks/disk_writes.py [--seconds 20] [--rates 10,100,1000,10000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ingest import Server, _wal_size
from meshscope.ingest.loadgen import build_requests

MAX_SPANS_PER_REQUEST = 500
REQUESTS_PER_SECOND = 10  # below 5,000 spans/s: 10 requests a second, as several SDKs send


@dataclass
class Phase:
    rate: int
    acked_spans: int
    failures: int
    load_bytes: int
    total_bytes: int
    file_bytes: int
    wal_bytes: int


def _write_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _send(
    port: int, bodies: list[bytes], spans: int, rate: float, seconds: float
) -> tuple[int, int]:
    """Send `bodies` (each of `spans` spans) in a cycle at `rate` requests/s for `seconds`
    from 4 keep-alive connections (open loop: a slow answer does not delay the schedule
    unless all four wait); returns acknowledged spans and failed requests."""
    total = int(rate * seconds)
    begin = time.monotonic() + 0.05
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "failed": 0}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = state["next"]
                state["next"] += 1
            if i >= total:
                break
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.request(
                    "POST",
                    "/v1/traces",
                    bodies[i % len(bodies)],
                    {"Content-Type": "application/x-protobuf"},
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                ok = False
            with lock:
                state["acked" if ok else "failed"] += spans if ok else 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["acked"], state["failed"]


def measure(rate: int, seconds: float) -> Phase:
    spans = min(MAX_SPANS_PER_REQUEST, max(1, rate // REQUESTS_PER_SECOND))
    base_ns = time.time_ns() - 20 * 60 * 10**9  # inside the retention window
    bodies = build_requests(
        min(100, max(1, int(rate * seconds / spans))), spans, seed=rate, base_ns=base_ns
    )
    workdir = Path(tempfile.mkdtemp(prefix="meshscope-disk-"))
    server = Server(workdir)
    try:
        server.start()
        time.sleep(1.0)  # let start-up writes (schema, worker spawn) settle
        pids = server.pids()
        before = _write_bytes(pids)
        acked, failed = _send(server.http_port, bodies, spans, rate / spans, seconds)
        load = _write_bytes(pids) - before
        assert server.proc is not None
        pid = server.proc.pid
        server.proc.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(pid, 0)
        server.proc.returncode = os.waitstatus_to_exitcode(status)
        server.proc = None
        total = usage.ru_oublock * 512 - before
        db = server.db
        return Phase(
            rate,
            acked,
            failed,
            load,
            total,
            db.stat().st_size if db.exists() else 0,
            _wal_size(db),
        )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per rate")
    parser.add_argument("--rates", default="10,100,1000,10000", help="spans/s, comma-separated")
    args = parser.parse_args()
    phases: list[Phase] = []
    print(f"{'spans/s':>8} {'acked':>8} {'fail':>4} {'load B/span':>12} {'total B/span':>13}"
          f" {'file':>10} {'wal':>10}")  # fmt: skip
    for rate in (int(text) for text in args.rates.split(",")):
        phase = measure(rate, args.seconds)
        phases.append(phase)
        per = max(1, phase.acked_spans)
        print(f"{rate:>8} {phase.acked_spans:>8} {phase.failures:>4}"
              f" {phase.load_bytes / per:>12,.0f} {phase.total_bytes / per:>13,.0f}"
              f" {phase.file_bytes:>10,} {phase.wal_bytes:>10,}", flush=True)  # fmt: skip
    top = max(phases, key=lambda phase: phase.rate)
    reference = top.total_bytes / max(1, top.acked_spans)
    for phase in phases:
        if phase is not top and reference:
            ratio = phase.total_bytes / max(1, phase.acked_spans) / reference
            print(f"{phase.rate} spans/s writes {ratio:.1f}x the bytes per span of {top.rate}")


if __name__ == "__main__":
    main()
