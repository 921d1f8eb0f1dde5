"""Per-tenant ingest counts on `/metrics`, with a bounded number of tenant label values
(`limits.max_tenant_series`; the rest are counted under `tenant="other"`)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from meshscope.limits.limiter import Limiter
from meshscope.metric_families import counters


class LimitsCollector(Collector):
    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    def collect(self) -> Iterator[Metric]:
        limiter = self._limiter
        admitted, refused_items, refused_requests = limiter.counts()
        items = CounterMetricFamily(
            "meshscope_tenant_items",
            "Items (spans, logs, metrics) of write requests a tenant's limits admitted.",
            labels=["tenant", "signal"],
        )
        received = CounterMetricFamily(
            "meshscope_tenant_request_bytes",
            "Bytes of write request bodies (as received) a tenant's limits admitted.",
            labels=["tenant"],
        )
        for (tenant, signal), count in sorted(admitted.items()):
            if signal == "bytes":
                received.add_metric([tenant], count)
            else:
                items.add_metric([tenant, signal], count)
        yield items
        yield received
        yield counters(
            "meshscope_tenant_refused_items",
            "Items of write requests refused by a tenant's limits (rate_limited: 429, retry"
            " later; too_large: 413, a request over the burst; series_limit: 429, metric"
            " points of a request over a series limit). Requests refused on their bytes"
            " before decoding are not counted here.",
            ["tenant", "signal", "reason"],
            refused_items,
        )
        yield counters(
            "meshscope_tenant_refused_requests",
            "Write requests refused by tenant limits, by reason: <signal>_rate (429),"
            " series_limit (429), too_large (413), forbidden_tenant (403), invalid_tenant"
            " (400).",
            ["tenant", "reason"],
            refused_requests,
        )
        if limiter.overrides is not None:
            overrides = limiter.overrides
            yield counters(
                "meshscope_tenant_limits_reloads",
                "Reads of limits.overrides_file after the start, by outcome (failed: the"
                " previous limits stay in force).",
                ["outcome"],
                {"ok": overrides.reloads, "failed": overrides.reload_failures},
            )
        active = GaugeMetricFamily(
            "meshscope_tenant_active_series",
            "Metric series with a sample in the last limits.series_idle_seconds, per tenant"
            " (tracked for tenants with a series limit).",
            labels=["tenant"],
        )
        for tenant, count in sorted(limiter.active_series().items()):
            active.add_metric([tenant], count)
        yield active
        yield GaugeMetricFamily(
            "meshscope_tenant_limits_tenants",
            "Tenants whose rate buckets are tracked now.",
            limiter.tenants(),
        )
