"""One token bucket per (tenant, signal), and the counts `/metrics` shows per tenant.

`admit(tenant, costs)` checks every signal of a request first and takes from the buckets only
if all admit it, so a refused request costs its tenant nothing (nothing of it is stored).
Buckets are made on a tenant's first request; with authentication off any `X-Scope-OrgID`
makes one, so at most `max_tenants` tenants are tracked: past that, tenants whose buckets
are full again (the same as new ones) are forgotten, and if none is, new tenants share one
bucket per signal. Label values on `/metrics` are bounded the same way (`TenantLabels`).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from meshscope.auth.principal import DEFAULT_TENANT, current_principal
from meshscope.ingest.body import BodyError
from meshscope.ingest.sink import OverloadedError
from meshscope.limits.bucket import TokenBucket
from meshscope.limits.config import UNITS, LimitsConfig, Signal, TenantLimits
from meshscope.limits.overrides import OverridesFile
from meshscope.limits.series import ActiveSeries, series_keys
from meshscope.model.metrics import MetricPoint
from meshscope.query.budget import QueryLimits
from meshscope.tenancy.context import current_tenants

OTHER = "other"
_OVERFLOW = "\0shared"  # the bucket key of tenants past `max_tenants` (no tenant's name)


class RateLimitedError(OverloadedError):
    """The tenant is over a rate: retry after `retry_after_s` (whole seconds, >= 1)."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message, max(1, math.ceil(wait_s)))
        self.wait_s = wait_s


