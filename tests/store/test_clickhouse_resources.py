"""Resources stored once a day (ADR 0026), on the 18.16 server the tests start: a search row
names its resource by fingerprint, `resources` holds each resource once per day it is used
(per shard), search by a resource attribute finds spans through it, retention drops its old
days and the store writes them again when spans of such a day come back, and a database
made before (resources in the search rows' own `res_*` columns, no `resource`) keeps its
rows findable beside the new ones, on one server and through a cluster's Distributed
tables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.model.attributes import AttrValue
from meshscope.model.spans import Span
from meshscope.store.base import TraceQuery
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.columns import encode_attrs
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.sharded import ShardedClickHouseStorage
from meshscope.store.clickhouse.span_rows import BY_TRACE, encode_spans
from meshscope.store.codec import id64, id128, resource_id
from tests.conformance import clickhouse_server

S = 1_000_000_000
DAY = 86_400 * S
D0 = 1_702_080_000 * S  # 2023-12-09 00:00 UTC
WEB: dict[str, AttrValue] = {"service.name": "web", "k8s.pod.name": "web-1"}
DB: dict[str, AttrValue] = {"service.name": "db", "k8s.pod.name": "db-1"}


def span(n: int, start_ns: int, resource: dict[str, AttrValue]) -> Span:
    return Span(f"{n:032x}", f"{n:016x}", "op", str(resource.get("service.name")),
                start_ns, start_ns + S, resource=resource)  # fmt: skip


def rows(storage: ClickHouseStorage, sql: str) -> list[tuple[object, ...]]:
    return storage._conn.rows(sql.format(db=storage._conn.database))


def pod(storage: ClickHouseStorage, name: str) -> list[str]:
    """The traces whose spans (or their resources) have k8s.pod.name = `name`, over 3 days."""
    query = TraceQuery(start_ns=D0, end_ns=D0 + 3 * DAY, limit=100,
                       attributes={"k8s.pod.name": name})  # fmt: skip
    return sorted(storage.traces.find_trace_ids(query))


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[ClickHouseStorage]:
    yield from clickhouse_server.fresh_storage(tmp_path)


def test_a_resource_is_written_once_a_day_and_found_through_it(
    storage: ClickHouseStorage,
) -> None:
    for batch in range(3):  # three commits, each with spans of both days and resources
        storage.write_batch(spans=[
            span(10 * batch + 1, D0 + batch * S, WEB), span(10 * batch + 2, D0 + DAY, WEB),
            span(10 * batch + 3, D0 + DAY + S, DB), span(10 * batch + 4, D0 + 2 * S, {}),
        ])  # fmt: skip
    written = rows(storage, "SELECT fingerprint, day, res_keys, res_values, res_types"
                            " FROM {db}.resources ORDER BY day, fingerprint")  # fmt: skip
    by_day = sorted(
        [(resource_id(r), day, *encode_attrs(r)) for r, day in
         ((WEB, "2023-12-09"), (WEB, "2023-12-10"), (DB, "2023-12-10"))],
        key=lambda row: (row[1], row[0]),
    )  # fmt: skip
    assert [(fp, str(day), *rest) for fp, day, *rest in written] == by_day
    named = rows(storage, "SELECT DISTINCT resource FROM {db}.spans")
    assert sorted(named) == sorted([(0,), (resource_id(WEB),), (resource_id(DB),)])
    assert pod(storage, "web-1") == [f"{n:032x}" for n in (1, 2, 11, 12, 21, 22)]
    assert pod(storage, "db-1") == [f"{n:032x}" for n in (3, 13, 23)]
    assert pod(storage, "db-2") == []


def test_retention_drops_old_days_and_they_are_written_again_when_spans_come(
    storage: ClickHouseStorage,
) -> None:
    storage.write_batch(spans=[span(1, D0 + S, DB), span(2, D0 + DAY + S, WEB)])
    storage.expire(D0 + DAY)  # the first day goes, resources and spans alike
    assert rows(storage, "SELECT toString(day) FROM {db}.resources") == [("2023-12-10",)]
    assert pod(storage, "db-1") == []
    assert pod(storage, "web-1") == [f"{2:032x}"]
    storage.write_batch(spans=[span(3, D0 + 2 * S, DB)])  # late, on the day retention dropped
    assert pod(storage, "db-1") == [f"{3:032x}"]


def test_a_time_outside_the_days_range_gets_its_resource_every_time(
    storage: ClickHouseStorage,
) -> None:
    for _ in range(2):
        storage.write_batch(spans=[span(1, -5 * S, DB)])
    [(count,)] = rows(storage, "SELECT count() FROM {db}.resources")
    assert count == 2
    query = TraceQuery(start_ns=-DAY, end_ns=0, limit=5, attributes={"k8s.pod.name": "db-1"})
    found = storage.traces.find_trace_ids(query)
    assert found == [f"{1:032x}"]


# `spans` as schema.py created it before ADR 0026 (the compat profile).
OLD_SPANS = """CREATE TABLE {db}.spans (
    service String, name String, start_ns Int64, duration_ns Int64, trace_hi UInt64,
    trace_lo UInt64, span_id UInt64, kind UInt8, status UInt8, attr_keys Array(String),
    attr_values Array(String), attr_types String, res_keys Array(String),
    res_values Array(String), res_types String,
    day Date DEFAULT toDate(toDateTime(intDiv(start_ns, 1000000000), 'UTC'))
) ENGINE = MergeTree PARTITION BY day ORDER BY (service, name, start_ns)"""

OLD = [span(1, D0 + S, WEB), span(2, D0 + 2 * S, DB)]


def old_rows(spans: list[Span]) -> dict[str, list[object]]:
    """OLD_SPANS' columns of `spans`, as the encoder before ADR 0026 laid them out."""
    out: dict[str, list[object]] = {}
    for s in spans:
        attrs, res = encode_attrs(s.attributes), encode_attrs(s.resource)
        hi, lo = id128(s.trace_id)
        for name, value in (
            ("service", s.service), ("name", s.name), ("start_ns", s.start_ns),
            ("duration_ns", s.duration_ns), ("trace_hi", hi), ("trace_lo", lo),
            ("span_id", id64(s.span_id)), ("kind", int(s.kind)), ("status", int(s.status_code)),
            ("attr_keys", attrs[0]), ("attr_values", attrs[1]), ("attr_types", attrs[2]),
            ("res_keys", res[0]), ("res_values", res[1]), ("res_types", res[2]),
        ):  # fmt: skip
            out.setdefault(name, []).append(value)
    return out


