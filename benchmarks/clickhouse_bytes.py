"""ClickHouse: bytes on disk per span, `compat` vs `modern` schema profile (ADR 0011).

The same load-generator spans (ingest/loadgen.py: mesh-like traces, 8 attributes, one event
per span, 4-attribute resources of 8 services) are decoded as the OTLP receiver does and
written by the store's own trace writer (`ClickHouseTraceStore.write_spans`: the `spans`
search table, `trace_spans` and `resources`) into two databases of one embedded ClickHouse
(chdb-core, 26.x): one made with the `compat` DDL (what 18.16 gets), one with the `modern`
DDL (LowCardinality, ZSTD/Delta/T64 codecs, the trace-id bloom filter, a 7-day retention's
TTL). Then
`OPTIMIZE TABLE ... FINAL` on the three tables, and `bytes_on_disk` of their active parts
from system.parts, per span. Span times start an hour ago so the TTL keeps them.
With `--columns N`, the N largest columns of each (system.parts_columns, compressed bytes).

With `--server`, the `compat` tables are also measured on Debian's clickhouse-server 18.16
(started on free loopback ports as the tests do, written through clickhouse-driver), the
server that gets `compat` in production here: with the server-wide compression
docs/configuration.md asks such servers to have (`zstd`: level 1, and level 6 for parts
merged from 16 MiB or more), with level 1 for every part (`zstd1`, what it asked before) and
with ClickHouse's default (LZ4). The final merge's input is printed beside each table: at
the default 1M spans both tables are over 16 MiB, so `zstd` shows the level their data ends
up at in a day's partition; with fewer spans it shows level 1's figure.

    .venv/bin/python benchmarks/clickhouse_bytes.py [--spans 1000000] [--batch 10000]
        [--columns 0] [--server]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conformance import clickhouse_server
from tests.conformance.chdb_session import ChdbConnection

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_traces import decode_traces_protobuf
from meshscope.model.spans import Span
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import (
    COMPAT,
    MODERN,
    Profile,
    statements,
    ttl_days,
)
from meshscope.store.clickhouse.traces import ClickHouseTraceStore

SPANS_PER_REQUEST = 500
RETENTION_HOURS = 168.0
TABLES = ("spans", "trace_spans", "resources")
"""The tables the trace writer writes (`resources`: each resource once a day, ADR 0026)."""
SERVER_COMPRESSIONS = ("zstd", "zstd1", "lz4")  # keys of clickhouse_server.COMPRESSION


def load_spans(count: int) -> list[Span]:
    requests = build_requests(
        -(-count // SPANS_PER_REQUEST), SPANS_PER_REQUEST, base_ns=time.time_ns() - 3600 * 10**9
    )
    spans: list[Span] = []
    for body in requests:
        spans.extend(decode_traces_protobuf(body).batch.spans)
    return spans[:count]


def merge_all(conn: Connection, table: str) -> float:
    """`OPTIMIZE ... FINAL` until `table` is one part per partition (18.16 does nothing,
    silently, while a background merge holds some of its parts); the seconds the last one
    took."""
    deadline = time.monotonic() + 300
    while True:
        began = time.monotonic()
        conn.execute(f"OPTIMIZE TABLE {conn.database}.{table} FINAL")
        took = time.monotonic() - began
        [(parts, partitions)] = conn.rows(
            "SELECT count(), uniqExact(partition) FROM system.parts"
            " WHERE database = %(db)s AND table = %(table)s AND active",
            {"db": conn.database, "table": table},
        )
        if parts <= partitions or time.monotonic() > deadline:
            return took
        time.sleep(1.0)


def measure(
    conn: Connection, profile: Profile, spans: list[Span], batch: int, columns: int
) -> dict[str, int]:
    """Bytes on disk of each span table after writing `spans` with the `profile`'s DDL."""
    [(version,)] = conn.rows("SELECT version()")
    label = f"{profile.name} ({version})"
    conn.execute(f"DROP DATABASE IF EXISTS {conn.database}")
    for statement in statements(conn.database, profile, ttl_days(RETENTION_HOURS)):
        conn.execute(statement)
    store = ClickHouseTraceStore(conn)
    began = time.monotonic()
    for first in range(0, len(spans), batch):
        store.write_spans(spans[first : first + batch])
    written = time.monotonic() - began
    sizes: dict[str, int] = {}
    for table in TABLES:
        [(before,)] = conn.rows(
            "SELECT sum(bytes_on_disk) FROM system.parts"
            " WHERE database = %(db)s AND table = %(table)s AND active",
            {"db": conn.database, "table": table},
        )
        merged_in = merge_all(conn, table)
        [(size, rows, parts)] = conn.rows(
            "SELECT sum(bytes_on_disk), sum(rows), count() FROM system.parts"
            " WHERE database = %(db)s AND table = %(table)s AND active",
            {"db": conn.database, "table": table},
        )
        assert rows == len(spans) or table == "resources", (table, rows)
        sizes[table] = int(size)
        print(
            f"  {label:18} {table:15} {size / len(spans):7.1f} B/span"
            f"  ({int(size):,} B in {parts} part(s), merged from {int(before) / 2**20:.1f} MiB"
            f" in {merged_in:.2f} s = {merged_in / len(spans) * 1e6:.2f} us/span)"
        )
        if columns:
            for name, compressed in conn.rows(
                "SELECT column, sum(column_data_compressed_bytes) AS c FROM system.parts_columns"
                " WHERE database = %(db)s AND table = %(table)s AND active"
                f" GROUP BY column ORDER BY c DESC LIMIT {int(columns)}",
                {"db": conn.database, "table": table},
            ):
                print(f"      {name:16} {compressed / len(spans):6.1f} B/span")
    print(f"  {label:18} written in {written:.1f} s")
    conn.execute(f"DROP DATABASE {conn.database}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="spans per write_spans")
    parser.add_argument("--columns", type=int, default=0, help="show the N largest columns")
    parser.add_argument("--server", action="store_true", help="compat on 18.16 as well")
    args = parser.parse_args()
    spans = load_spans(args.spans)
    print(f"{len(spans):,} load-generator spans; bytes_on_disk after OPTIMIZE FINAL")
    totals = {}
    if args.server and clickhouse_server.binary() is None:
        raise SystemExit("--server: clickhouse-server is not installed")
    # The servers first: their merges are timed, with nothing else of this run running.
    for compression in SERVER_COMPRESSIONS if args.server else ():
        print(f"clickhouse-server, {compression} part compression:")
        server = clickhouse_server.ClickHouseServer(compression=compression)
        try:
            conn: Connection = Connection(server.dsn, "bytes_compat")
            sizes = measure(conn, COMPAT, spans, args.batch, args.columns)
            totals[compression] = sum(sizes.values()) / len(spans)
            conn.close()
        finally:
            server.stop()
    for profile in (COMPAT, MODERN):
        conn = ChdbConnection(f"bytes_{profile.name}")
        sizes = measure(conn, profile, spans, args.batch, args.columns)
        totals[profile.name] = sum(sizes.values()) / len(spans)
    compat, modern = totals["compat"], totals["modern"]
    print("spans + trace_spans + resources, chdb:")
    print(f"  compat  {compat:7.1f} B/span")
    print(f"  modern  {modern:7.1f} B/span")
    print(f"  ratio   {compat / modern:7.2f} x (compat / modern)")
    for compression in SERVER_COMPRESSIONS:
        if compression in totals:
            on_server = totals[compression]
            print(
                f"compat on clickhouse-server 18.16, {compression}: {on_server:.1f} B/span,"
                f" {on_server / modern:.2f} x modern on chdb"
            )


if __name__ == "__main__":
    main()
