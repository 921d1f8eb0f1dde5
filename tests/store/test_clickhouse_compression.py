"""The test servers compress their parts with zstd, as docs/configuration.md asks servers
without column codecs to (ADR 0011, revision 6): the method byte of every compressed block
header in a part's column files (16-byte checksum, then the method: 0x90 zstd, 0x82 LZ4).
And the configuration's second case (revision 7) writes merged parts at a higher level while
inserts stay at level 1, on 18.16 itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.ingest.loadgen import build_requests
from meshscope.ingest.otlp_traces import decode_traces_protobuf
from meshscope.model.spans import Span
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.connection import Connection
from tests.conformance import clickhouse_server

ZSTD, LZ4 = 0x90, 0x82


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    yield from clickhouse_server.fresh_storage(tmp_path)


def block_methods(column_file: Path) -> set[int]:
    """The compression method of each block of a column's .bin file."""
    data, methods, at = column_file.read_bytes(), set[int](), 0
    while at < len(data):
        method = data[at + 16]
        methods.add(method)
        compressed = int.from_bytes(data[at + 17 : at + 21], "little")  # header included
        at += 16 + compressed
    return methods


def test_parts_are_zstd_compressed(storage: ClickHouseStorage) -> None:
    storage.traces.write_spans(
        [Span(f"{t + 1:032x}", f"{s + 1:016x}", "GET /cart", "web", 10**18 + s, 10**18 + 9)
         for t in range(50) for s in range(4)]
    )  # fmt: skip
    conn = storage._conn
    paths = conn.rows(
        "SELECT table, path FROM system.parts WHERE database = %(db)s AND active",
        {"db": conn.database},
    )
    assert {table for table, _ in paths} >= {"spans", "trace_spans"}
    methods = {
        f"{Path(path).parent.name}/{file.name}": block_methods(file)
        for _, path in paths
        for file in Path(path).glob("*.bin")
        if file.stat().st_size  # empty arrays write no block
    }
    assert len(methods) > 10
    assert methods == {key: {ZSTD} for key in methods}


def column_bytes(conn: Connection) -> dict[tuple[str, str], int]:
    """Compressed bytes of each column of the span tables' active parts."""
    rows = conn.rows(
        "SELECT table, column, sum(column_data_compressed_bytes) FROM system.parts_columns"
        " WHERE database = %(db)s AND active AND table IN ('spans', 'trace_spans')"
        " GROUP BY table, column",
        {"db": conn.database},
    )
    return {(table, column): int(size) for table, column, size in rows}


def test_merged_parts_get_the_higher_level_and_inserts_level_1(
    storage: ClickHouseStorage, tmp_path: Path
) -> None:
    """The same insert on the shared server (its parts all below `MERGED_MIN_BYTES`, so level
    1) and on one whose second case holds for any merge: equal bytes after the insert (one
    part, which no background merge touches), fewer on the second once `OPTIMIZE ... FINAL`
    rewrote it."""
    spans = [
        span
        for body in build_requests(2, 1000, base_ns=10**18)
        for span in decode_traces_protobuf(body).batch.spans
    ]
    server = clickhouse_server.ClickHouseServer(compression=clickhouse_server.tiered(1))
    try:
        merged = ClickHouseStorage(server.dsn, clickhouse_server.database_for(tmp_path))
        sizes = []
        for store in (storage, merged):
            store.traces.write_spans(spans)
            inserted = column_bytes(store._conn)
            for table in ("spans", "trace_spans"):
                store._conn.execute(f"OPTIMIZE TABLE {store._conn.database}.{table} FINAL")
            sizes.append((inserted, column_bytes(store._conn)))
        merged.close()
    finally:
        server.stop()
    (level_1_inserted, level_1_merged), (inserted, merged_sizes) = sizes
    assert inserted == level_1_inserted
    assert sum(merged_sizes.values()) < 0.95 * sum(level_1_merged.values())
    payload = ("trace_spans", "span")
    assert merged_sizes[payload] < 0.95 * level_1_merged[payload]
