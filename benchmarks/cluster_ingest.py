"""Cluster ingest cost: CPU per span of a 3-node cluster over 2 ClickHouse shards against one
node over one server, for the same requests, measured in one run (ADR 0015).

Starts two ClickHouse 18.16 servers (the `mesh` cluster, as the tests do), one node on the first
(single) and a 3-node cluster over both (`--shards 1`: the first only), then runs three ways of
sending in `--rounds` alternating rounds (so the host's drift falls on all three), each round
after 3 s of the same load unmeasured:
1. single: closed-loop OTLP/HTTP senders to the one node -> durable spans/s and CPU per span
   (owner + ingest workers; the ClickHouse server's CPU separately);
2. cluster: as many senders per node as the single node has (`--same-total`: as many in all),
   spread over the three nodes (each request to one node, round robin: ~2/3 of its spans'
   traces are other nodes') -> durable spans/s, per node, CPU per span over all nodes,
   the ratio to single, and the share of spans forwarded between nodes (over the shared
   shards without tail sampling, a node stores every span it receives and only the
   pairing records of 2/3 of them go to their owners, ADR 0015); both with the spans
   per group commit (each commit inserts into every table of every shard it has rows for);
3. routed: the same cluster, each request's spans sent to their owners by the client (as the
   OpenTelemetry Collector's load-balancing exporter does: ~0% forwarded), the same senders
   and spans in flight per node -> the cluster/single ratio split into what forwarding adds
   (cluster/routed) and what running 3 nodes over 2 shards costs without it (routed/single:
   each node commits a third of the spans, each commit into both shards); and the routing
   cost as issue 14 defines it, the CPU per span forwarding adds (cluster - routed) as a
   ratio to one node's CPU per span: (single + cluster - routed) / single.
Every node gets `--workers` ingest workers. On a shared 2-core machine the rates are low and
noisy; the CPU per span and its ratio are the figures to read. Closed loop, each mode runs
at the rate it takes, so its fixed costs per second (each node's metric flushes, health
checks, timers: three nodes' worth in the cluster) are shared by a different number of spans;
`--rate` offers every mode the same spans/s (paced senders; below the slowest mode's
capacity) so that CPU per span is compared at the same load. The modes share the servers,
so a round's ClickHouse CPU includes merges of parts earlier rounds wrote, of any mode.

    .venv/bin/python benchmarks/cluster_ingest.py [--seconds 30] [--rounds 3] [--senders 6]
        [--same-total] [--rate SPANS_PER_S] [--workers 1] [--clickhouse-dir DIR]
        [--set MESHSCOPE_NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ingest import SPANS_PER_REQUEST, Server, Tally, _cpu_s, free_port, sender
from meshscope.cluster.ring import Ring
from meshscope.cluster.split import Part, Table, split_body
from meshscope.ingest.loadgen import build_requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the ClickHouse servers


Stream = tuple[int, list[bytes], list[int]]
"""Where a sender sends: a port, the bodies it cycles through and their span counts."""


def _streams(ports: list[int], bodies: list[bytes]) -> list[Stream]:
    """Every request to any node (the bodies dealt round robin), as clients that know no
    owners send them."""
    dealt = [bodies[i :: len(ports)] for i in range(len(ports))]
    return [
        (port, mine, [SPANS_PER_REQUEST] * len(mine))
        for port, mine in zip(ports, dealt, strict=True)
    ]


def _prerouted(ports: list[int], ids: list[str], bodies: list[bytes]) -> list[Stream]:
    """Each request's spans sent to their owner (as the OpenTelemetry Collector's
    load-balancing exporter routes them): each body split by the nodes' ring, and each
    owner's parts of `len(ports)` consecutive bodies joined into one request (serialized
    `ExportTraceServiceRequest`s concatenate), so requests stay ~SPANS_PER_REQUEST spans."""
    ring = Ring.of(ids)
    table = Table(ring.peers, ring.owners, local=ring.peers[0])
    joined: dict[str, list[tuple[bytes, int]]] = {peer: [] for peer in ids}
    for first in range(0, len(bodies) - len(ids) + 1, len(ids)):
        parts: dict[str, list[Part]] = {peer: [] for peer in ids}
        for body in bodies[first : first + len(ids)]:
            split = split_body("traces", body, "identity", False, table, len(body) * 2)
            for peer, part in (
                split or {table.local: Part(body, SPANS_PER_REQUEST, False)}
            ).items():
                parts[peer].append(part)
        for peer, held in parts.items():
            joined[peer].append((b"".join(part.body for part in held), sum(p.items for p in held)))
    return [
        (port, [body for body, _ in joined[peer]], [count for _, count in joined[peer]])
        for peer, port in zip(ids, ports, strict=True)
    ]


def _run(streams: list[Stream], seconds: float, senders: int, pace_s: float = 0.0) -> Tally:
    """`senders` closed-loop senders, sender i on stream i % len(streams); the senders of a
    stream take turns through its bodies. `pace_s`: each sender sends at most one request
    per `pace_s` seconds (an offered rate), not as fast as answers come."""
    tally = Tally()
    stop_at = time.monotonic() + seconds
    threads = []
    for i in range(senders):
        port, bodies, spans = streams[i % len(streams)]
        turns = len(range(i % len(streams), senders, len(streams)))  # senders on this stream
        args = (port, bodies, stop_at, tally, i // len(streams), turns)
        kwargs = {"spans": spans, "pace_s": pace_s}
        threads.append(threading.Thread(target=sender, args=args, kwargs=kwargs))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def _cpu(servers: list[Server]) -> tuple[float, float]:
    """CPU seconds so far of the owners and of their ingest workers."""
    used = [server.cpu_s() for server in servers]
    return sum(owner for owner, _ in used), sum(workers for _, workers in used)


def _counter(server: Server, prefix: str) -> float:
    """The sum of the series of `/metrics` whose line starts with `prefix`."""
    conn = http.client.HTTPConnection("127.0.0.1", server.ui_port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def _commits(servers: list[Server]) -> float:
    return sum(_counter(server, "meshscope_store_commits_total ") for server in servers)


@dataclass
class Mode:
    """One way of sending, over its rounds: what was acknowledged and what it cost."""

    name: str
    servers: list[Server]
    shards: list[int]  # the ClickHouse servers' pids
    streams: list[Stream]
    spans: int = 0
    refused: int = 0
    errors: int = 0
    seconds: float = 0.0
    owners_s: float = 0.0
    workers_s: float = 0.0
    clickhouse_s: float = 0.0
    commits: float = 0.0
    forwarded: float = 0.0  # spans forwarded to their owners
    records: float = 0.0  # pairing records sent to the owners (a shared store, no tail sampling)
    rates: list[float] = field(default_factory=list)

    def round(self, seconds: float, senders: int, pace_s: float = 0.0) -> None:
        """Run one measured round of `seconds` (after 3 s unmeasured) and add it up."""
        _run(self.streams, 3.0, senders, pace_s)  # warm up
        cpu0, ch0 = _cpu(self.servers), sum(_cpu_s(pid) for pid in self.shards)
        commits0, forwarded0 = _commits(self.servers), _forwarded(self.servers)
        records0 = _forwarded(self.servers, "sides")
        began = time.monotonic()
        tally = _run(self.streams, seconds, senders, pace_s)
        elapsed = time.monotonic() - began
        owners, workers = (b - a for a, b in zip(cpu0, _cpu(self.servers), strict=True))
        self.clickhouse_s += sum(_cpu_s(pid) for pid in self.shards) - ch0
        self.commits += _commits(self.servers) - commits0
        self.forwarded += _forwarded(self.servers) - forwarded0
        self.records += _forwarded(self.servers, "sides") - records0
        self.owners_s, self.workers_s = self.owners_s + owners, self.workers_s + workers
        self.spans += tally.acked_spans
        self.refused, self.errors = self.refused + tally.refused, self.errors + tally.errors
        self.seconds += elapsed
        self.rates.append(tally.acked_spans / elapsed)

    @property
    def per_span(self) -> float:
        """meshscope CPU (owners + workers) per durable span, µs."""
        return (self.owners_s + self.workers_s) / max(self.spans, 1) * 1e6

    def line(self) -> str:
        spans = max(self.spans, 1)
        rate = self.spans / max(self.seconds, 1e-9)
        rounds = ", ".join(f"{one:,.0f}" for one in self.rates)
        return (
            f"{self.name:8} {rate:>9,.0f} durable spans/s ({rate / len(self.servers):,.0f} per"
            f" node; rounds {rounds}), meshscope CPU {self.per_span:.1f} us/span (owners"
            f" {self.owners_s / spans * 1e6:.1f}, workers {self.workers_s / spans * 1e6:.1f}),"
            f" ClickHouse CPU {self.clickhouse_s / spans * 1e6:.1f} us/span,"
            f" {self.spans / max(self.commits, 1):,.0f} spans per group commit,"
            f" refused {self.refused}, errors {self.errors}"
            + (
                f", {self.forwarded / spans:.0%} of the spans forwarded,"
                f" {self.records / spans:.0%} sent as pairing records only"
                if len(self.servers) > 1
                else ""
            )
        )


def _forwarded(servers: list[Server], kind: str = "traces") -> float:
    """Items of `kind` the nodes forwarded: spans (`traces`) or pairing records (`sides`)."""
    prefix = f'meshscope_cluster_forwarded_items_total{{kind="{kind}"'
    return sum(_counter(node, prefix) for node in servers)


def main() -> None:
    from tests.conformance.clickhouse_server import (
        CLUSTER,
        PARENT_HELP,
        ClickHouseServer,
        file_system,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured, per mode in all")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of the three modes"
    )
    parser.add_argument("--senders", type=int, default=6, help="closed-loop senders per node")
    parser.add_argument(
        "--same-total",
        action="store_true",
        help="give the cluster the single node's senders in all (a third per node) instead of"
        " as many per node",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offer this many spans/s in every mode (paced senders) instead of as many as"
        " each mode takes (closed loop): CPU per span at the same load",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument(
        "--shards", type=int, choices=(1, 2), default=2, help="ClickHouse shards the cluster uses"
    )
    parser.add_argument("--clickhouse-dir", type=Path, help=PARENT_HELP)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra MESHSCOPE_* environment setting for every node (single and cluster)",
    )
    args = parser.parse_args()

    bodies = build_requests(args.distinct, SPANS_PER_REQUEST)
    ports = (free_port(), free_port())
    clickhouse = [
        ClickHouseServer(tcp_port=port, shard_ports=ports, parent=args.clickhouse_dir)
        for port in ports
    ]
    shard_pids = [server.process.pid for server in clickhouse]
    print(f"ClickHouse data on {file_system(clickhouse[0].dir)}")
    work = Path(tempfile.mkdtemp(prefix="meshscope-cluster-bench-"))
    started: list[Server] = []
    try:
        common = {"MESHSCOPE_STORAGE__KIND": "clickhouse",
                  "MESHSCOPE_PIPELINE__INGEST_WORKERS": str(args.workers),
                  **dict(setting.split("=", 1) for setting in args.set)}  # fmt: skip
        (work / "single").mkdir()
        single = Server(work / "single", storage_env={
            **common, "MESHSCOPE_STORAGE__CLICKHOUSE__DSN": clickhouse[0].dsn,
            "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": "bench_single"})  # fmt: skip
        single.start()
        started.append(single)

        nodes = []
        for i in range(3):
            (work / f"n{i}").mkdir()
            nodes.append(Server(work / f"n{i}"))
        peers = [
            {"id": f"n{i}", "url": f"http://127.0.0.1:{s.ui_port}"} for i, s in enumerate(nodes)
        ]
        for i, node in enumerate(nodes):
            node.storage_env = {
                **common,
                "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": "bench_cluster",
                "MESHSCOPE_CLUSTER__NODE_ID": f"n{i}",
                "MESHSCOPE_CLUSTER__PEERS": json.dumps(peers),
                "MESHSCOPE_CLUSTER__SHARDS": json.dumps([s.dsn for s in clickhouse[: args.shards]]),
                "MESHSCOPE_CLUSTER__CLICKHOUSE_CLUSTER": CLUSTER,
            }
            node.start()
            started.append(node)
        node_ports = [node.http_port for node in nodes]
        ids = [f"n{i}" for i in range(len(nodes))]
        one = Mode("single", [single], shard_pids[:1], _streams([single.http_port], bodies))
        many = Mode(f"cluster/{args.shards}", nodes, shard_pids, _streams(node_ports, bodies))
        routed = Mode("routed", nodes, shard_pids, _prerouted(node_ports, ids, bodies))
        senders = {one.name: args.senders}
        for mode in (many, routed):
            senders[mode.name] = args.senders * (1 if args.same_total else len(nodes))
        pace = {name: count * SPANS_PER_REQUEST / args.rate if args.rate else 0.0
                for name, count in senders.items()}  # fmt: skip
        loop = f"paced at {args.rate:,.0f} spans/s in all" if args.rate else "closed-loop"
        print(f"{loop} senders of {SPANS_PER_REQUEST} spans: {senders}")
        for _ in range(args.rounds):  # alternating: the host's drift falls on every mode
            for mode in (one, many, routed):
                mode.round(args.seconds / args.rounds, senders[mode.name], pace[mode.name])
        for mode in (one, many, routed):
            print(mode.line())
        pairs = ", ".join(
            f"{c / max(s, 1):.2f}" for c, s in zip(many.rates, one.rates, strict=True)
        )
        print(
            f"meshscope CPU per span, cluster/single: {many.per_span / one.per_span:.2f}x"
            f" (durable spans/s cluster/single by round: {pairs})"
        )
        print(
            f"  of which forwarding (sprayed/pre-routed on the same cluster):"
            f" {many.per_span / routed.per_span:.2f}x, and {len(nodes)} nodes x {args.shards}"
            f" shards, no forwarding (pre-routed/single): {routed.per_span / one.per_span:.2f}x"
        )
        added = many.per_span - routed.per_span
        print(
            f"routing cost (issue 14: the CPU per span forwarding adds, as a ratio to one"
            f" node's): (single + sprayed - pre-routed) / single = {added:.1f} us/span ->"
            f" {(one.per_span + added) / one.per_span:.2f}x"
        )
    finally:
        for node in started:
            node.stop()
        for shard in clickhouse:
            shard.stop()


if __name__ == "__main__":
    main()
