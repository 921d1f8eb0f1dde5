"""The sharded ClickHouse store on two real 18.16 shards (the `mesh` cluster): where rows
land, one-shard trace reads, retention on every shard. The conformance suite runs the
protocols on it too (tests/conformance/backends.py, `clickhouse-sharded`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.clock import ManualClock
from meshscope.ingest.otlp import decode_otlp
from meshscope.pipeline.chain import Pipeline
from meshscope.store.clickhouse.metrics import fingerprint
from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage
from tests.cluster.traces import calls, logs_request, request
from tests.conformance import clickhouse_server

START = 1_700_000_000_000_000_000


@pytest.fixture
def sharded(tmp_path: Path) -> Iterator[ShardedClickHouseStorage]:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    store = ShardedClickHouseStorage(
        clickhouse_server.shard_dsns(),
        clickhouse_server.database_for(tmp_path),
        clickhouse_server.CLUSTER,
    )
    try:
        yield store
    finally:
        store.drop()


def _local_count(store: ShardedClickHouseStorage, shard: int, table: str, where: str) -> int:
    conn = store.shards[shard]._conn
    [(count,)] = conn.rows(f"SELECT count() FROM {conn.database}.{table} WHERE {where}")
    return int(count)


def test_every_row_of_a_trace_is_on_shard_trace_hi_mod_k(sharded: ShardedClickHouseStorage) -> None:
    made = calls(40, now_ns=START)
    pipeline = Pipeline(sharded, ManualClock(START))
    pipeline.consume(decode_otlp("traces", request(made)).batch)
    pipeline.consume(decode_otlp("logs", logs_request([c.trace_id for c in made])).batch)
    pipeline.flush()
    used = set()
    for call in made:
        hi = int.from_bytes(call.trace_id[:8], "big")
        where = f"trace_hi = {hi}"
        for shard in (0, 1):
            expected = shard == hi % 2
            for table, rows in (("spans", 3), ("trace_spans", 3), ("logs", 1)):
                assert _local_count(sharded, shard, table, where) == (rows if expected else 0)
        used.add(hi % 2)
        assert len(sharded.traces.get_trace(call.trace_id.hex())) == 3
    assert used == {0, 1}
    # Reads through the Distributed tables see both shards.
    assert sharded.traces.span_counts() == {"frontend": 80, "backend": 40}
    series = sharded.metrics.select("calls_total", [], 0, 2**62)
    assert sum(s.samples[-1].value for s in series) == 120
    for s in series:  # a series' catalog row and samples on shard fingerprint % 2
        fp = fingerprint(s.name, s.labels)
        for shard in (0, 1):
            here = shard == fp % 2
            assert (_local_count(sharded, shard, "series", f"fingerprint = {fp}") > 0) == here
            assert (_local_count(sharded, shard, "samples", f"fingerprint = {fp}") > 0) == here


def test_trace_by_id_reads_only_the_owning_shard(sharded: ShardedClickHouseStorage) -> None:
    made = calls(10, now_ns=START)
    sharded.write_batch(decode_otlp("traces", request(made)).batch.spans)
    call = made[0]
    owner = int.from_bytes(call.trace_id[:8], "big") % 2

    def refuse(trace_ids: object) -> object:
        raise AssertionError("read the shard that does not own the trace")

    sharded.traces._shards[1 - owner].get_traces = refuse  # type: ignore[method-assign,assignment]
    assert len(sharded.traces.get_trace(call.trace_id.hex())) == 3


def test_retention_drops_old_days_on_every_shard(sharded: ShardedClickHouseStorage) -> None:
    day = 86_400 * 10**9
    old = calls(20, now_ns=START - 3 * day)
    new = calls(20, seed=2, now_ns=START)
    sharded.write_batch(decode_otlp("traces", request(old + new)).batch.spans)
    assert sharded.expire(START - day) == 60
    for shard in (0, 1):
        assert _local_count(sharded, shard, "spans", f"start_ns < {START - day}") == 0
    assert sum(sharded.traces.span_counts().values()) == 60
