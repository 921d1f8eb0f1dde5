"""End-to-end ingest benchmark: `meshscope serve` on a DuckDB file (or, with `--storage
clickhouse`, on a ClickHouse server started for the run the way the tests start theirs:
tests/conformance/clickhouse_server.py), fed pre-encoded OTLP/HTTP protobuf requests
(acknowledged = committed), beside the single-core decode floor.

Phases, all in one run:
1. decode floor: this process decodes + walks the same requests into model spans on one core,
   and (what the ingest workers run) straight into the store's columns and the derivation
   inputs (`ingest.otlp_direct`);
2. distinct: every distinct request sent once -> spans/s and bytes on disk per span;
3. sustained: the requests cycled for --seconds at full speed -> durable spans/s, ratio to floor,
   the lowest and highest rate over 10 s windows; plus CPU per span in the owner and in the
   ingest worker processes (on ClickHouse every trace in it is new by default: `--fresh-cycles`);
3b. backends (with `--storage clickhouse`): a fresh DuckDB server and a fresh ClickHouse
   database in --rounds alternating rounds, --backends-seconds each in all, every trace new ->
   durable spans/s of each and the ratio ClickHouse / DuckDB in one run;
3c. part compression (with `--versus-compression`): a second ClickHouse server with that
   compression beside the run's, each written by a fresh meshscope server, the same new
   traces in --rounds alternating rounds, --versus-seconds each in all -> durable spans/s,
   the servers' CPU per span and bytes per span right after;
4. OTLP/gRPC: the same requests over gRPC (raw pre-encoded messages, closed loop) and over
   HTTP in --rounds alternating rounds on the same server, --grpc-seconds each in all ->
   durable spans/s of each, per round, and the ratio gRPC / HTTP (both go through the ingest
   worker processes; alternating, so the host's drift and the store's growth fall on both);
5. tail sampling: two fresh servers, one with the documented tail-sampling policies (errors,
   latency, a 10% share, a health-check veto), one without, the same requests in --rounds
   alternating rounds, --tail-seconds each in all -> acknowledged spans/s and the ratio on /
   off; each round measured after 11 s of the same load (a trace is decided and its spans
   written 10 s after its first span: measured from the start, a round would leave that
   work to the next one, the other server's) and followed by an 11 s pause. Every trace is
   sent once per server (the requests re-sent with new trace ids, built before the phase):
   a re-sent id would find its trace decided and skip the holding and deciding that real
   traffic, all new traces, always costs;
6. overload: open-loop paced senders (their starts spread over one pace, as independent
   clients' are) offer twice the sustained rate -> share answered
   429/503, peak RSS of the owner and its workers;
7. bytes on disk per span for everything stored in the run (steady state, after shutdown;
   ClickHouse: the active parts of the database in system.parts).

Every comparison of rounds also prints the CPU per span of the ClickHouse server (over the
round and the pause after it, where the phase has one: its merges trail its inserts; without
a pause a round's figure holds some of the previous round's merges, which the A B / B A
order shares out) and of this benchmark's own senders (sharing the host's cores).

Usage: .venv/bin/python benchmarks/ingest.py [--seconds 60] [--distinct 400]
       [--storage duckdb|clickhouse] [--clickhouse-compression zstd|zstd256|zstd3|zstd1|lz4]
       [--clickhouse-dir DIR] [--backends-seconds 20]
       [--versus-compression zstd|zstd256|zstd3|zstd1|lz4] [--versus-seconds 180]
       [--layout traces|services] [--fresh-cycles N]
       [--keep FILE]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from meshscope.ingest.loadgen import FreshTraces, build_requests, by_service
from meshscope.ingest.otlp import decode_otlp
from meshscope.ingest.otlp_direct import prepare_traces
from meshscope.ingest.workers import GC_THRESHOLDS
from meshscope.store.duckdb.span_rows import encode_columns
from meshscope.store.span_columns import ColumnEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the ClickHouse server

SPANS_PER_REQUEST = 500


COMPRESSIONS = ("zstd", "zstd256", "zstd3", "zstd1", "lz4")
"""Keys of `clickhouse_server.COMPRESSION`."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


TAIL_WAIT_S = 10
TAIL_CONFIG = """
sampling:
  tail:
    enabled: true
    decision_wait_seconds: WAIT
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 500}}
      - {name: some, type: probabilistic, probabilistic: {sampling_percentage: 10}}
      - name: no-health-checks
        type: string_attribute
        string_attribute: {key: url.path, values: [/health], invert_match: true}
""".replace("WAIT", str(TAIL_WAIT_S))