class TooLargeError(BodyError):
    """One request costs more than the tenant's burst: it can never be admitted (413)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


def _amount(value: float) -> str:
    return f"{value:g}" if value < 1e6 else f"{value:.0f}"


class TenantLabels:
    """The label value of each tenant: its name for the tenants named in the config and the
    first `cap` others seen, `other` for the rest (bounded series however many tenants)."""

    def __init__(self, cap: int, named: Iterable[str] = ()) -> None:
        self.cap = cap
        self.named = frozenset(named)
        self._seen: set[str] = set()

    def __call__(self, tenant: str) -> str:
        if tenant in self.named or tenant in self._seen:
            return tenant
        if len(self._seen) < self.cap:
            self._seen.add(tenant)
            return tenant
        return OTHER


class Limiter:
    def __init__(
        self, config: LimitsConfig, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[Signal, TokenBucket]] = {}
        self._next_sweep = 0.0
        self.overrides = (
            OverridesFile(
                config.overrides_file,
                config.defaults,
                config.reload_interval_seconds,
                monotonic(),
            )
            if config.overrides_file
            else None
        )
        self._tenants: Mapping[str, TenantLimits] = self._merged()
        self.label = TenantLabels(config.max_tenant_series, self._tenants)
        # Counted under the lock, read by the /metrics collector.
        self.items: Counter[tuple[str, Signal]] = Counter()  # admitted (and bytes), by label
        self.refused_items: Counter[tuple[str, Signal, str]] = Counter()
        self.refused_requests: Counter[tuple[str, str]] = Counter()
        self.series = ActiveSeries(config.series_idle_seconds)

    def _merged(self) -> Mapping[str, TenantLimits]:
        if self.overrides is None:
            return self.config.tenants
        return {**self.config.tenants, **self.overrides.tenants}

    def of(self, tenant: str) -> TenantLimits:
        """The limits in force for `tenant` (the overrides file, `limits.tenants`, defaults)."""
        return self._tenants.get(tenant, self.config.defaults)

    def reload(self) -> bool:
        """Read the overrides file again now if it changed (SIGHUP); False if unchanged,
        invalid (logged: the previous limits stay) or not configured."""
        with self._lock:
            return self._check(self._monotonic(), force=True)

    def _check(self, now: float, force: bool = False) -> bool:
        if self.overrides is None or not self.overrides.check(now, force=force):
            return False
        self._tenants = self._merged()
        self.label.named = self.label.named | frozenset(self._tenants)
        return True

    def refuse_tenant(self, tenant: str, reason: str) -> None:
        """Count a request refused before its limits (a tenant it may not name)."""
        with self._lock:
            self.refused_requests[self.label(tenant), reason] += 1

    def counts(
        self,
    ) -> tuple[
        dict[tuple[str, Signal], int],
        dict[tuple[str, Signal, str], int],
        dict[tuple[str, str], int],
    ]:
        """Copies of the counters (admitted items and bytes, refused items, refused requests),
        taken under the lock so that /metrics never iterates a counter being changed."""
        with self._lock:
            return dict(self.items), dict(self.refused_items), dict(self.refused_requests)

    def query_limits(self, base: QueryLimits) -> QueryLimits:
        """The limits of the read being handled: `base` (the `query:` section) with its
        tenants' `query_timeout_seconds`, `max_series_per_query`, `max_samples_per_query`
        where set, the strictest of them for a read of several tenants (`a|b`: naming
        another tenant first must not lift b's). The tenants: the read's (tenancy on), else
        the token's first, else `default`."""
        tenants = current_tenants.get()
        if not tenants:
            principal = current_principal.get()
            tenants = (principal.first_tenant if principal is not None else DEFAULT_TENANT,)
        limited = [limits for limits in map(self.of, tenants) if limits.limits_queries()]
        if not limited:
            return base
        return dataclasses.replace(
            base,
            timeout_seconds=min(
                (x.query_timeout_seconds for x in limited if x.query_timeout_seconds),
                default=base.timeout_seconds,
            ),
            max_series=min(
                (int(x.max_series_per_query) for x in limited if x.max_series_per_query),
                default=base.max_series,
            ),
            max_samples=min(
                (int(x.max_samples_per_query) for x in limited if x.max_samples_per_query),
                default=base.max_samples,
            ),
        )

    def active_series(self) -> dict[str, int]:
        """Active series per tenant label (tracked only for tenants with series limits)."""
        with self._lock:
            found: Counter[str] = Counter()
            for tenant, count in self.series.active().items():
                found[self.label(tenant)] += count
            return dict(found)

    def tenants(self) -> int:
        """Tenants tracked now (each with its buckets)."""
        return len(self._buckets)

    def admit(
        self,
        tenant: str,
        costs: Iterable[tuple[Signal, int]],
        points: Sequence[MetricPoint] = (),
    ) -> None:
        """Take `costs` from `tenant`'s buckets and note the series of `points` as active,
        or raise RateLimitedError (a rate, or a series limit) / TooLargeError (then nothing
        is taken from any bucket and no series is noted)."""
        wanted = [(signal, cost) for signal, cost in costs if cost > 0]
        if not wanted:
            return
        with self._lock:
            now = self._monotonic()
            if self.overrides is not None:
                self._check(now)
            limits = self.of(tenant)
            keys = series_keys(points) if points and limits.limits_series() else []
            checks: list[tuple[Signal, int, TokenBucket | None, float]] = []
            worst: tuple[float, Signal] | None = None
            for signal, cost in wanted:
                rate, burst = limits.rate(signal)
                if rate <= 0:
                    checks.append((signal, cost, None, 0.0))
                    continue
                bucket = self._bucket(tenant, signal, rate, burst, now)
                wait = bucket.wait(cost, now)
                checks.append((signal, cost, bucket, wait))
                if wait > 0 and (worst is None or wait > worst[0]):
                    worst = (wait, signal)
            label = self.label(tenant)
            if worst is None and keys:
                refusal = self.series.check(
                    tenant, keys, limits.max_series, limits.max_series_per_metric, now
                )
                if refusal is not None:
                    self.refused_items[label, "metrics", "series_limit"] += len(points)
                    self.refused_requests[label, "series_limit"] += 1
                    raise RateLimitedError(refusal.message, refusal.retry_after_s)
                self.series.record(tenant, keys, now)
            if worst is None:
                for signal, cost, maybe_bucket, _ in checks:
                    if maybe_bucket is not None:
                        maybe_bucket.take(cost, now)
                    self.items[label, signal] += cost
                return
            wait, signal = worst
            reason = "too_large" if math.isinf(wait) else "rate_limited"
            for item_signal, cost, _, _ in checks:
                if item_signal != "bytes":
                    self.refused_items[label, item_signal, reason] += cost
            self.refused_requests[label, reason if reason == "too_large" else f"{signal}_rate"] += 1
        rate, burst = limits.rate(signal)
        cost = dict(wanted)[signal]
        unit = UNITS[signal]
        if math.isinf(wait):
            raise TooLargeError(
                f"tenant {tenant!r}: a request of {_amount(cost)} {unit.split('/')[0]} is over"
                f" the burst of {_amount(burst)} ({_amount(rate)} {unit}): send smaller"
                " requests or raise the burst"
            )
        raise RateLimitedError(
            f"tenant {tenant!r} is over its limit of {_amount(rate)} {unit} (burst"
            f" {_amount(burst)}): retry in {wait:.2f} s",
            wait,
        )

    def _bucket(
        self, tenant: str, signal: Signal, rate: float, burst: float, now: float
    ) -> TokenBucket:
        buckets = self._buckets.get(tenant)
        if buckets is None:
            if len(self._buckets) >= self.config.max_tenants and now >= self._next_sweep:
                self._forget_idle(now)
                self._next_sweep = now + 1.0  # a flood of new names: one sweep a second
            if len(self._buckets) >= self.config.max_tenants:
                tenant = _OVERFLOW
            buckets = self._buckets.setdefault(tenant, {})
        bucket = buckets.get(signal)
        if bucket is None:
            bucket = buckets[signal] = TokenBucket(rate, burst, now)
        elif bucket.rate != rate or bucket.burst != burst:  # reloaded, or a shared bucket
            bucket.retune(rate, burst, now)
        return bucket

    def _forget_idle(self, now: float) -> None:
        idle = [
            name
            for name, buckets in self._buckets.items()
            if name != _OVERFLOW and all(b.full(now) for b in buckets.values())
        ]
        for name in idle:
            del self._buckets[name]
