"""The store the read APIs get with tenancy on: each call goes to the store of the tenant
of the request being handled (`context.read_tenants`).

The APIs were built against `store.base.Storage` and stay unaware of tenants: `traces`,
`logs`, `metrics` and `catalog` here are thin views whose every method looks up the
request's tenant's store and calls it. A tenant without a store reads an empty one. A read
of several tenants is served by the logs view (Loki's `a|b`) and the metrics view (Mimir's
tenant federation, on the Prometheus API) as the union of each tenant's records or series,
each labelled `__tenant_id__`; the other views refuse it (the gates let several tenants
through to those APIs only). Writes never come
this way (each tenant's writer holds its own store): the write methods refuse.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from meshscope.model.logs import LogRecord
from meshscope.model.metrics import MetricPoint
from meshscope.model.spans import Span
from meshscope.store.base import (
    MAX_TIME_NS,
    CatalogStore,
    ExemplarQuery,
    HistogramColumns,
    LabelMatcher,
    LogQuery,
    LogStore,
    MetricFamily,
    MetricStore,
    Operation,
    SampleColumns,
    Series,
    SpanExemplar,
    Storage,
    TraceQuery,
    TraceStore,
)
from meshscope.store.memory import MemoryStorage
from meshscope.tenancy.context import NoTenantError, read_tenants
from meshscope.tenancy.stacks import TenantStacks

TENANT_LABEL = "__tenant_id__"
"""The label a record read with others' carries: its tenant (Loki's name)."""
ORIGINAL_TENANT_LABEL = "original___tenant_id__"
"""Where a multi-tenant read puts a `__tenant_id__` a tenant stored itself, as Mimir's and
Cortex's tenant federation do: the label names the tenant whose store the data came from,
and a writer cannot make its data pass for another tenant's."""


def _tenant_marked(labels: Mapping[str, Any], tenant: str) -> dict[str, Any]:
    """`labels` with `__tenant_id__` = `tenant`; a stored one moves to ORIGINAL_TENANT_LABEL."""
    return {**_stored_tenant_moved(labels), TENANT_LABEL: tenant}


class ReadOnlyError(RuntimeError):
    """A write through the read view: each tenant's writer writes its own store."""


class _Tenanted:
    def __init__(self, stacks: TenantStacks) -> None:
        self._stacks = stacks
        self._empty = MemoryStorage()  # what a tenant without a store reads

    def _storage(self, tenant: str) -> Storage:
        stack = self._stacks.find(tenant)
        return self._empty if stack is None else stack.storage

    def _one(self) -> Storage:
        tenants = read_tenants()
        if len(tenants) != 1:
            raise NoTenantError("only the Loki and Prometheus query APIs read several tenants")
        return self._storage(tenants[0])


class TenantTraces(_Tenanted):
    def write_spans(self, spans: Sequence[Span]) -> None:
        raise ReadOnlyError("spans are written by their tenant's writer")

    def get_trace(self, trace_id: str) -> list[Span]:
        return self._one().traces.get_trace(trace_id)

    def get_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Span]]:
        return self._one().traces.get_traces(trace_ids)

    def find_trace_ids(self, query: TraceQuery) -> list[str]:
        return self._one().traces.find_trace_ids(query)

    def span_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        return self._one().traces.span_counts(start_ns, end_ns)

    def exemplars(self, query: ExemplarQuery) -> list[SpanExemplar]:
        return self._one().traces.exemplars(query)


class TenantLogs(_Tenanted):
    def write_logs(self, logs: Sequence[LogRecord]) -> None:
        raise ReadOnlyError("logs are written by their tenant's writer")

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        tenants = read_tenants()
        if len(tenants) == 1:
            return self._storage(tenants[0]).logs.find_logs(query)
        # Each tenant's records in store order, labelled, merged by time (ties: tenant order).
        parts = [
            [
                replace(
                    record,
                    resource=_tenant_marked(record.resource, tenant),
                    attributes=_stored_tenant_moved(record.attributes),
                )
                for record in self._storage(tenant).logs.find_logs(query)
            ]
            for tenant in tenants
        ]
        merged = list(heapq.merge(*parts, key=lambda r: r.time_ns, reverse=query.newest_first))
        return merged[: query.limit] if query.limit else merged

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        total: Counter[str] = Counter()
        for tenant in read_tenants():
            total.update(self._storage(tenant).logs.log_counts(start_ns, end_ns))
        return dict(total)


