"""Each tenant's writer, store and pipeline (memory stores, the real writers): batches go to
the submitting tenant's store, reads see only theirs, several tenants' logs merge in time
order with `__tenant_id__`, and no more than `tenancy.max_tenants` stores are opened."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from meshscope.app import App, build
from meshscope.config import load_config
from meshscope.ingest.sink import UnavailableError
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.store.base import LogQuery
from meshscope.tenancy.context import NoTenantError, as_tenants
from meshscope.tenancy.storage import TENANT_LABEL


@pytest.fixture
def app() -> Iterator[App]:
    env = {
        "MESHSCOPE_STORAGE__KIND": "memory",
        "MESHSCOPE_TENANCY__ENABLED": "true",
        "MESHSCOPE_TENANCY__MAX_TENANTS": "3",
    }
    built = build(load_config(env=env))
    built.start()
    try:
        yield built
    finally:
        built.stop()


def _logs(tenant: str, times: list[int]) -> Batch:
    return Batch(logs=[LogRecord(time_ns=t, body=f"{tenant}-{t}", service="svc") for t in times])


async def _submit(app: App, tenant: str, batch: Batch) -> None:
    with as_tenants(tenant):
        await app.sink.submit(batch)


def test_writes_and_reads_stay_with_their_tenant(app: App) -> None:
    asyncio.run(_submit(app, "a", _logs("a", [1, 4, 6])))
    asyncio.run(_submit(app, "b", _logs("b", [2, 3, 5])))
    for tenant in ("a", "b"):
        with as_tenants(tenant):
            bodies = {r.body for r in app.storage.logs.find_logs(LogQuery())}
            assert bodies and all(body.startswith(f"{tenant}-") for body in bodies)
            assert app.storage.logs.log_counts() == {"svc": 3}
    with as_tenants("nobody"):  # a tenant without a store reads an empty one
        assert app.storage.logs.find_logs(LogQuery()) == []
        assert app.storage.catalog.services() == []
    with as_tenants("a", "b"):
        merged = app.storage.logs.find_logs(LogQuery())
        assert [r.body for r in merged] == ["a-1", "b-2", "b-3", "a-4", "b-5", "a-6"]
        assert [r.resource[TENANT_LABEL] for r in merged[:2]] == ["a", "b"]
        newest = app.storage.logs.find_logs(LogQuery(newest_first=True, limit=2))
        assert [r.body for r in newest] == ["a-6", "b-5"]
        assert app.storage.logs.log_counts() == {"svc": 6}
        with pytest.raises(NoTenantError):  # only logs and metrics read several tenants
            app.storage.catalog.services()


def test_a_read_without_a_tenant_fails_instead_of_reading_one(app: App) -> None:
    with pytest.raises(NoTenantError):
        app.storage.catalog.services()


def test_no_more_stores_than_max_tenants(app: App) -> None:
    assert app.stacks is not None
    asyncio.run(_submit(app, "a", _logs("a", [1])))
    asyncio.run(_submit(app, "b", _logs("b", [1])))  # default, a, b: 3
    assert not app.stacks.can_open("c") and app.stacks.can_open("a")
    with pytest.raises(UnavailableError, match="max_tenants"):
        asyncio.run(_submit(app, "c", _logs("c", [1])))
    assert sorted(stack.tenant for stack in app.stacks.all()) == ["a", "b", "default"]


def test_each_tenant_has_its_own_pipeline(app: App) -> None:
    assert app.stacks is not None
    asyncio.run(_submit(app, "a", _logs("a", [1])))
    pipelines = {id(stack.pipeline) for stack in app.stacks.all()}
    stores = {id(stack.storage) for stack in app.stacks.all()}
    assert len(pipelines) == len(stores) == len(app.stacks.all()) == 2


def test_no_store_is_opened_once_stopping() -> None:
    env = {"MESHSCOPE_STORAGE__KIND": "memory", "MESHSCOPE_TENANCY__ENABLED": "true"}
    app = build(load_config(env=env))
    app.start()
    app.stop()
    with pytest.raises(UnavailableError, match="shutting down"):
        asyncio.run(_submit(app, "late", _logs("late", [1])))


def test_a_tenants_retention(tmp_path: object) -> None:
    """`limits.tenants.<t>.retention_hours`: that tenant's store keeps its data that long,
    the others `storage.retention_hours`."""
    from meshscope.clock import ManualClock
    from meshscope.config import Config, StorageConfig
    from meshscope.limits.config import LimitsConfig, TenantLimits
    from meshscope.tenancy.config import TenancyConfig

    now = 1_700_000_000 * 10**9
    clock = ManualClock(now)
    config = Config(
        storage=StorageConfig(kind="memory", retention_hours=24),
        tenancy=TenancyConfig(enabled=True),
        limits=LimitsConfig(tenants={"short": TenantLimits(retention_hours=1)}),
    )
    app = build(config, clock)
    app.start()
    try:
        two_hours_ago = now - 2 * 3600 * 10**9
        for tenant in ("short", "long"):
            asyncio.run(_submit(app, tenant, _logs(tenant, [two_hours_ago])))
        assert app.stacks is not None
        for stack in app.stacks.all():
            assert stack.writer.retention is not None
            stack.writer.retention()
        with as_tenants("short"):
            assert app.storage.logs.find_logs(LogQuery()) == []
        with as_tenants("long"):
            assert len(app.storage.logs.find_logs(LogQuery())) == 1
    finally:
        app.stop()


def test_metrics_of_several_tenants_carry_their_tenant(app: App) -> None:
    from meshscope.model.metrics import MetricPoint
    from meshscope.store.base import LabelMatcher, MatchOp

    for tenant, value in (("a", 1.0), ("b", 2.0)):
        asyncio.run(_submit(app, tenant, Batch(metrics=[MetricPoint("up", (("job", "x"),), 5,
                                                                    value=value)])))  # fmt: skip
    with as_tenants("a", "b"):
        found = app.storage.metrics.select("up", [], 0, 10)
        assert sorted((s.labels, s.samples[0].value) for s in found) == [
            ((("__tenant_id__", "a"), ("job", "x")), 1.0),
            ((("__tenant_id__", "b"), ("job", "x")), 2.0),
        ]
        only_b = [LabelMatcher("__tenant_id__", MatchOp.EQ, "b")]
        assert [s.labels for s in app.storage.metrics.select_values("up", only_b, 0, 10)] == [
            (("__tenant_id__", "b"), ("job", "x"))
        ]
        assert [f.name for f in app.storage.metrics.families()] == ["up"]
    with as_tenants("a"):
        assert [s.labels for s in app.storage.metrics.select("up", [], 0, 10)] == [(("job", "x"),)]


def test_a_tenant_cannot_pass_its_data_for_anothers_in_a_multi_tenant_read(app: App) -> None:
    """A `__tenant_id__` a writer stored itself (a remote-write label, a log record's
    attribute: Loki's structured metadata) moves to `original___tenant_id__`, as Mimir's
    tenant federation does: `__tenant_id__` names the store the data came from."""
    from meshscope.model.metrics import MetricPoint
    from meshscope.tenancy.storage import ORIGINAL_TENANT_LABEL

    forged = MetricPoint("forged", (("__tenant_id__", "b"), ("job", "x")), 5, value=666.0)
    asyncio.run(_submit(app, "a", Batch(metrics=[forged])))
    record = LogRecord(7, "from a", "svc", attributes={TENANT_LABEL: "b"})
    asyncio.run(_submit(app, "a", Batch(logs=[record])))
    with as_tenants("a", "b"):
        (series,) = app.storage.metrics.select("forged", [], 0, 10)
        assert dict(series.labels) == {TENANT_LABEL: "a", ORIGINAL_TENANT_LABEL: "b", "job": "x"}
        (found,) = app.storage.logs.find_logs(LogQuery())
        assert found.resource[TENANT_LABEL] == "a"
        assert found.attributes == {ORIGINAL_TENANT_LABEL: "b"}
    with as_tenants("a"):  # its own store, as it wrote it
        (series,) = app.storage.metrics.select("forged", [], 0, 10)
        assert dict(series.labels) == {TENANT_LABEL: "b", "job": "x"}
