"""ShardedClickHouseStorage: the ClickHouse store over K shards (ADR 0015).

Writes go straight to the shard that owns each row, synchronously, into the same tables a
single server has (`<database>.spans`, ...), so "returned = stored" holds as on one server:
- spans (both tables), access logs and logs with a trace id: shard `trace_hi % K`, the rule
  of `Distributed(..., trace_hi)`: a trace, its calls and its logs live on one shard;
- metric series and samples: shard `fingerprint % K`, so a series' catalog row and its
  samples are co-sharded (SigNoz's choice) and the store's `IN (subquery)` reads stay local;
- the catalog (services, operations) and logs without a trace id: a hash of the service.

Reads go through `Distributed` tables of the same names in `<database>_dist`, created on
every shard at start (ON CLUSTER needs ZooKeeper, which 18.16 clusters here lack), over the
cluster the servers' `remote_servers` names, on the first shard that answers; while a shard
is down, without it and saying so (`shard_reads.py`). The read connection sets
`distributed_product_mode = 'local'`: an `IN (SELECT ... FROM <Distributed>)` inside a
distributed read runs on each shard against its local table, which is exact because the
tables such reads combine are co-sharded (samples with series by fingerprint). Reads by
trace id (a trace's spans, a trace's first start) go to the owning shard only.

Retention runs on every shard (`DROP PARTITION` for whole days, as on one server).
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import Operation
from meshscope.store.clickhouse.catalog import ClickHouseCatalogStore
from meshscope.store.clickhouse.columns import trace_key
from meshscope.store.clickhouse.connection import (
    ClickHouseUnavailableError,
    Connection,
    check_name,
)
from meshscope.store.clickhouse.logs import ClickHouseLogStore
from meshscope.store.clickhouse.metrics import ClickHouseMetricStore, fingerprint
from meshscope.store.clickhouse.schema import COMPAT, RESOURCES, add_resource_column
from meshscope.store.clickhouse.shard_reads import ShardReads
from meshscope.store.clickhouse.span_rows import (
    EncodedClickHouseSpans,
    concat,
    encode_columns,
    encode_spans,
)
from meshscope.store.clickhouse.storage import ClickHouseStorage
from meshscope.store.clickhouse.traces import ClickHouseTraceStore

log = logging.getLogger(__name__)

SHARDING_KEYS = {
    "spans": "trace_hi", "trace_spans": "trace_hi", "access_logs": "trace_hi",
    "logs": "trace_hi", "series": "fingerprint", "samples": "fingerprint",
    "samples_latest": "fingerprint",
    "families": "cityHash64(name)", "catalog": "cityHash64(service)", RESOURCES: "",
}  # fmt: skip
"""Every table and the key its Distributed table declares. Rows are not inserted through
the Distributed tables (meshscope picks the shard itself, see the module docstring), so the
key documents the layout; for logs and the catalog meshscope's own choice differs where the
trace id is missing (a hash of the service). `resources` has none: a resource's rows are
on every shard that has spans of it (ADR 0026)."""

READ_SETTINGS = {"distributed_product_mode": "local"}


def distributed_statements(database: str, cluster: str) -> list[str]:
    dist = f"{database}_dist"
    return [f"CREATE DATABASE IF NOT EXISTS {dist}"] + [
        f"CREATE TABLE IF NOT EXISTS {dist}.{table} AS {database}.{table}"
        f" ENGINE = Distributed({cluster}, {database}, {table}{f', {key}' if key else ''})"
        for table, key in SHARDING_KEYS.items()
    ]


def _by_name(value: str, shards: int) -> int:
    return zlib.crc32(value.encode()) % shards


def _trace_shard(trace_id: str, fallback: str, shards: int) -> int:
    key = trace_key(trace_id) if trace_id else None
    return key[0] % shards if key else _by_name(fallback, shards)


Seq = Callable[[int], int]
"""The first of n write sequence numbers (`Connection.seq` of the first shard): one source
for every shard, so rows keep the order they were written in across shards."""


def _seqs(seq: Seq, count: int) -> range:
    first = seq(count)
    return range(first, first + count)


class ShardedTraceStore(ClickHouseTraceStore):
    """Search through the Distributed tables; trace by id on the owning shard only."""

    def __init__(self, read: Connection, shards: Sequence[ClickHouseTraceStore]) -> None:
        super().__init__(read)
        self._shards = list(shards)

    def write_spans(self, spans: Sequence[Span]) -> None:
        if spans:
            self.write_encoded([encode_spans(spans)])

    def write_encoded(self, encoded: Sequence[EncodedClickHouseSpans]) -> None:
        batches = [batch for batch in encoded if len(batch)]
        if not batches:
            return
        rows = concat(batches)
        hi = np.array(rows.table(("trace_hi",))["trace_hi"], dtype=np.uint64)
        owners = hi % np.uint64(len(self._shards))
        for index, shard in enumerate(self._shards):
            mask = owners == index
            if mask.all():
                shard.write_encoded([rows])
            elif mask.any():
                shard.write_encoded([rows.select(mask)])

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        wanted: dict[int, list[str]] = defaultdict(list)
        for trace_id in trace_ids:
            key = trace_key(trace_id)
            if key:
                wanted[key[0] % len(self._shards)].append(trace_id)
        found: dict[str, list[Span]] = {}
        for index, ids in wanted.items():
            found.update(self._shards[index].get_traces(ids))
        return found

    def first_starts(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        wanted: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for key in keys:
            wanted[key[0] % len(self._shards)].append(key)
        found: dict[tuple[int, int], int] = {}
        for index, part in wanted.items():
            found.update(self._shards[index].first_starts(part))
        return found


class ShardedLogStore(ClickHouseLogStore):
    def __init__(self, read: Connection, shards: Sequence[ClickHouseLogStore], seq: Seq) -> None:
        super().__init__(read)
        self._shards = list(shards)
        self._seq = seq

    def write_logs(
        self,
        logs: Sequence[LogRecord],
        calls: Sequence[Call] = (),
        seqs: Sequence[int] | None = None,
    ) -> None:
        if not logs and not calls:
            return
        count = len(self._shards)
        numbers = seqs if seqs is not None else _seqs(self._seq, len(logs) + len(calls))
        records: dict[int, list[LogRecord]] = defaultdict(list)
        record_seqs: dict[int, list[int]] = defaultdict(list)
        made: dict[int, list[Call]] = defaultdict(list)
        call_seqs: dict[int, list[int]] = defaultdict(list)
        for record, seq in zip(logs, numbers[: len(logs)], strict=True):
            index = _trace_shard(record.trace_id, record.service, count)
            records[index].append(record)
            record_seqs[index].append(seq)
        for call, seq in zip(calls, numbers[len(logs) :], strict=True):
            index = _trace_shard(call.trace_id, call.target, count)
            made[index].append(call)
            call_seqs[index].append(seq)
        for index in sorted(set(records) | set(made)):
            self._shards[index].write_logs(
                records.get(index, []), made.get(index, []),
                record_seqs.get(index, []) + call_seqs.get(index, []),
            )  # fmt: skip


class ShardedMetricStore(ClickHouseMetricStore):
    def __init__(self, read: Connection, shards: Sequence[ClickHouseMetricStore], seq: Seq) -> None:
        super().__init__(read)
        self._shards = list(shards)
        self._seq = seq

    def write_points(
        self, points: Sequence[MetricPoint], seqs: Sequence[int] | None = None
    ) -> None:
        if not points:
            return
        numbers = seqs if seqs is not None else _seqs(self._seq, len(points))
        parts: dict[int, list[MetricPoint]] = defaultdict(list)
        part_seqs: dict[int, list[int]] = defaultdict(list)
        for point, seq in zip(points, numbers, strict=True):
            index = fingerprint(point.name, point.labels) % len(self._shards)
            parts[index].append(point)
            part_seqs[index].append(seq)
        for index, part in sorted(parts.items()):
            self._shards[index].write_points(part, part_seqs[index])


class ShardedCatalogStore(ClickHouseCatalogStore):
    def __init__(
        self, read: Connection, shards: Sequence[ClickHouseCatalogStore], seq: Seq
    ) -> None:
        super().__init__(read)
        self._shards = list(shards)
        self._seq = seq

    def note(self, operations: Sequence[Operation], seqs: Sequence[int] | None = None) -> None:
        if not operations:
            return
        numbers = seqs if seqs is not None else _seqs(self._seq, len(operations))
        parts: dict[int, list[Operation]] = defaultdict(list)
        part_seqs: dict[int, list[int]] = defaultdict(list)
        for operation, seq in zip(operations, numbers, strict=True):
            index = _by_name(operation.service, len(self._shards))
            parts[index].append(operation)
            part_seqs[index].append(seq)
        for index, part in sorted(parts.items()):
            self._shards[index].note(part, part_seqs[index])


class ShardedClickHouseStorage:
    paired_calls_interval_s = ClickHouseStorage.paired_calls_interval_s  # as each shard's

    def __init__(
        self,
        dsns: Sequence[str],
        database: str = "meshscope",
        cluster: str = "",
        retention_hours: float | None = None,
    ) -> None:
        """Opens every shard (creating the tables, like ClickHouseStorage) and the
        Distributed tables over `cluster` on each; reads go through the first shard's that
        answers, leaving out (with a warning) the shards none can reach (`ShardReads`).
        A shard unreachable at start gets its tables when it first answers (reads skip it
        until then, writes holding its rows fail as unreachable). ValueError for a bad name
        or DSN, ClickHouseUnavailableError when no shard can be reached."""
        if not dsns:
            raise ValueError("a sharded ClickHouse store needs at least one shard DSN")
        check_name("database", database)
        if len(dsns) > 1:
            check_name("cluster", cluster)
        self.shards: list[ClickHouseStorage] = []
        self._read: Connection | None = None
        try:
            many = len(dsns) > 1
            for dsn in dsns:
                self.shards.append(ClickHouseStorage(dsn, database, retention_hours,
                                                     defer_unreachable=many))  # fmt: skip
            opened = [shard for shard in self.shards if shard.opened]
            if not opened:
                raise ClickHouseUnavailableError(
                    f"no clickhouse shard of {len(dsns)} could be reached: see the log"
                )
            if many:
                for shard in self.shards:
                    for statement in distributed_statements(database, cluster):
                        shard._conn.on_first_use(partial(shard._conn.execute, statement))
                    shard._conn.on_first_use(  # a Distributed `spans` made before ADR 0026
                        partial(add_resource_column, shard._conn, COMPAT, f"{database}_dist")
                    )
                    if shard.opened:
                        shard._conn.set_up()
                self._read = ShardReads(
                    dsns,
                    f"{database}_dist",
                    READ_SETTINGS,
                    ready=[shard._conn.set_up for shard in self.shards],
                    down=[i for i, shard in enumerate(self.shards) if not shard.opened],
                )
            read = self._read or self.shards[0]._conn
        except Exception:
            self.close()
            raise
        self.server_version = opened[0].server_version
        self.profile = opened[0].profile
        log.info("clickhouse shards opened", extra={"shards": len(dsns), "cluster": cluster})
        seq = self.shards[0]._conn.seq
        self.traces = ShardedTraceStore(read, [s.traces for s in self.shards])
        self.logs = ShardedLogStore(read, [s.logs for s in self.shards], seq)
        self.metrics = ShardedMetricStore(read, [s.metrics for s in self.shards], seq)
        self.catalog = ShardedCatalogStore(read, [s.catalog for s in self.shards], seq)

    span_encoder = staticmethod(encode_spans)
    column_encoder = staticmethod(encode_columns)

    def shards_down(self) -> list[int]:
        """The shards the reads take to be down (0-based; `ShardReads`), as the last probe or
        read found them; starts a probe of every shard in the background when none ran for
        a while, so the answer follows the shards without reads (`/metrics`)."""
        if not isinstance(self._read, ShardReads):
            return []
        self._read.refresh()
        return self._read.down()

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        self.write_encoded([encode_spans(spans)] if spans else [], logs, points, operations)

    def write_encoded(
        self,
        encoded_spans: Sequence[EncodedClickHouseSpans],
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
        calls: Sequence[Call] = (),
    ) -> None:
        """As ClickHouseStorage.write_encoded, each row on its shard; table by table and
        shard by shard, no transaction (a failure part way leaves earlier parts written)."""
        self.traces.write_encoded(encoded_spans)
        self.logs.write_logs(logs, calls)
        self.metrics.write_points(points)
        self.catalog.note(operations)

    def expire(self, before_ns: int) -> int:
        """Retention on every shard: one that fails (down, or a statement it refuses) does
        not keep the others from expiring; the first failure is raised after."""
        deleted, failed = 0, None
        for shard in self.shards:
            try:
                deleted += shard.expire(before_ns)
            except Exception as error:  # raised below, after the other shards
                failed = failed or error
        if failed is not None:
            raise failed
        return deleted

    def drop(self) -> None:
        """Delete the databases on every shard, then close (tests, tear-down)."""
        for shard in self.shards:
            database = shard._conn.database
            shard._conn.execute(f"DROP DATABASE IF EXISTS {database}_dist")
            shard._conn.execute(f"DROP DATABASE IF EXISTS {database}")
        self.close()

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
        if self._read is not None:
            self._read.close()
