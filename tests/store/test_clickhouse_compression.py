"""The test servers compress their parts with zstd, as docs/configuration.md asks servers
without column codecs to (ADR 0011, revision 6): the method byte of every compressed block
header in a part's column files (16-byte checksum, then the method: 0x90 zstd, 0x82 LZ4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.model.spans import Span
from meshscope.store.clickhouse import ClickHouseStorage
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
