"""ClickHouse server CPU per insert on two filesystems, in one run: one server in the temp
directory, one under `--clickhouse-dir`, the same span inserts (meshscope's write path: the
workers' column batches, one `trace_spans` and one `spans` insert per commit) in commits of
500, 1,000 and 3,000 spans, alternating between the servers (so the host's drift falls on
both) -> the server's CPU per commit and per span on each, and the ratio.

Why: on ext4 without a journal (this machine's root filesystem) the kernel skips, for every
new file, each inode freed in the last minute or more (`recently_deleted` in
fs/ext4/ialloc.c, checked only when there is no journal), and ClickHouse makes and deletes
~2 files per column per part. `perf` on the server put ~70% of its insert CPU there. The
figure on such a filesystem depends on how many files were deleted on it in the last
minutes, by anyone. A journaled ext4 for the other side, on this machine (root):

    truncate -s 8G /var/tmp/ch.img && mkfs.ext4 -q /var/tmp/ch.img
    mkdir -p /mnt/ch && mount -o loop /var/tmp/ch.img /mnt/ch

    .venv/bin/python benchmarks/clickhouse_inserts.py --clickhouse-dir /mnt/ch
        [--requests 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the ClickHouse server

from tests.conformance.clickhouse_server import PARENT_HELP, ClickHouseServer

from ingest import SPANS_PER_REQUEST, _cpu_s
from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.store.clickhouse import ClickHouseStorage

GROUPS = (1, 2, 6)
"""Requests of SPANS_PER_REQUEST spans per commit."""


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clickhouse-dir", type=Path, required=True, help=PARENT_HELP)
    parser.add_argument("--requests", type=int, default=60, help="requests written per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    base_ns = time.time_ns()
    bodies = build_requests(args.requests, SPANS_PER_REQUEST, services=12, seed=7, base_ns=base_ns)
    encode = ClickHouseStorage.column_encoder
    batches = [prepare_traces(body, encode=encode)[0].encoded_spans for body in bodies]
    places = {"temp dir": None, str(args.clickhouse_dir): args.clickhouse_dir}
    servers = {name: ClickHouseServer(parent=parent) for name, parent in places.items()}
    try:
        stores = {name: ClickHouseStorage(server.dsn, "bench") for name, server in servers.items()}
        for name, server in servers.items():
            print(f"{name}: {server.dir}")
        for group in GROUPS:
            spans = dict.fromkeys(servers, 0)
            commits = dict.fromkeys(servers, 0)
            server_s = dict.fromkeys(servers, 0.0)
            own_s = dict.fromkeys(servers, 0.0)
            for _ in range(args.rounds):
                for name, server in servers.items():
                    before, own = _cpu_s(server.process.pid), _own_cpu_s()
                    for first in range(0, len(batches), group):
                        stores[name].traces.write_encoded(batches[first : first + group])
                        commits[name] += 1
                    server_s[name] += _cpu_s(server.process.pid) - before
                    own_s[name] += _own_cpu_s() - own
                    spans[name] += len(batches) * SPANS_PER_REQUEST
            print(f"commits of {group * SPANS_PER_REQUEST:,} spans (2 inserts each):")
            for name in servers:
                print(
                    f"  {name}: server {server_s[name] / commits[name] * 1e3:.1f} ms/commit,"
                    f" {server_s[name] / spans[name] * 1e6:.1f} us/span; meshscope (driver)"
                    f" {own_s[name] / spans[name] * 1e6:.1f} us/span"
                )
            temp, other = servers
            ratio = server_s[temp] / max(server_s[other], 1e-9)
            print(f"  server CPU {temp} / {other}: {ratio:.2f}x")
        for store in stores.values():
            store.close()
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
