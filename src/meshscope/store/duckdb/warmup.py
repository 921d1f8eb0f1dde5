"""Warming DuckDB's buffer pool with what trace-by-id reads, newest data first.

The first read of a row group pays for loading all of its column blocks into DuckDB's buffer
pool (benchmarks/query.py, 10M spans: trace by id ~11 ms CPU at p99 on first reads, ~4 ms once
the blocks are in memory). Blocks the store writes itself stay in the pool, so this only
matters after a restart, when every block is on disk: `warm_up` then reads the spans of the
newest 10 minutes, the 10 before, and so on, touching every column (`hash(row)`), until the
budget of buffer memory is used or the data ends. The resources table is read whole first (it
is small; the trace locator is in memory already). Like PostgreSQL's pg_prewarm; DuckDB's own
`cache_prewarm` extension is a community download, which this machine cannot reach.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

import duckdb

WINDOW_NS = 600 * 10**9
_UNITS = {"": 1, "B": 1, "BYTES": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([A-Za-z]*)\s*$")


@dataclass(frozen=True, slots=True)
class WarmUp:
    """What one warm-up did: spans read, buffer memory afterwards, time taken, and whether
    it reached the oldest span (False: stopped by the budget or by `stop`)."""

    spans: int
    buffer_bytes: int
    seconds: float
    complete: bool


def parse_size(text: str) -> int:
    """Bytes in a DuckDB size string (`'11.7 GiB'`, `'2GB'`, `'512 MiB'`)."""
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


def table_memory(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of table data in DuckDB's buffer pool now."""
    row = con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() WHERE tag = 'BASE_TABLE'"
    ).fetchone()
    return int(row[0]) if row else 0


def default_budget(con: duckdb.DuckDBPyConnection) -> int:
    """Half of DuckDB's memory limit: the rest stays free for queries and ingest."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    return parse_size(str(row[0])) // 2 if row else 0


def warm_up(
    con: duckdb.DuckDBPyConnection, budget_bytes: int, stop: threading.Event | None = None
) -> WarmUp:
    """Load the trace-by-id path into the buffer pool, newest first (see module doc)."""
    began = time.perf_counter()
    stop = stop or threading.Event()
    spans = 0
    if table_memory(con) >= budget_bytes:
        return WarmUp(0, table_memory(con), time.perf_counter() - began, False)
    con.execute("SELECT min(hash(t)) FROM resources t").fetchall()
    row = con.execute("SELECT min(start_ns), max(start_ns) FROM spans").fetchone()
    if row is None or row[0] is None:
        return WarmUp(0, table_memory(con), time.perf_counter() - began, True)
    oldest, end = int(row[0]), int(row[1]) + 1
    while end > oldest:
        if stop.is_set() or table_memory(con) >= budget_bytes:
            return WarmUp(spans, table_memory(con), time.perf_counter() - began, False)
        start = end - WINDOW_NS
        counted = con.execute(
            "SELECT count(*), min(hash(s)) FROM spans s WHERE start_ns >= ? AND start_ns < ?",
            [start, end],
        ).fetchone()
        spans += int(counted[0]) if counted else 0
        end = start
    return WarmUp(spans, table_memory(con), time.perf_counter() - began, True)