class ClickHouse:
    """A ClickHouse server for the run (temp dir, free loopback ports, stopped by its PID),
    a database per meshscope server, and the bytes each database holds on disk."""

    def __init__(self, compression: str, parent: Path | None = None) -> None:
        from tests.conformance.clickhouse_server import ClickHouseServer

        self.server = ClickHouseServer(compression=compression, parent=parent)

    def env(self, database: str) -> dict[str, str]:
        return {
            "MESHSCOPE_STORAGE__KIND": "clickhouse",
            "MESHSCOPE_STORAGE__CLICKHOUSE__DSN": self.server.dsn,
            "MESHSCOPE_STORAGE__CLICKHOUSE__DATABASE": database,
        }

    def bytes_on_disk(self, database: str) -> dict[str, int]:
        """Bytes of the active parts of each table of `database`."""
        from clickhouse_driver import Client

        client = Client("127.0.0.1", port=self.server.tcp_port)
        try:
            rows = client.execute(
                "SELECT table, sum(bytes_on_disk) FROM system.parts"
                " WHERE database = %(db)s AND active GROUP BY table ORDER BY table",
                {"db": database},
            )
        finally:
            client.disconnect()
        return {table: int(size) for table, size in rows}

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far."""
        return _cpu_s(self.server.process.pid)

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Server:
    workdir: Path
    storage_env: dict[str, str] = field(default_factory=dict)  # e.g. ClickHouse's settings
    store: ClickHouse | None = None  # the ClickHouse server it writes to, if any
    config: Path | None = None
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.workdir / "bench.duckdb"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            MESHSCOPE_SERVER__OTLP_HTTP_PORT=str(self.http_port),
            MESHSCOPE_SERVER__OTLP_GRPC_PORT=str(self.grpc_port),
            MESHSCOPE_SERVER__ZIPKIN_PORT=str(free_port()),
            MESHSCOPE_SERVER__UI_PORT=str(self.ui_port),
            MESHSCOPE_STORAGE__PATH=str(self.db),
            **self.storage_env,
        )
        log = (self.workdir / "server.log").open("ab")
        command = [sys.executable, "-m", "meshscope.cli", "serve"]
        if self.config is not None:
            command += ["--config", str(self.config)]
        self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 90  # a busy machine starts the worker processes slowly
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.ui_port, timeout=1)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start; see server.log")

    def pids(self) -> list[int]:
        """The owner and its worker processes."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        return [self.proc.pid, *map(int, pids)]

    def rss_mib(self) -> float:
        return sum(process_rss_mib(pid) for pid in self.pids())

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds used so far by the owner process and by its worker processes."""
        owner, *workers = self.pids()
        return _cpu_s(owner), sum(_cpu_s(pid) for pid in workers)

    def store_cpu_s(self) -> float:
        """CPU seconds used so far by its ClickHouse server (0 on DuckDB)."""
        return self.store.cpu_s() if self.store is not None else 0.0

    def self_metrics(self) -> str:
        """The server's /metrics text."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ui_port, timeout=10)
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()

    def gauges(self, *names: str) -> list[float]:
        """The values of unlabelled series `names` on /metrics (0 for a missing one)."""
        found = dict(
            line.split(" ", 1)
            for line in self.self_metrics().splitlines()
            if " " in line and not line.startswith("#")
        )
        return [float(found.get(name, 0.0)) for name in names]

    def worker_bodies(self) -> dict[str, float]:
        """`meshscope_ingest_worker_bodies` from the server's /metrics, by kind."""
        text = self.self_metrics()
        prefix = 'meshscope_ingest_worker_bodies_total{kind="'
        counts = {}
        for line in text.splitlines():
            if line.startswith(prefix):
                labels, value = line[len(prefix) :].split(" ")
                counts[labels.split('"')[0]] = float(value)
        return counts

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


