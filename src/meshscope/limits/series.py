"""Active series per tenant, in all and per metric name, for the series limits.

A series is active while it had a sample in the last `idle_s` seconds (Mimir's active
series, 20 minutes by default). A write whose new series would take its tenant past
`max_series` or one metric past `max_series_per_metric` is refused whole (429, like Mimir's
per-user and per-metric series limits; nothing of it is stored, nothing recorded here):
series already active keep being written, new ones wait until others go idle. Idle series
are dropped lazily: when a write would be refused, and on a sweep every `idle_s / 4`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshscope.model.metrics import MetricPoint

SeriesKey = tuple[str, int]
"""(metric name, hash of the name and labels)."""


def series_keys(points: Sequence[MetricPoint]) -> list[SeriesKey]:
    return list({(p.name, hash((p.name, p.labels))) for p in points})


@dataclass(slots=True)
class _Tenant:
    by_metric: dict[str, dict[int, float]] = field(default_factory=dict)  # -> last seen
    total: int = 0
    next_sweep: float = 0.0


@dataclass(frozen=True, slots=True)
class SeriesRefusal:
    message: str
    retry_after_s: float  # when the oldest series in the way goes idle


class ActiveSeries:
    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self._tenants: dict[str, _Tenant] = {}

    def active(self) -> dict[str, int]:
        """Active series per tenant (as of the last write or sweep)."""
        return {name: tenant.total for name, tenant in self._tenants.items() if tenant.total}

    def check(
        self,
        tenant: str,
        keys: Iterable[SeriesKey],
        max_series: float,
        max_per_metric: float,
        now: float,
    ) -> SeriesRefusal | None:
        """None when the new series among `keys` fit `tenant`'s limits (0: none), else why
        not. Records nothing: call `record` once the whole write is admitted."""
        state = self._tenants.get(tenant)
        if state is None:
            state = self._tenants[tenant] = _Tenant(next_sweep=now + self.idle_s / 4)
        elif now >= state.next_sweep:
            self._sweep(state, None, now)
        new: dict[str, int] = {}
        for name, key in keys:
            series = state.by_metric.get(name)
            if series is None or key not in series:
                new[name] = new.get(name, 0) + 1
        if not new:
            return None
        if max_per_metric > 0:
            for name, count in new.items():
                if len(state.by_metric.get(name, ())) + count > max_per_metric:
                    self._sweep(state, name, now)
                    held = state.by_metric.get(name, {})
                    if len(held) + count > max_per_metric:
                        return SeriesRefusal(
                            f"tenant {tenant!r}: metric {name!r} would have"
                            f" {len(held) + count} active series, over the limit of"
                            f" {max_per_metric:g} (limits max_series_per_metric)",
                            self._until_idle(held.values(), now),
                        )
        added = sum(new.values())
        if max_series > 0 and state.total + added > max_series:
            self._sweep(state, None, now)
            if state.total + added > max_series:
                oldest = (seen for series in state.by_metric.values() for seen in series.values())
                return SeriesRefusal(
                    f"tenant {tenant!r} would have {state.total + added} active series, over"
                    f" the limit of {max_series:g} (limits max_series)",
                    self._until_idle(oldest, now),
                )
        return None

    def record(self, tenant: str, keys: Iterable[SeriesKey], now: float) -> None:
        state = self._tenants.setdefault(tenant, _Tenant(next_sweep=now + self.idle_s / 4))
        for name, key in keys:
            series = state.by_metric.setdefault(name, {})
            if key not in series:
                state.total += 1
            series[key] = now

    def _sweep(self, state: _Tenant, name: str | None, now: float) -> None:
        """Drop idle series (of metric `name`, or all)."""
        cutoff = now - self.idle_s
        names = [name] if name is not None else list(state.by_metric)
        for metric in names:
            series = state.by_metric.get(metric)
            if series is None:
                continue
            idle = [key for key, seen in series.items() if seen < cutoff]
            for key in idle:
                del series[key]
            state.total -= len(idle)
            if not series:
                del state.by_metric[metric]
        if name is None:
            state.next_sweep = now + self.idle_s / 4

    def _until_idle(self, seen: Iterable[float], now: float) -> float:
        return max(1.0, min(seen, default=now) + self.idle_s - now)
