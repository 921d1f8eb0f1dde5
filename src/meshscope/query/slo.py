"""Service level objectives over the span metrics: SLI, error budget and burn rates.

An SLO says which share of a service's server spans must be good over a window (e.g. 99.9 %
over 30 days). The SLI is `availability` (spans without error status / all spans, from
`calls_total`) or `latency` (spans at most `threshold_ms` long / all spans, from the
`duration_milliseconds` histogram: the threshold is one of its bucket bounds, so the count is
exact). The error budget is 1 - objective; the burn rate over a window is the window's bad
ratio divided by the budget (1 = the budget lasts exactly the SLO window).

States follow the Google SRE workbook's multiwindow, multi-burn-rate alerts: `page` when the
burn rate over both 1 h and 5 m exceeds 14.4 (2 % of a 30-day budget spent in an hour), else
`ticket` when over both 6 h and 30 m it exceeds 6 (5 % in six hours), else `ok`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.model.spans import SpanKind, StatusCode
from meshscope.pipeline.derive.spanmetrics import CALLS, DEFAULT_BUCKETS_MS, DURATION
from meshscope.query.increase import Growth, growth_since, increases, merge, snapshot
from meshscope.store.base import LabelMatcher, MatchOp, MetricStore
from meshscope.tenancy.context import as_tenants

AVAILABILITY = "availability"
LATENCY = "latency"
SLI_KINDS = (AVAILABILITY, LATENCY)
LATENCY_BOUNDS_MS = DEFAULT_BUCKETS_MS
"""The thresholds a latency SLO may use: the span-metric histogram's bucket bounds."""

MINUTE_NS = 60 * 10**9
HOUR_NS = 60 * MINUTE_NS
OK, TICKET, PAGE = "ok", "ticket", "page"


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """Fire `severity` when the burn rate over both windows exceeds `factor`."""

    severity: str
    long_ns: int
    short_ns: int
    factor: float


BURN_ALERTS = (
    BurnAlert(PAGE, HOUR_NS, 5 * MINUTE_NS, 14.4),
    BurnAlert(TICKET, 6 * HOUR_NS, 30 * MINUTE_NS, 6.0),
)
"""Most severe first: an SLO's state is the first of these that fires."""


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    service: str
    objective: float  # e.g. 0.999
    window_ns: int  # e.g. 30 days
    sli: str = AVAILABILITY
    operation: str = ""  # "" = every operation of the service
    threshold_ms: float | None = None  # latency SLIs only
    tenant: str = DEFAULT_TENANT  # whose span metrics it reads (with tenancy on)

    @property
    def budget(self) -> float:
        return 1.0 - self.objective


@dataclass(frozen=True, slots=True)
class Events:
    """Good and bad events (server spans) over one window."""

    total: float
    bad: float

    @property
    def bad_ratio(self) -> float:
        return self.bad / self.total if self.total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Burn:
    alert: BurnAlert
    long_rate: float
    short_rate: float

    @property
    def firing(self) -> bool:
        return self.long_rate > self.alert.factor and self.short_rate > self.alert.factor


@dataclass(frozen=True, slots=True)
class SloStatus:
    slo: Slo
    time_ns: int
    events: Events  # over the SLO window
    sli: float | None  # good / total over the window; None without events
    budget_events: float  # bad events the window allows: (1 - objective) * total
    burns: tuple[Burn, ...]  # one per BURN_ALERTS entry, same order

    @property
    def budget_consumed(self) -> float:
        """Share of the error budget spent (above 1 when overspent); 0 without events."""
        return self.events.bad / self.budget_events if self.budget_events > 0 else 0.0

    @property
    def budget_remaining(self) -> float:
        return 1.0 - self.budget_consumed

    @property
    def state(self) -> str:
        return next((b.alert.severity for b in self.burns if b.firing), OK)


def evaluate(metrics: MetricStore, slo: Slo, time_ns: int) -> SloStatus:
    """The SLO at `time_ns`: SLI and budget over the window ending then, and burn rates.
    Every window ends at `time_ns`, so that instant is looked up once for all of them."""
    name, matchers = _series(slo)
    now = snapshot(metrics, name, matchers, time_ns)

    def since(start_ns: int) -> Events:
        before = snapshot(metrics, name, matchers, start_ns)
        return _events(slo, growth_since(before, now, start_ns))

    events = since(time_ns - slo.window_ns)
    burns = tuple(
        Burn(
            alert,
            burn_rate(slo, since(time_ns - alert.long_ns)),
            burn_rate(slo, since(time_ns - alert.short_ns)),
        )
        for alert in BURN_ALERTS
    )
    return SloStatus(
        slo=slo,
        time_ns=time_ns,
        events=events,
        sli=1.0 - events.bad_ratio if events.total > 0 else None,
        budget_events=slo.budget * events.total,
        burns=burns,
    )


def burn_rate(slo: Slo, events: Events) -> float:
    """How fast the window spent the budget: 1 = exactly as fast as the SLO allows."""
    return events.bad_ratio / slo.budget


def count_events(metrics: MetricStore, slo: Slo, start_ns: int, end_ns: int) -> Events:
    """Server spans of the SLO's service (and operation) in (start_ns, end_ns], and how many
    were bad: error status (availability) or slower than the threshold (latency)."""
    name, matchers = _series(slo)
    return _events(slo, increases(metrics, name, matchers, start_ns, end_ns))


def _series(slo: Slo) -> tuple[str, list[LabelMatcher]]:
    """The span-metric series the SLI counts: calls (availability) or durations (latency)."""
    return (CALLS if slo.sli == AVAILABILITY else DURATION), slo_matchers(slo)


def _events(slo: Slo, growths: Sequence[Growth]) -> Events:
    if slo.sli == AVAILABILITY:
        total = bad = 0.0
        error = StatusCode.ERROR.otel_name
        for growth in growths:
            total += growth.value
            if dict(growth.labels).get("status_code") == error:
                bad += growth.value
        return Events(total, bad)
    hists = [g.histogram for g in growths]
    threshold = slo.threshold_ms
    merged = merge(h for h in hists if h is not None and threshold in h.bounds)
    if merged is None:
        return Events(0.0, 0.0)
    good = dict(merged.cumulative())[float(threshold or 0)]
    return Events(float(merged.count), float(merged.count - good))


def slo_matchers(slo: Slo) -> list[LabelMatcher]:
    matchers = [
        LabelMatcher("service_name", MatchOp.EQ, slo.service),
        LabelMatcher("span_kind", MatchOp.EQ, SpanKind.SERVER.otel_name),
    ]
    if slo.operation:
        matchers.append(LabelMatcher("span_name", MatchOp.EQ, slo.operation))
    return matchers


def evaluate_all(metrics: MetricStore, slos: Sequence[Slo], time_ns: int) -> list[SloStatus]:
    """Each SLO evaluated as its tenant (a store that keeps tenants apart reads theirs)."""
    found = []
    for slo in slos:
        with as_tenants(slo.tenant):
            found.append(evaluate(metrics, slo, time_ns))
    return found