@dataclass
class Tally:
    acked_spans: int = 0
    refused: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def sender(
    port: int, bodies: list[bytes], stop_at: float, tally: Tally, start: int, step: int,
    once: bool = False, pace_s: float = 0.0, more_headers: dict[str, str] | None = None,
    spans: list[int] | None = None,
) -> None:  # fmt: skip
    """Closed loop over OTLP/HTTP. `spans`: each body's span count (else SPANS_PER_REQUEST)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf", **(more_headers or {})}
    index = start
    if pace_s:  # paced senders start spread over one pace, as independent clients would
        time.sleep(pace_s * start / step)
    while time.monotonic() < stop_at:
        if once and index >= len(bodies):
            return
        began = time.monotonic()
        body = bodies[index % len(bodies)]
        count = spans[index % len(bodies)] if spans is not None else SPANS_PER_REQUEST
        index += step
        try:
            conn.request("POST", "/v1/traces", body, headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            tally.error(type(error).__name__)
            continue
        if response.status not in (200, 429, 503):
            tally.error(f"HTTP {response.status}")
        with tally.lock:
            if response.status == 200:
                tally.acked_spans += count
            elif response.status in (429, 503):
                tally.refused += 1
        if pace_s:
            time.sleep(max(0.0, pace_s - (time.monotonic() - began)))
            if pace_s > 4:  # the server drops keep-alive connections idle for 5 s
                conn.close()


def grpc_sender(
    port: int, bodies: list[bytes], stop_at: float, tally: Tally, start: int, step: int,
    once: bool = False, pace_s: float = 0.0,
) -> None:  # fmt: skip
    """Closed loop over OTLP/gRPC: pre-encoded messages sent as raw bytes (no client-side
    serialisation), one channel per sender. grpcio's global subchannel pool makes the
    senders' channels share ONE TCP connection (their 32 streams multiplexed on it, as one
    Collector's exporter sends), where the HTTP senders have a connection each."""
    overloaded = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(TRACE_EXPORT)
        index = start
        while time.monotonic() < stop_at:
            body = bodies[index % len(bodies)]
            index += step
            try:
                export(body, timeout=60)
            except grpc.RpcError as error:
                code = error.code()
                if code in overloaded:
                    with tally.lock:
                        tally.refused += 1
                else:
                    tally.error(str(code))
                continue
            with tally.lock:
                tally.acked_spans += SPANS_PER_REQUEST


def drive(
    port: int, bodies: list[bytes], seconds: float, senders: int, once: bool = False,
    pace_s: float = 0.0, on_tick: object = None, tally: Tally | None = None,
    send: Callable[..., None] = sender,
) -> tuple[Tally, float]:  # fmt: skip
    tally = tally or Tally()
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(target=send, args=(port, bodies, stop_at, tally, i, senders, once, pace_s))
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


@dataclass
class Round:
    name: str
    spans: int
    seconds: float
    cpu_s: tuple[float, float, float, float]  # owner, workers, ClickHouse server, this client

    @property
    def rate(self) -> float:
        return self.spans / self.seconds


FRESH_SPANS_PER_S = 70_000
"""What `fresh_segments` makes room for: above any rate this host has sustained."""


