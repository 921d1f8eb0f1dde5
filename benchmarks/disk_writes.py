"""Bytes written to disk per span at low and high ingest rates (write amplification).

For each rate a fresh `meshscope serve` (DuckDB file in a temp dir, free loopback ports) gets
pre-encoded OTLP/HTTP protobuf trace requests (ingest/loadgen.py: mesh-like spans) paced at
that rate for a fixed time, then is stopped with SIGINT. How the spans are cut into requests:
- `--exporters N` (default 10): as N OpenTelemetry SDKs send them, each with the
  BatchSpanProcessor defaults (an export every 5 s, or as soon as 512 spans wait): requests of
  rate*5/N spans (1..512), e.g. 2 requests/s of 5 spans at 10 spans/s;
- `--requests-per-second R`: R requests a second whatever the rate (the worst case at low
  rates: 1 span per request at 10 spans/s with R=10).
Every group of requests is one durable commit (fsync), and the kernel writes a log append as
whole 4 KiB pages, so a commit costs at least ~4 KiB however few spans it holds; at low load
the commit window (ADR 0018) lets requests arriving within a second share one.
Bytes are counted in the steady state: before that every request is sent once, unpaced (the
load's metric series, operations and resources are created, a one-time cost), then the load
runs past one metric flush and one commit-window probe (`--no-warm`: count from the start,
first-time writes included).
Printed per rate:
- `load B/span`: bytes the server's processes sent to the disk while the load ran
  (`write_bytes` of /proc/<pid>/io, the owner and its ingest workers): the steady state;
- `log B/span`: what the DuckDB log grew by during the load (the logical bytes appended);
- `total B/span`: from the start of the load through the clean stop, from the exit status's
  rusage (`ru_oublock`): adds the final checkpoint, which writes the database file once (a
  few MB whatever the load: a large share of a short run at a low rate);
- `file` and `wal`: the DuckDB file and its log after the stop (the log should be gone);
- the ratio of each rate's load and total figures to the highest rate's.
This is a byte count, not a speed measurement: it may run while the machine is busy.

Usage: .venv/bin/python benchmarks/disk_writes.py [--seconds 20] [--rates 10,100,1000,10000]
    [--exporters 10 | --requests-per-second 10] [--no-warm]
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
from meshscope.config import PipelineConfig
from meshscope.ingest.loadgen import build_requests
from meshscope.pipeline.commit_window import PROBE_EVERY_S

MAX_SPANS_PER_REQUEST = 512  # the BatchSpanProcessor's max_export_batch_size
EXPORT_DELAY_S = 5.0  # its schedule_delay
FLUSH_INTERVAL_S = PipelineConfig().flush_interval_seconds


@dataclass
class Phase:
    rate: int
    spans_per_request: int
    acked_spans: int
    failures: int
    load_bytes: int
    log_bytes: int
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


def spans_per_request(rate: int, exporters: int, requests_per_second: float) -> int:
    """How many spans each request carries (see the module docstring)."""
    if requests_per_second:
        wanted = rate / requests_per_second
    else:
        wanted = rate * EXPORT_DELAY_S / exporters
    return min(MAX_SPANS_PER_REQUEST, max(1, round(wanted)))


def _warm(port: int, bodies: list[bytes], spans: int, rate: float) -> None:
    """The steady state before bytes are counted: every body sent once, unpaced (the
    services, operations, resources and metric series of the load exist), then the load
    itself past one metric flush and one probe of the commit window (which the unpaced
    burst turned off: nothing waited in it would join a held group late)."""
    _send(port, bodies, spans, 1000.0, len(bodies) / 1000.0)
    _send(port, bodies, spans, rate, max(FLUSH_INTERVAL_S, PROBE_EVERY_S) + 1.0)


def measure(rate: int, seconds: float, spans: int, warm: bool) -> Phase:
    base_ns = time.time_ns() - 20 * 60 * 10**9  # inside the retention window
    bodies = build_requests(
        min(100, max(1, int(rate * seconds / spans))), spans, seed=rate, base_ns=base_ns
    )
    workdir = Path(tempfile.mkdtemp(prefix="meshscope-disk-"))
    server = Server(workdir)
    try:
        server.start()
        time.sleep(1.0)  # let start-up writes (schema, worker spawn) settle
        if warm:
            _warm(server.http_port, bodies, spans, rate / spans)
        pids = server.pids()
        before = _write_bytes(pids)
        log_before = _wal_size(server.db)
        acked, failed = _send(server.http_port, bodies, spans, rate / spans, seconds)
        load = _write_bytes(pids) - before
        log_grown = _wal_size(server.db) - log_before
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
            spans,
            acked,
            failed,
            load,
            log_grown,
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
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--exporters", type=int, default=10, help="SDKs sending (default 10)")
    shape.add_argument("--requests-per-second", type=float, default=0.0, help="fixed rate")
    parser.add_argument(
        "--warm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send every request once before counting (steady state; --no-warm: cold start)",
    )
    args = parser.parse_args()
    phases: list[Phase] = []
    print(f"{'spans/s':>8} {'spans/req':>9} {'acked':>8} {'fail':>4} {'load B/span':>12}"
          f" {'log B/span':>11} {'total B/span':>13} {'file':>10} {'wal':>8}")  # fmt: skip
    for rate in (int(text) for text in args.rates.split(",")):
        spans = spans_per_request(rate, args.exporters, args.requests_per_second)
        phase = measure(rate, args.seconds, spans, args.warm)
        phases.append(phase)
        per = max(1, phase.acked_spans)
        print(f"{rate:>8} {spans:>9} {phase.acked_spans:>8} {phase.failures:>4}"
              f" {phase.load_bytes / per:>12,.0f} {phase.log_bytes / per:>11,.0f}"
              f" {phase.total_bytes / per:>13,.0f} {phase.file_bytes:>10,}"
              f" {phase.wal_bytes:>8,}", flush=True)  # fmt: skip
    top = max(phases, key=lambda phase: phase.rate)
    for phase in phases:
        if phase is not top:
            load = _ratio(phase.load_bytes, phase, top.load_bytes, top)
            total = _ratio(phase.total_bytes, phase, top.total_bytes, top)
            print(f"{phase.rate} spans/s: {load:.1f}x the load bytes per span of {top.rate},"
                  f" {total:.1f}x with the final checkpoint")  # fmt: skip


def _ratio(value: int, phase: Phase, reference: int, top: Phase) -> float:
    per = value / max(1, phase.acked_spans)
    return per / max(1e-9, reference / max(1, top.acked_spans))


if __name__ == "__main__":
    main()
