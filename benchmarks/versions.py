"""Two versions of meshscope side by side: a fresh `meshscope serve` of the code in another
source tree (`--old-src`, e.g. a `git worktree add /tmp/old <commit>` checkout's `src`, put
first on the servers' PYTHONPATH, which their ingest workers inherit) beside one of this
checkout (or `--new-src`), fed the same requests in alternating rounds (A B, B A, ...:
`ingest.alternate`), so the host's drift falls on both -> durable spans/s of each, per round,
the ratio new / old and the CPU per span of each process (ingest.py's figures).

On ClickHouse each version gets a server of its own (the documented compression, under
`--clickhouse-dir`), every trace new, with a 5 s pause after each round (the server's merges
trail its inserts); on DuckDB the requests are re-sent as they are. `--grpc` adds rounds
over OTLP/gRPC for both versions and prints gRPC / HTTP of each too.

Usage: .venv/bin/python benchmarks/versions.py --old-src /tmp/old/src [--new-src DIR]
       [--storage duckdb|clickhouse] [--clickhouse-dir DIR] [--seconds 120] [--rounds 6]
       [--senders 32] [--grpc]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ingest
from meshscope.ingest.loadgen import build_requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the ClickHouse servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-src", type=Path, required=True, help="the other version's src")
    parser.add_argument("--new-src", type=Path, help="default: this checkout's installed code")
    parser.add_argument("--storage", choices=("duckdb", "clickhouse"), default="duckdb")
    parser.add_argument("--clickhouse-dir", type=Path, help="where the servers' data goes")
    parser.add_argument("--seconds", type=float, default=120.0, help="per version, in all")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--grpc", action="store_true", help="OTLP/gRPC rounds as well")
    args = parser.parse_args()

    base_ns = time.time_ns() - 20 * 60 * 10**9
    bodies = build_requests(400, ingest.SPANS_PER_REQUEST, services=12, seed=7, base_ns=base_ns)
    work = Path(tempfile.mkdtemp(prefix="meshscope-versions-"))
    stores: list[ingest.ClickHouse] = []
    servers: dict[str, ingest.Server] = {}
    try:
        for name, src in (("old", args.old_src), ("new", args.new_src)):
            env = {"PYTHONPATH": str(src.resolve())} if src is not None else {}
            store = None
            if args.storage == "clickhouse":
                store = ingest.ClickHouse("zstd", args.clickhouse_dir)
                stores.append(store)
                env |= store.env(f"bench_{name}")
            (work / name).mkdir()
            servers[name] = ingest.Server(work / name, env, store)
            servers[name].start()
        ways: dict[str, tuple[ingest.Server, Callable[..., Any]]] = {
            name: (server, ingest.sender) for name, server in servers.items()
        }
        if args.grpc:
            ways |= {f"{name}-grpc": (server, ingest.grpc_sender)
                     for name, server in servers.items()}  # fmt: skip
        clickhouse = args.storage == "clickhouse"
        done = ingest.alternate(ways, bodies, args.seconds, args.rounds, args.senders,
                                settle_s=5.0 if clickhouse else 0.0, fresh=clickhouse)  # fmt: skip
    finally:
        for server in servers.values():
            server.stop()
        for store in stores:
            store.stop()
    print(ingest.compare(done, "OTLP/HTTP, the new version beside the old", "new", "old"))
    if args.grpc:
        print(ingest.compare(done, "OTLP/gRPC, the new version beside the old", "new-grpc",
                             "old-grpc"))  # fmt: skip
        for name in ("old", "new"):
            print(ingest.compare(done, f"{name}: gRPC beside HTTP", f"{name}-grpc", name))


if __name__ == "__main__":
    main()
