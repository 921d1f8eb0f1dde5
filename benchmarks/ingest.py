"""End-to-end ingest benchmark: `meshscope serve` on a DuckDB file, fed pre-encoded OTLP/HTTP
protobuf requests (acknowledged = committed), beside the single-core decode floor.

Phases, all in one run:
1. decode floor: this process decodes + walks the same requests into model spans on one core;
2. distinct: every distinct request sent once -> spans/s and bytes on disk per span;
3. sustained: the requests cycled for --seconds at full speed -> durable spans/s, ratio to floor;
4. overload: twice the sustained rate offered -> share answered 429/503, peak server RSS.

Usage: .venv/bin/python benchmarks/ingest.py [--seconds 60] [--distinct 400]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp import decode_otlp

SPANS_PER_REQUEST = 500


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    workdir: Path
    http_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.workdir / "bench.duckdb"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            MESHSCOPE_SERVER__OTLP_HTTP_PORT=str(self.http_port),
            MESHSCOPE_SERVER__OTLP_GRPC_PORT=str(free_port()),
            MESHSCOPE_SERVER__ZIPKIN_PORT=str(free_port()),
            MESHSCOPE_SERVER__UI_PORT=str(self.ui_port),
            MESHSCOPE_STORAGE__PATH=str(self.db),
        )
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "meshscope.cli", "serve"], env=env, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.ui_port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start; see server.log")

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


@dataclass
class Tally:
    acked_spans: int = 0
    refused: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender(
    port: int, bodies: list[bytes], stop_at: float, tally: Tally, start: int, step: int,
    once: bool = False, pace_s: float = 0.0,
) -> None:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf"}
    index = start
    while time.monotonic() < stop_at:
        if once and index >= len(bodies):
            return
        began = time.monotonic()
        body = bodies[index % len(bodies)]
        index += step
        try:
            conn.request("POST", "/v1/traces", body, headers)
            response = conn.getresponse()
            response.read()
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with tally.lock:
                tally.errors += 1
            continue
        with tally.lock:
            if response.status == 200:
                tally.acked_spans += SPANS_PER_REQUEST
            elif response.status in (429, 503):
                tally.refused += 1
            else:
                tally.errors += 1
        if pace_s:
            time.sleep(max(0.0, pace_s - (time.monotonic() - began)))


def drive(
    port: int, bodies: list[bytes], seconds: float, senders: int, once: bool = False,
    pace_s: float = 0.0, on_tick: object = None,
) -> tuple[Tally, float]:  # fmt: skip
    tally = Tally()
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=sender, args=(port, bodies, stop_at, tally, i, senders, once, pace_s)
        )
        for i in range(senders)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if callable(on_tick):
            on_tick()
        time.sleep(0.2)
    return tally, time.monotonic() - began


def decode_floor(bodies: list[bytes]) -> float:
    began = time.perf_counter()
    spans = sum(len(decode_otlp("traces", body).batch.spans) for body in bodies)
    return spans / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--distinct", type=int, default=400, help="distinct requests to build")
    parser.add_argument("--senders", type=int, default=4)
    args = parser.parse_args()

    base_ns = time.time_ns() - 20 * 60 * 10**9
    print(f"building {args.distinct} requests x {SPANS_PER_REQUEST} spans ...", flush=True)
    bodies = build_requests(args.distinct, SPANS_PER_REQUEST, services=12, seed=7, base_ns=base_ns)
    mib = sum(map(len, bodies)) / 2**20
    print(f"  {mib:.1f} MiB of protobuf, {sum(map(len, bodies)) / (len(bodies) * 500):.0f} B/span")

    floor = decode_floor(bodies[:100])
    print(f"decode floor (one core, decode + walk into spans): {floor:,.0f} spans/s")

    workdir = Path(tempfile.mkdtemp(prefix="meshscope-bench-"))
    server = Server(workdir)
    server.start()
    try:
        tally, took = drive(server.http_port, bodies, 600, args.senders, once=True)
        distinct_spans = tally.acked_spans
        print(f"distinct: {distinct_spans:,} spans acked in {took:.1f} s = "
              f"{distinct_spans / took:,.0f} spans/s (errors {tally.errors})")  # fmt: skip
        server.stop()
        size = server.db.stat().st_size + _wal_size(server.db)
        print(f"on disk: {size / 2**20:.1f} MiB = {size / distinct_spans:.1f} bytes/span "
              f"(after clean shutdown; file + WAL)")  # fmt: skip
        server.start()

        peak = [0.0]
        tally, took = drive(
            server.http_port, bodies, args.seconds, args.senders,
            on_tick=lambda: peak.__setitem__(0, max(peak[0], server.rss_mib())),
        )  # fmt: skip
        rate = tally.acked_spans / took
        print(f"sustained {took:.0f} s: {rate:,.0f} durable spans/s "
              f"(refused {tally.refused}, errors {tally.errors}); ratio to decode floor "
              f"{rate / floor:.2f}; peak RSS {peak[0]:.0f} MiB")  # fmt: skip

        peak = [0.0]
        overload_senders = args.senders * 4
        tally, took = drive(
            server.http_port, bodies, min(30.0, args.seconds), overload_senders,
            on_tick=lambda: peak.__setitem__(0, max(peak[0], server.rss_mib())),
        )  # fmt: skip
        offered = tally.acked_spans + tally.refused * SPANS_PER_REQUEST
        print(f"overload ({overload_senders} senders, {offered / took:,.0f} spans/s offered): "
              f"{tally.acked_spans / took:,.0f} acked spans/s, "
              f"{tally.refused * SPANS_PER_REQUEST / max(offered, 1):.0%} answered 429/503, "
              f"errors {tally.errors}, peak RSS {peak[0]:.0f} MiB")  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _wal_size(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


if __name__ == "__main__":
    main()
