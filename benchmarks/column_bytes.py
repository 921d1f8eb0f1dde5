"""Bytes on disk per column of a DuckDB store file, and per row of its table (issue #18: which
columns cost what, before cutting any).

DuckDB's `pragma_storage_info` lists every column segment with its block and offset but not
its size: a segment is taken to run to the next segment's offset in its block (or to the
block's end), plus the whole blocks it continues in (`additional_block_ids`, long strings).

    .venv/bin/python benchmarks/column_bytes.py FILE [--table spans] [--per TABLE]

`--per` divides by the rows of another table (e.g. bytes of `logs` per span).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import duckdb

BLOCK = 256 * 1024


def column_bytes(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, dict[str, int]]:
    """Estimated bytes on disk per table and column (validity masks counted with it). Blocks
    are shared between tables (small segments are packed together), so every table's
    segments are placed first; the last segment of a block is given the rest of the block
    (an upper bound: that may be free space)."""
    by_block: dict[int, list[tuple[int, str, str, int]]] = defaultdict(list)
    for table in tables:
        for column, block, offset, more in con.execute(
            "SELECT column_name, block_id, block_offset, len(additional_block_ids)"
            f" FROM pragma_storage_info('{table}') WHERE persistent AND block_id >= 0"
        ).fetchall():
            by_block[block].append((offset, table, column, more))
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for segments in by_block.values():
        segments.sort()
        for i, (offset, table, column, more) in enumerate(segments):
            end = segments[i + 1][0] if i + 1 < len(segments) else BLOCK
            out[table][column] += end - offset + more * BLOCK
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--table", action="append")
    parser.add_argument("--per", default="spans", help="divide by this table's rows")
    args = parser.parse_args()
    con = duckdb.connect(str(args.file), read_only=True)
    tables = args.table or [
        row[0]
        for row in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
    ]
    per_row = con.execute(f"SELECT count(*) FROM {args.per}").fetchone()
    count = int(per_row[0]) if per_row else 0
    print(f"{args.file}: {args.file.stat().st_size / max(count, 1):.1f} B per {args.per} row"
          f" in the file ({count:,} rows)")  # fmt: skip
    total = 0.0
    splits = column_bytes(con, tables)
    for table in tables:
        split = splits.get(table, {})
        size = sum(split.values())
        total += size
        if not size:
            continue
        print(f"{table}: {size / max(count, 1):.1f} B per {args.per} row")
        for column, used in sorted(split.items(), key=lambda item: -item[1]):
            print(f"  {column:16s} {used / max(count, 1):7.2f}")
    print(f"all tables: {total / max(count, 1):.1f} B per {args.per} row")


if __name__ == "__main__":
    main()