def fresh_segments(bodies: list[bytes], count: int, seconds: float) -> list[list[bytes]]:
    """`count` lists of requests, each enough for `seconds` at FRESH_SPANS_PER_S: `bodies`
    re-sent with new trace ids (`FreshTraces`), no trace id in two of them nor among
    `bodies`."""
    fresh = FreshTraces(bodies, time.time_ns())
    size = int(FRESH_SPANS_PER_S * seconds / SPANS_PER_REQUEST) + 1
    made = [fresh.request(i, 1 + i // len(bodies)) for i in range(count * size)]
    return [made[k * size : (k + 1) * size] for k in range(count)]


def alternate(
    ways: dict[str, tuple[Server, Callable[..., None]]], bodies: list[bytes], seconds: float,
    rounds: int, senders: int, warm_s: float = 0.0, settle_s: float = 0.0,
    fresh: bool = False,
) -> list[Round]:  # fmt: skip
    """`rounds` rounds of each way (a server and a sender), alternating, `seconds` per way in
    all: what drifts during a run (the host's speed, the store's size) falls on both alike.
    Odd rounds run the ways in reverse order (A B, B A, ...): whatever a drive leaves behind
    for the next one (a checkpoint, trailing commits) and a steady drift within a pair fall
    on each way alike, not on the one that always comes second.
    With `warm_s`, each round first runs that long unmeasured, and with `settle_s` the load
    then pauses that long: a server whose work trails its load (tail sampling decides and
    writes a trace a decision wait after its first span) is measured in its steady state,
    that work inside its own rounds, never in the other way's. With `fresh`, each drive
    sends requests of its own (`fresh_segments`, the same ones to each way): no server gets
    a trace twice."""
    drives = [warm_s, seconds / rounds] if warm_s else [seconds / rounds]
    segments = fresh_segments(bodies, rounds * len(drives), max(drives)) if fresh else []
    done: list[Round] = []
    for k in range(rounds):
        order = list(ways.items())
        for name, (target, send) in order if k % 2 == 0 else order[::-1]:
            port = target.grpc_port if send is grpc_sender else target.http_port
            feed = [segments[k * len(drives) + i] if fresh else bodies for i in range(len(drives))]
            if warm_s:
                _repeats(drive(port, feed[0], warm_s, senders, send=send)[0], feed[0], name)
            before = (*target.cpu_s(), target.store_cpu_s(), time.process_time())
            tally, took = drive(port, feed[-1], seconds / rounds, senders, send=send)
            owner, workers, client = (
                b - a
                for a, b in zip(
                    (before[0], before[1], before[3]),
                    (*target.cpu_s(), time.process_time()),
                    strict=True,
                )
            )
            if tally.errors:
                print(f"  {name}: errors {tally.errors} {tally.error_kinds}")
            if fresh:
                _repeats(tally, feed[-1], name)
            time.sleep(settle_s)
            store = target.store_cpu_s() - before[2]  # with the settle: its merges trail
            done.append(Round(name, tally.acked_spans, took, (owner, workers, store, client)))
    return done


def _repeats(tally: Tally, feed: list[bytes], name: str) -> None:
    """Say so when a drive sent more requests than its fresh segment held (ids repeated)."""
    sent = tally.acked_spans // SPANS_PER_REQUEST + tally.refused + tally.errors
    if sent > len(feed):
        print(f"  {name}: {sent - len(feed)} of {sent} requests re-sent trace ids (raise"
              f" FRESH_SPANS_PER_S)")  # fmt: skip


def compare(
    rounds: list[Round], title: str, new: str, old: str, what: str = "durable"
) -> str:  # fmt: skip
    """Each way's rate over its rounds, the rounds' rates, and the ratio new / old."""
    lines = []
    totals = {}
    for name in (old, new):
        mine = [one for one in rounds if one.name == name]
        spans = sum(one.spans for one in mine)
        totals[name] = spans / sum(one.seconds for one in mine)
        owner, workers, store, client = (
            sum(one.cpu_s[i] for one in mine) / max(spans, 1) * 1e6 for i in range(4)
        )
        each = ", ".join(f"{one.rate:,.0f}" for one in mine)
        server = f", the ClickHouse server {store:.1f} us" if store else ""
        lines.append(f"  {name}: {totals[name]:,.0f} {what} spans/s (rounds: {each}); CPU per "
                     f"span: owner {owner:.1f} us, workers {workers:.1f} us{server}; this "
                     f"benchmark's senders {client:.1f} us")  # fmt: skip
    pairs = [
        mine.rate / max(theirs.rate, 1)
        for mine, theirs in zip(
            [one for one in rounds if one.name == new],
            [one for one in rounds if one.name == old],
            strict=True,
        )
    ]
    ratio = totals[new] / max(totals[old], 1)
    each = ", ".join(f"{pair:.2f}" for pair in pairs)
    head = f"{title}, {len(pairs)} alternating rounds: {new} / {old} = {ratio:.2f} (rounds: {each})"
    return "\n".join([head, *lines])


def decode_floor(bodies: list[bytes]) -> float:
    began = time.perf_counter()
    spans = sum(len(decode_otlp("traces", body).batch.spans) for body in bodies)
    return spans / (time.perf_counter() - began)


def direct_floor(bodies: list[bytes], encode: ColumnEncoder) -> float:
    """Spans/s of what a worker runs, with the workers' garbage-collection thresholds."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        began = time.perf_counter()
        spans = sum(prepare_traces(body, encode=encode)[0].span_count for body in bodies)
        return spans / (time.perf_counter() - began)
    finally:
        gc.set_threshold(*before)


def column_encoder(storage: str) -> ColumnEncoder | None:
    """The column encoder the workers use for `storage` (None: the store has none)."""
    if storage == "duckdb":
        return encode_columns
    from meshscope.store.clickhouse import ClickHouseStorage

    encoder: ColumnEncoder | None = getattr(ClickHouseStorage, "column_encoder", None)
    return encoder


def main() -> None:
    from tests.conformance.clickhouse_server import PARENT_HELP, file_system

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--distinct", type=int, default=400, help="distinct requests to build")
    # 32 x 500 spans in flight: fewer leaves the server latency-bound (each sender waits for
    # a group commit: 16 senders 39.5-42.6k spans/s, 32 42.5-44.6k, 48 43.1k). On ClickHouse a
    # group goes at most every 0.2 s (ADR 0030): to keep the host busy the senders must hold
    # more than two groups' worth (at 40k spans/s, 16k spans) in flight: 64 x 500 there. One
    # OpenTelemetry Collector keeps up to 10 x 8192 spans in flight by default (sending_queue
    # consumers x batch size), so either is still a modest client.
    parser.add_argument(
        "--senders", type=int, help="closed-loop senders (default 32; with --storage clickhouse 64)"
    )
    parser.add_argument(
        "--grpc-seconds", type=float, default=20.0, help="OTLP/gRPC phase (0: skip)"
    )
    parser.add_argument(
        "--tail-seconds", type=float, default=30.0, help="tail sampling on phase (0: skip)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="alternating rounds of each side in the gRPC and tail-sampling phases",
    )  # fmt: skip
    parser.add_argument(
        "--storage", choices=("duckdb", "clickhouse"), default="duckdb",
        help="the store (clickhouse: a server started for the run, stopped at its end)",
    )  # fmt: skip
    parser.add_argument(
        "--clickhouse-compression", choices=COMPRESSIONS, default="zstd",
        help="the server's part compression (zstd: what docs/configuration.md asks servers"
        " without column codecs to use, level 1 and a higher level for merges from 16 MiB;"
        " zstd256: from 256 MiB, its variant for ingest-heavy servers; zstd3: level 3 from"
        " 16 MiB and the higher level from 256 MiB; zstd1:"
        " level 1 for every part; lz4: ClickHouse's default)",
    )  # fmt: skip
    parser.add_argument("--clickhouse-dir", type=Path, help=PARENT_HELP)
    parser.add_argument(
        "--backends-seconds", type=float, default=20.0,
        help="with --storage clickhouse: a fresh DuckDB server and a fresh ClickHouse database"
        " in --rounds alternating rounds, this long each in all (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--versus-compression", choices=COMPRESSIONS,
        help="with --storage clickhouse: a second ClickHouse server with this part compression"
        " beside one with --clickhouse-compression, each fed by a fresh meshscope server, in"
        " --rounds alternating rounds of --versus-seconds in all (every trace new)",
    )  # fmt: skip
    parser.add_argument("--versus-seconds", type=float, default=180.0)
    parser.add_argument(
        "--layout", choices=("traces", "services"), default="traces",
        help="traces: requests hold whole traces (as a collector's tail sampling or groupbytrace"
        " sends them); services: each request one service's spans (as each SDK sends its own),"
        " a trace's spans far apart in the run",
    )  # fmt: skip
    parser.add_argument(
        "--fresh-cycles", type=int,
        help="send N copies of the requests, each with trace ids of its own (built up front:"
        " ~80 MB a copy of 400); 0: the distinct requests re-sent as they are, ids repeating;"
        " default: 0 on DuckDB, on ClickHouse enough for --seconds (re-sent spans sort beside"
        " their copies in its parts and compress to almost nothing: cheaper merges)",
    )  # fmt: skip
    parser.add_argument(
        "--keep", type=Path, help="copy the DuckDB file here at the end (for column_bytes.py)"
    )
    args = parser.parse_args()
    if args.senders is None:
        args.senders = 64 if args.storage == "clickhouse" else 32

    base_ns = time.time_ns() - 20 * 60 * 10**9
    print(f"building {args.distinct} requests x {SPANS_PER_REQUEST} spans ...", flush=True)
    bodies = build_requests(args.distinct, SPANS_PER_REQUEST, services=12, seed=7, base_ns=base_ns)
    if args.layout == "services":
        bodies = by_service(bodies, SPANS_PER_REQUEST)
    distinct = bodies
    if args.fresh_cycles is None:
        needed = FRESH_SPANS_PER_S * args.seconds / (len(bodies) * SPANS_PER_REQUEST)
        args.fresh_cycles = math.ceil(needed) if args.storage == "clickhouse" else 0
    if args.fresh_cycles > 0:
        print(f"  {args.fresh_cycles} copies with trace ids of their own", flush=True)
        fresh = FreshTraces(bodies, time.time_ns())
        bodies = [fresh.request(i, c) for c in range(args.fresh_cycles) for i in range(len(bodies))]
    mib = sum(map(len, bodies)) / 2**20
    print(f"  {mib:.1f} MiB of protobuf, {sum(map(len, bodies)) / (len(bodies) * 500):.0f} B/span")

    floor = decode_floor(bodies[:100])
    print(f"decode floor (one core, decode + walk into spans): {floor:,.0f} spans/s")
    encoder = column_encoder(args.storage)
    direct = direct_floor(bodies[:100], encoder) if encoder is not None else 0.0
    shown = f"{direct:,.0f} spans/s" if direct else "n/a (the store has no column encoder)"
    print(f"direct floor (one core, decode + walk into {args.storage} columns and derivation "
          f"inputs, what a worker runs): {shown}")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="meshscope-bench-"))
    clickhouse = (
        ClickHouse(args.clickhouse_compression, args.clickhouse_dir)
        if args.storage == "clickhouse"
        else None
    )
    if clickhouse is not None:
        print(f"ClickHouse data on {file_system(clickhouse.server.dir)}")
    server = Server(workdir, clickhouse.env("bench") if clickhouse else {}, clickhouse)

    def on_disk() -> int:
        """Bytes the store holds (DuckDB: file + WAL; ClickHouse: active parts)."""
        if clickhouse is not None:
            by_table = clickhouse.bytes_on_disk("bench")
            print(f"  ClickHouse bytes by table: {by_table}")
            return sum(by_table.values())
        return server.db.stat().st_size + _wal_size(server.db)

    try:
        server.start()
        print(f"storage: {args.storage}; child processes (ingest workers and multiprocessing's "
              f"resource tracker): {len(server.pids()) - 1}")  # fmt: skip
        tally, took = drive(server.http_port, distinct, 600, args.senders, once=True)
        distinct_spans = tally.acked_spans
        print(f"distinct: {distinct_spans:,} spans acked in {took:.1f} s = "
              f"{distinct_spans / took:,.0f} spans/s (errors {tally.errors})")  # fmt: skip
        server.stop()
        size = on_disk()
        what = "active parts" if clickhouse else "file + WAL"
        print(f"on disk: {size / 2**20:.1f} MiB = {size / distinct_spans:.1f} bytes/span "
              f"(after clean shutdown; {what})")  # fmt: skip
        server.start()

        peak = [0.0]
        marks: list[tuple[float, int]] = []  # (time, spans acked so far), every ~0.2 s
        cpu_before = server.cpu_s()
        store_before = clickhouse.cpu_s() if clickhouse else 0.0

        wal = [_wal_size(server.db), 0]  # last size seen, checkpoints (the log shrank)

        def sustained_tick() -> None:
            peak[0] = max(peak[0], server.rss_mib())
            marks.append((time.monotonic(), tally.acked_spans))
            size = _wal_size(server.db)
            wal[1] += size < wal[0]
            wal[0] = size

        tally = Tally()
        tally, took = drive(
            server.http_port, bodies, args.seconds, args.senders, on_tick=sustained_tick,
            tally=tally,
        )  # fmt: skip
        owner_s, workers_s = (b - a for a, b in zip(cpu_before, server.cpu_s(), strict=True))
        store_s = clickhouse.cpu_s() - store_before if clickhouse else 0.0
        rate = tally.acked_spans / took
        sustained_spans = tally.acked_spans
        spans = max(tally.acked_spans, 1)
        print(f"sustained {took:.0f} s ({args.senders} senders): {rate:,.0f} durable spans/s "
              f"(refused {tally.refused}, errors {tally.errors}); ratio to decode floor "
              f"{rate / floor:.2f}, to direct floor {rate / direct if direct else 0:.2f}; "
              f"peak RSS {peak[0]:.0f} MiB (owner + workers)")  # fmt: skip
        windows = _window_rates(marks, 10.0)
        if windows:
            checkpoints = "" if clickhouse else f"; {wal[1]} DuckDB checkpoints (commits wait)"
            print(f"  10 s windows: {min(windows):,.0f} to {max(windows):,.0f} spans/s "
                  f"({len(windows)} windows){checkpoints}")  # fmt: skip
            print(f"  in order (k): {' '.join(f'{w / 1000:.1f}' for w in windows)}")
        owner_us, workers_us = owner_s / spans * 1e6, workers_s / spans * 1e6
        print(f"  CPU per span: owner {owner_us:.1f} us, workers {workers_us:.1f} us; "
              f"CPU busy {(owner_s + workers_s) / took:.2f} of {os.cpu_count()} cores "
              f"(load average {os.getloadavg()[0]:.1f} incl. other processes)")  # fmt: skip
        if clickhouse:
            print(f"  clickhouse-server CPU per span: {store_s / spans * 1e6:.1f} us "
                  f"({store_s / took:.2f} cores busy)")  # fmt: skip

        if clickhouse is not None and args.versus_compression:
            print(versus(workdir, clickhouse, args.clickhouse_compression,
                         args.versus_compression, args.clickhouse_dir, distinct,
                         args.versus_seconds, args.rounds, args.senders))  # fmt: skip

        if clickhouse is not None and args.backends_seconds > 0:  # both in one run
            print(backends(workdir, clickhouse, distinct, args.backends_seconds, args.rounds,
                           args.senders))  # fmt: skip

        if args.grpc_seconds > 0:  # alternating rounds on this server: the same store size
            rounds = alternate(
                {"HTTP": (server, sender), "gRPC": (server, grpc_sender)},
                bodies, args.grpc_seconds, args.rounds, args.senders,
            )  # fmt: skip
            sustained_spans += sum(one.spans for one in rounds)
            print(compare(rounds, "OTLP/gRPC", "gRPC", "HTTP"))
            print(f"  worker bodies by kind {server.worker_bodies()}")

        if args.tail_seconds > 0:  # two fresh servers, off and on: the same store sizes
            tail_dirs = [workdir / "tail-off", workdir / "tail-on"]
            for path in tail_dirs:
                path.mkdir()
            config = workdir / "tail.yaml"
            config.write_text(TAIL_CONFIG)
            env = clickhouse.env if clickhouse else None
            off = Server(tail_dirs[0], env("bench_off") if env else {}, clickhouse)
            tail = Server(tail_dirs[1], env("bench_tail") if env else {}, clickhouse, config)
            try:
                off.start()
                tail.start()
                rounds = alternate(  # new trace ids made from the distinct requests
                    {"off": (off, sender), "on": (tail, sender)},
                    distinct, args.tail_seconds, args.rounds, args.senders,
                    warm_s=TAIL_WAIT_S + 1, settle_s=TAIL_WAIT_S + 1, fresh=True,
                )  # fmt: skip
                bodies_by_kind = tail.worker_bodies()
            finally:
                off.stop()
                tail.stop()
            print(compare(rounds, "tail sampling on", "on", "off", "acknowledged"))
            print(f"  worker bodies with tail sampling on {bodies_by_kind}")

        # Open loop: many paced senders offer twice the sustained rate whatever the answers.
        peak = [0.0]
        overload_senders = 256  # enough that slow answers do not throttle the offered rate
        pace_s = overload_senders * SPANS_PER_REQUEST / (2 * max(rate, 1000))
        tally, took = drive(
            server.http_port, bodies, min(30.0, args.seconds), overload_senders, pace_s=pace_s,
            on_tick=lambda: peak.__setitem__(0, max(peak[0], server.rss_mib())),
        )  # fmt: skip
        offered = tally.acked_spans + tally.refused * SPANS_PER_REQUEST
        print(f"overload ({overload_senders} paced senders, {offered / took:,.0f} spans/s "
              f"offered = {offered / took / max(rate, 1):.1f}x sustained): "
              f"{tally.acked_spans / took:,.0f} acked spans/s, "
              f"{tally.refused * SPANS_PER_REQUEST / max(offered, 1):.0%} answered 429/503, "
              f"errors {tally.errors} {tally.error_kinds or ''}, "
              f"peak RSS {peak[0]:.0f} MiB (owner + workers)")  # fmt: skip
        stored = distinct_spans + sustained_spans + tally.acked_spans
        server.stop()
        size = on_disk()
        free = "" if clickhouse else (
            f"; {_free_share(server.db):.0%} of the file is free blocks left by checkpoints"
        )  # fmt: skip
        print(f"on disk after the run: {size / 2**20:.1f} MiB for {stored:,} spans = "
              f"{size / stored:.1f} bytes/span (target <= 120){free}")  # fmt: skip
        if args.keep and clickhouse is None:
            shutil.copy(server.db, args.keep)
            print(f"store file kept as {args.keep} (benchmarks/column_bytes.py splits it)")
    finally:
        server.stop()
        if clickhouse is not None:
            clickhouse.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def backends(
    workdir: Path, clickhouse: ClickHouse, bodies: list[bytes], seconds: float, rounds: int,
    senders: int,
) -> str:  # fmt: skip
    """A fresh DuckDB server and a fresh ClickHouse database, the same requests in alternating
    rounds: the ratio of their durable spans/s in one run, the host's drift falling on both.
    Every trace is new to the store (`fresh`): a re-sent span sorts beside its earlier copy in
    ClickHouse's parts (ordered by trace id), where compression all but erases it, so its
    merges are cheaper than new traffic's (re-sending, a run's parts held 16 bytes a span).
    Each round is followed by a 5 s pause, and the ClickHouse server's CPU is counted over
    its round and that pause: its merges trail its inserts, and would otherwise fall in the
    DuckDB round that follows."""
    paths = [workdir / "vs-duckdb", workdir / "vs-clickhouse"]
    for path in paths:
        path.mkdir()
    duck = Server(paths[0])
    house = Server(paths[1], clickhouse.env("bench_vs"), clickhouse)
    try:
        duck.start()
        house.start()
        done = alternate(
            {"DuckDB": (duck, sender), "ClickHouse": (house, sender)},
            bodies, seconds, rounds, senders, settle_s=5.0, fresh=True,
        )  # fmt: skip
    finally:
        duck.stop()
        house.stop()
    return compare(done, "ClickHouse beside DuckDB", "ClickHouse", "DuckDB")


def versus(
    workdir: Path, clickhouse: ClickHouse, mine: str, other: str, parent: Path | None,
    bodies: list[bytes], seconds: float, rounds: int, senders: int,
) -> str:  # fmt: skip
    """A second ClickHouse server with part compression `other` beside the run's (`mine`),
    each written by a fresh meshscope server, the same new traces in alternating rounds with
    a 5 s pause after each (the server's merges trail its inserts): what the compression
    costs at ingest, the host's drift falling on both."""
    second = ClickHouse(other, parent)
    try:
        paths = [workdir / "vs-mine", workdir / "vs-other"]
        for path in paths:
            path.mkdir()
        one = Server(paths[0], clickhouse.env("bench_mine"), clickhouse)
        two = Server(paths[1], second.env("bench_other"), second)
        try:
            one.start()
            two.start()
            done = alternate(
                {mine: (one, sender), other: (two, sender)},
                bodies, seconds, rounds, senders, settle_s=5.0, fresh=True,
            )  # fmt: skip
        finally:
            one.stop()
            two.stop()
        sizes = [sum(c.bytes_on_disk(db).values()) for c, db in
                 ((clickhouse, "bench_mine"), (second, "bench_other"))]  # fmt: skip
    finally:
        second.stop()
    spans = [sum(r.spans for r in done if r.name == name) for name in (mine, other)]
    on_disk = (
        f"  on disk right after: {mine} {sizes[0] / max(spans[0], 1):.1f}, {other} "
        f"{sizes[1] / max(spans[1], 1):.1f} bytes/span (merges still running)"
    )
    return compare(done, f"part compression {other} beside {mine}", other, mine) + "\n" + on_disk


def _window_rates(marks: list[tuple[float, int]], width_s: float) -> list[float]:
    """Acked spans/s in consecutive windows of `width_s` (from ~0.2 s marks)."""
    rates: list[float] = []
    if not marks:
        return rates
    start_t, start_n = marks[0]
    for t, n in marks[1:]:
        if t - start_t >= width_s:
            rates.append((n - start_n) / (t - start_t))
            start_t, start_n = t, n
    return rates


def process_rss_mib(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_share(db: Path) -> float:
    """The share of the DuckDB file's blocks that are free (rewritten by checkpoints)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT total_blocks, free_blocks FROM pragma_database_size()").fetchone()
    return row[1] / row[0] if row and row[0] else 0.0


def _wal_size(db: Path) -> int:
    wal = db.with_name(db.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


if __name__ == "__main__":
    main()