class TenantMetrics(_Tenanted):
    """A read of several tenants (Mimir's tenant federation, on the Prometheus API) sees every
    tenant's series, each labelled `__tenant_id__`, which matchers may select on."""

    def write_points(self, points: Sequence[MetricPoint]) -> None:
        raise ReadOnlyError("points are written by their tenant's writer")

    def _stores(
        self, matchers: Sequence[LabelMatcher]
    ) -> list[tuple[str | None, MetricStore, list[LabelMatcher]]]:
        """(tenant to label with, or None for a one-tenant read; its store; the matchers
        the store gets)."""
        tenants = read_tenants()
        if len(tenants) == 1:
            return [(None, self._storage(tenants[0]).metrics, list(matchers))]
        own = [m for m in matchers if m.name != TENANT_LABEL]
        on_tenant = [m for m in matchers if m.name == TENANT_LABEL]
        return [
            (tenant, self._storage(tenant).metrics, own)
            for tenant in tenants
            if all(m.matches(tenant) for m in on_tenant)
        ]

    def select(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[Series]:
        return [
            _labelled(series, tenant)
            for tenant, store, own in self._stores(matchers)
            for series in store.select(name, own, start_ns, end_ns)
        ]

    def latest(
        self, name: str, matchers: Sequence[LabelMatcher], at_ns: int, lookback_ns: int
    ) -> list[Series]:
        return [
            _labelled(series, tenant)
            for tenant, store, own in self._stores(matchers)
            for series in store.latest(name, own, at_ns, lookback_ns)
        ]

    def select_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[SampleColumns]:
        return [
            _labelled(columns, tenant)
            for tenant, store, own in self._stores(matchers)
            for columns in store.select_values(name, own, start_ns, end_ns)
        ]

    def select_histograms(
        self, name: str, matchers: Sequence[LabelMatcher], start_ns: int, end_ns: int
    ) -> list[HistogramColumns]:
        return [
            _labelled(columns, tenant)
            for tenant, store, own in self._stores(matchers)
            for columns in store.select_histograms(name, own, start_ns, end_ns)
        ]

    def families(self) -> list[MetricFamily]:
        found: dict[str, MetricFamily] = {}
        for _, store, _ in self._stores(()):
            for family in store.families():
                found.setdefault(family.name, family)
        return list(found.values())


_Value = TypeVar("_Value")
_Labelled = TypeVar("_Labelled", Series, SampleColumns, HistogramColumns)


def _labelled(item: _Labelled, tenant: str | None) -> _Labelled:
    """`item` with its tenant's `__tenant_id__` label (labels stay sorted); as is for None."""
    if tenant is None:
        return item
    return replace(item, labels=tuple(sorted(_tenant_marked(dict(item.labels), tenant).items())))


def _stored_tenant_moved(labels: Mapping[str, _Value]) -> dict[str, _Value]:
    """`labels` (series labels, a record's attributes: Loki's structured metadata, which
    wins a name clash with the resource's) with a stored `__tenant_id__` moved to
    ORIGINAL_TENANT_LABEL."""
    out = dict(labels)
    if TENANT_LABEL not in out:
        return out
    out[ORIGINAL_TENANT_LABEL] = out.pop(TENANT_LABEL)
    return out


class TenantCatalog(_Tenanted):
    def note(self, operations: Sequence[Operation]) -> None:
        raise ReadOnlyError("operations are noted by their tenant's writer")

    def services(self) -> list[str]:
        return self._one().catalog.services()

    def operations(self, service: str) -> list[Operation]:
        return self._one().catalog.operations(service)


class TenantStorage:
    """`Storage` for the read APIs: the request's tenant's store (module docstring)."""

    def __init__(self, stacks: TenantStacks) -> None:
        self._traces = TenantTraces(stacks)
        self._logs = TenantLogs(stacks)
        self._metrics = TenantMetrics(stacks)
        self._catalog = TenantCatalog(stacks)

    @property
    def traces(self) -> TraceStore:
        return self._traces

    @property
    def logs(self) -> LogStore:
        return self._logs

    @property
    def metrics(self) -> MetricStore:
        return self._metrics

    @property
    def catalog(self) -> CatalogStore:
        return self._catalog

    def write_batch(
        self,
        spans: Sequence[Span] = (),
        logs: Sequence[LogRecord] = (),
        points: Sequence[MetricPoint] = (),
        operations: Sequence[Operation] = (),
    ) -> None:
        raise ReadOnlyError("each tenant's writer writes its own store")

    def expire(self, before_ns: int) -> int:
        raise ReadOnlyError("each tenant's writer applies retention to its own store")

    def close(self) -> None:
        """Nothing: the stacks close the stores."""