def make_old(dsn: str, database: str, spans: list[Span]) -> None:
    """A database whose `spans` was made (and written) before ADR 0026."""
    conn = Connection(dsn, database)
    try:
        conn.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        conn.execute(OLD_SPANS.format(db=database))
        if spans:
            conn.insert("spans", old_rows(spans))
    finally:
        conn.close()


def test_a_database_made_before_keeps_its_resources_findable(tmp_path: Path) -> None:
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    database = clickhouse_server.database_for(tmp_path)
    make_old(clickhouse_server.dsn(), database, OLD)
    storage = ClickHouseStorage(clickhouse_server.dsn(), database)
    try:
        storage._conn.insert_native("trace_spans", encode_spans(OLD).native(BY_TRACE))
        storage.write_batch(spans=[span(3, D0 + 3 * S, WEB), span(4, D0 + 4 * S, DB)])
        assert pod(storage, "web-1") == [f"{1:032x}", f"{3:032x}"]
        assert pod(storage, "db-1") == [f"{2:032x}", f"{4:032x}"]
        assert sorted(rows(storage, "SELECT start_ns, resource FROM {db}.spans")) == [
            (D0 + S, 0), (D0 + 2 * S, 0),  # written before: their resource is inline
            (D0 + 3 * S, resource_id(WEB)), (D0 + 4 * S, resource_id(DB)),
        ]  # fmt: skip
        assert storage.traces.get_trace(f"{1:032x}") == [OLD[0]]
    finally:
        storage.drop()


def on_shard(shard: int, n: int, start_ns: int, resource: dict[str, AttrValue]) -> Span:
    """A span whose trace id's high half is `shard` (2 shards: its shard)."""
    return Span(f"{shard << 64 | n:032x}", f"{n:016x}", "op", "svc", start_ns,
                start_ns + S, resource=resource)  # fmt: skip


def test_a_cluster_made_before_keeps_its_resources_findable(tmp_path: Path) -> None:
    """Shards whose `spans` and Distributed `spans` were made before ADR 0026: each shard's
    table and each Distributed table get `resource`, and search through the Distributed
    tables finds old and new spans (each shard's `resources` with its own spans)."""
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    database = clickhouse_server.database_for(tmp_path)
    dsns = clickhouse_server.shard_dsns()
    old = [on_shard(0, 1, D0 + S, WEB), on_shard(1, 2, D0 + 2 * S, WEB)]
    for index, dsn in enumerate(dsns):
        make_old(dsn, database, [old[index]])
        conn = Connection(dsn, database)
        try:  # the Distributed table as the code before made it
            conn.execute(f"CREATE DATABASE IF NOT EXISTS {database}_dist")
            conn.execute(
                f"CREATE TABLE {database}_dist.spans AS {database}.spans"
                f" ENGINE = Distributed({clickhouse_server.CLUSTER}, {database}, spans, trace_hi)"
            )
        finally:
            conn.close()
    cluster = ShardedClickHouseStorage(dsns, database, clickhouse_server.CLUSTER)
    try:
        for index, shard in enumerate(cluster.shards):
            shard._conn.insert_native("trace_spans", encode_spans([old[index]]).native(BY_TRACE))
        new = [on_shard(0, 3, D0 + 3 * S, WEB), on_shard(1, 4, D0 + 4 * S, WEB),
               on_shard(1, 5, D0 + 5 * S, DB)]  # fmt: skip
        cluster.write_batch(spans=new)
        query = TraceQuery(start_ns=D0, end_ns=D0 + DAY, limit=100,
                           attributes={"k8s.pod.name": "web-1"})  # fmt: skip
        found = sorted(cluster.traces.find_trace_ids(query))
        assert found == sorted(s.trace_id for s in [*old, *new[:2]])
        for index, shard in enumerate(cluster.shards):  # each with its own spans' resources
            fingerprints = shard._conn.rows(f"SELECT fingerprint FROM {database}.resources")
            assert sorted(fingerprints) == sorted(
                [(resource_id(WEB),)] + ([(resource_id(DB),)] if index else [])
            )
    finally:
        cluster.drop()
