"""Memory under hostile traffic (issue 17): a fresh `meshscope serve` on a DuckDB file (temp
dir, free loopback ports, stopped at the end) gets, for --seconds, every pathological read
request of tests/e2e/test_hostile_queries.py in a loop from --readers clients, beside the
hostile ingest of tests/e2e/test_isolation.py (values the store cannot hold, wrong types, over
OTLP/HTTP and gRPC, Zipkin, Loki and remote write, each hostile request interleaved with a
valid one). It prints the RSS of the owner and its ingest workers every 10 s, the first and
last minute's averages and the peak, the requests answered per status, and the 5xx count
(which must be 0). Bounded memory shows as a flat RSS once the first minute's caches filled.

    .venv/bin/python benchmarks/hostile_rss.py [--seconds 300] [--readers 2]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.e2e.test_durability import Ports, _children, serve
from tests.e2e.test_hostile_queries import HOSTILE, _get, _post, _seed_log, _seed_metric
from tests.e2e.test_isolation import Send, _senders

from ingest import process_rss_mib

SAMPLE_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--readers", type=int, default=2, help="clients looping hostile reads")
    args = parser.parse_args()
    ports = Ports()
    statuses: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def count(kind: str, status: int) -> None:
        with lock:
            statuses[f"{kind} {status}"] += 1

    def read_loop() -> None:
        while not stop.is_set():
            for _, path, _ in HOSTILE:
                count("read", _get(ports.ui, path)[0])
                if stop.is_set():
                    return

    def ingest_loop(name: str, valid: Send, hostile: Send) -> None:
        seq = 0
        while not stop.is_set():
            for send in (valid, hostile):
                count(f"ingest {name}", send(seq)[0])
            seq += 1

    with (
        tempfile.TemporaryDirectory(prefix="meshscope-hostile-") as tmp,
        serve(Path(tmp) / "hostile.duckdb", ports) as proc,
    ):
        assert _post(ports.otlp_http, "/v1/metrics", _seed_metric()) == 200
        assert _post(ports.otlp_http, "/v1/logs", _seed_log()) == 200
        threads = [threading.Thread(target=read_loop, daemon=True) for _ in range(args.readers)]
        threads += [
            threading.Thread(target=ingest_loop, args=(name, *pair), daemon=True)
            for name, pair in _senders(ports).items()
        ]
        idle = sum(process_rss_mib(pid) for pid in [proc.pid, *_children(proc.pid)])
        print(f"  RSS before the traffic: {idle:.1f} MiB", flush=True)
        for thread in threads:
            thread.start()
        samples: list[tuple[float, float]] = []
        began = time.monotonic()
        while time.monotonic() - began < args.seconds:
            time.sleep(SAMPLE_S)
            elapsed = time.monotonic() - began
            rss = sum(process_rss_mib(pid) for pid in [proc.pid, *_children(proc.pid)])
            samples.append((elapsed, rss))
            with lock:
                answered = sum(statuses.values())
            print(f"  {elapsed:6.0f} s  RSS {rss:7.1f} MiB  requests {answered:,}", flush=True)
        stop.set()
        for thread in threads:
            thread.join(60)
    first = [rss for t, rss in samples if t < 60]
    last = [rss for t, rss in samples if t >= samples[-1][0] - 60]
    head, tail = statistics.mean(first), statistics.mean(last)
    peak = max(rss for _, rss in samples)
    print(
        f"RSS (owner + workers): first minute {head:.1f} MiB, last minute {tail:.1f} MiB"
        f" ({tail / head:.2f}x), peak {peak:.1f} MiB"
    )
    for key, n in sorted(statuses.items()):
        print(f"  {key}: {n:,}")
    errors = sum(n for key, n in statuses.items() if int(key.rsplit(" ", 1)[1]) >= 500)
    print(f"5xx answers: {errors} (a gRPC error counts as 500 + its status code)")


if __name__ == "__main__":
    main()
