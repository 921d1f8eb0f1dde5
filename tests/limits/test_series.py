"""Active-series limits per tenant (in all and per metric) and per-tenant query limits.

Series: the tracker with a fake clock (new series past a limit refused, series already
active still taken, idle series free their slot, a refused write notes nothing), then the
real receivers (remote write, OTLP metrics): 429 + Retry-After, nothing stored, the active
series on /metrics. Queries: a tenant's `max_series_per_query` makes its PromQL query a 422
while another tenant's same query runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from meshscope.limits.config import LimitsConfig, TenantLimits
from meshscope.limits.limiter import Limiter, RateLimitedError
from meshscope.limits.series import ActiveSeries, series_keys
from meshscope.model.metrics import MetricPoint
from meshscope.store.base import LabelMatcher, MatchOp
from tests.auth.tokens import ADMIN, READER, WRITER, bearer
from tests.limits import requests
from tests.limits.test_limiter import FakeClock
from tests.limits.test_receivers import RW, running


def _points(name: str, count: int, start: int = 0) -> list[MetricPoint]:
    return [MetricPoint(name, (("i", str(start + i)),), 1) for i in range(count)]


def test_new_series_past_a_metric_limit_are_refused_and_idle_ones_free_slots() -> None:
    series = ActiveSeries(idle_s=100)
    keys = series_keys(_points("m", 3))
    assert series.check("a", keys, 0, 3, now=0) is None
    series.record("a", keys, now=0)
    assert series.check("a", keys, 0, 3, now=10) is None  # the same series: no new one
    refusal = series.check("a", series_keys(_points("m", 1, start=3)), 0, 3, now=10)
    assert refusal is not None and "metric 'm' would have 4 active series" in refusal.message
    assert refusal.retry_after_s == pytest.approx(90)  # when the oldest goes idle
    assert series.check("b", series_keys(_points("m", 3)), 0, 3, now=10) is None  # per tenant
    assert series.check("a", series_keys(_points("n", 3)), 0, 3, now=10) is None  # per metric
    assert series.check("a", series_keys(_points("m", 3, start=3)), 0, 3, now=101) is None
    assert series.active() == {}  # the idle ones were dropped to make room


def test_the_tenants_total_is_limited_too() -> None:
    series = ActiveSeries(idle_s=100)
    series.record("a", series_keys(_points("m", 2) + _points("n", 2)), now=0)
    refusal = series.check("a", series_keys(_points("o", 1)), 4, 0, now=1)
    assert refusal is not None and "would have 5 active series" in refusal.message
    assert series.active() == {"a": 4}


def test_a_refused_write_notes_no_series_and_takes_no_tokens() -> None:
    clock = FakeClock()
    defaults = TenantLimits(
        metric_samples_per_second=100, metric_samples_burst=100, max_series_per_metric=2
    )
    limiter = Limiter(LimitsConfig(defaults=defaults), clock)
    limiter.admit("a", [("metrics", 2)], _points("m", 2))
    with pytest.raises(RateLimitedError, match="max_series_per_metric") as raised:
        limiter.admit("a", [("metrics", 3)], _points("m", 3))
    assert raised.value.retry_after_s == 1200  # the default idle time, as no series aged
    assert limiter.active_series() == {"a": 2}
    assert limiter.refused_requests["a", "series_limit"] == 1
    limiter.admit("a", [("metrics", 98)], _points("m", 2) * 49)  # the 98 tokens are left
    assert limiter.items["a", "metrics"] == 100


def test_receivers_refuse_new_series_past_the_limit(tmp_path: Path) -> None:
    limits = LimitsConfig(defaults=TenantLimits(max_series_per_metric=5))
    with running(tmp_path, limits, auth=True) as app:
        ui = TestClient(app.ui)
        otlp = TestClient(app.otlp_http)
        headers = {**RW, **bearer(WRITER)}
        assert ui.post("/api/v1/write", content=requests.remote_write(5), headers=headers)
        ok = ui.post("/api/v1/write", content=requests.remote_write(5), headers=headers)
        assert ok.status_code == 204  # the same five series again
        refused = ui.post("/api/v1/write", content=requests.remote_write(6), headers=headers)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "limited_total" in refused.text and "max_series_per_metric" in refused.text
        stored = app.storage.metrics.select(
            "limited_total", [LabelMatcher("i", MatchOp.EQ, "5")], 0, 2**62
        )
        assert stored == []  # nothing of the refused write
        otlp_headers = {"Content-Type": "application/x-protobuf", **bearer(WRITER)}
        response = otlp.post("/v1/metrics", content=requests.metrics(6), headers=otlp_headers)
        assert response.status_code == 429
        metrics = ui.get("/metrics", headers=bearer(ADMIN)).text
        assert 'meshscope_tenant_active_series{tenant="team-a"} 5.0' in metrics
        assert 'meshscope_tenant_refused_requests_total{reason="series_limit",tenant="team-a"}' \
            in metrics  # fmt: skip


def test_a_tenants_query_limits(tmp_path: Path) -> None:
    limits = LimitsConfig(tenants={"default": TenantLimits(max_series_per_query=2)})
    with running(tmp_path, limits, auth=True) as app:
        ui = TestClient(app.ui)
        write = {**RW, **bearer(WRITER)}
        assert ui.post("/api/v1/write", content=requests.remote_write(3), headers=write)
        # READER's tenant is `default` (limited to 2 series); ADMIN cannot read.
        query = {"query": "limited_total", "time": str(requests.T0 / 1e9 + 1)}
        refused = ui.get("/api/v1/query", params=query, headers=bearer(READER))
        assert refused.status_code == 422, refused.text
        assert "series" in refused.json()["error"]
        query["query"] = 'limited_total{i="1"}'
        assert ui.get("/api/v1/query", params=query, headers=bearer(READER)).status_code == 200


def test_a_read_of_several_tenants_takes_the_strictest_of_their_query_limits() -> None:
    """Naming another tenant first (`a|b`) must not lift b's limits."""
    from meshscope.query.budget import QueryLimits
    from meshscope.tenancy.context import as_tenants

    limiter = Limiter(
        LimitsConfig(
            tenants={
                "a": TenantLimits(max_series_per_query=100, query_timeout_seconds=5),
                "b": TenantLimits(max_series_per_query=1, max_samples_per_query=50),
            }
        )
    )
    base = QueryLimits(timeout_seconds=60, max_series=1000, max_samples=10**6)
    for tenants in (("a", "b"), ("b", "a")):
        with as_tenants(*tenants):
            got = limiter.query_limits(base)
        assert (got.max_series, got.max_samples, got.timeout_seconds) == (1, 50, 5)
    with as_tenants("a"):
        got = limiter.query_limits(base)
    assert (got.max_series, got.max_samples, got.timeout_seconds) == (100, 10**6, 5)
    with as_tenants("c"):  # no limits of its own: the `query:` section's
        assert limiter.query_limits(base) == base
