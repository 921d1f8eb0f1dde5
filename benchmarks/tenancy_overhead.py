"""Ingest with tenancy on vs off, in one run (issue 15: within 10%).

The same `meshscope serve` (DuckDB, ingest worker processes) and the same OTLP/HTTP load
(closed-loop senders, 500-span requests, `benchmarks/ingest.py`'s requests) in rounds that
alternate between configurations, each on a fresh data directory:
- off: tenancy off (one store, as before);
- on, 1 tenant: tenancy on, every request `X-Scope-OrgID: bench` (one tenant's store);
- on, 4 tenants: tenancy on, senders spread over 4 tenants (4 stores, 4 writers).
Durable spans/s per round, the median per configuration and the ratios to off are printed.

Usage: .venv/bin/python benchmarks/tenancy_overhead.py [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from ingest import SPANS_PER_REQUEST, Server, Tally, sender
from meshscope.ingest.loadgen import build_requests

CONFIGS = {
    "off": ({}, 0),
    "on, 1 tenant": ({"MESHSCOPE_TENANCY__ENABLED": "true"}, 1),
    "on, 4 tenants": ({"MESHSCOPE_TENANCY__ENABLED": "true"}, 4),
}


def round_rate(env: dict[str, str], tenants: int, bodies: list[bytes], seconds: float,
               senders: int) -> tuple[float, Tally]:  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="meshscope-tenancy-bench-"))
    server = Server(workdir, storage_env=env)
    try:
        server.start()
        tally = Tally()
        warm_stop = time.monotonic() + 3  # every tenant's store opened before timing
        _drive(server.http_port, bodies, warm_stop, Tally(), senders, tenants)
        stop_at = time.monotonic() + seconds
        began = time.monotonic()
        _drive(server.http_port, bodies, stop_at, tally, senders, tenants)
        return tally.acked_spans / (time.monotonic() - began), tally
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _drive(port: int, bodies: list[bytes], stop_at: float, tally: Tally, senders: int,
           tenants: int) -> None:  # fmt: skip
    threads = [
        threading.Thread(
            target=sender,
            args=(port, bodies, stop_at, tally, i, senders, False, 0.0, _headers(i, tenants)),
        )
        for i in range(senders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _headers(index: int, tenants: int) -> dict[str, str]:
    """Sender `index`'s tenant header (none: tenancy off)."""
    return {"X-Scope-OrgID": f"bench-{index % tenants}"} if tenants else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--distinct", type=int, default=200)
    args = parser.parse_args()
    base_ns = time.time_ns() - 20 * 60 * 10**9
    bodies = build_requests(args.distinct, SPANS_PER_REQUEST, services=12, seed=7, base_ns=base_ns)
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for round_no in range(args.rounds):
        for name, (env, tenants) in CONFIGS.items():
            rate, tally = round_rate(env, tenants, bodies, args.seconds, args.senders)
            rates[name].append(rate)
            print(f"round {round_no + 1} {name}: {rate:,.0f} durable spans/s "
                  f"(refused {tally.refused}, errors {tally.errors})", flush=True)  # fmt: skip
    off = statistics.median(rates["off"])
    for name, found in rates.items():
        median = statistics.median(found)
        print(f"{name}: median {median:,.0f} spans/s, ratio to off {median / off:.3f}")


if __name__ == "__main__":
    main()
