"""The `limits` section: ingest rates every tenant gets, and per-tenant overrides.

    limits:
      defaults:                       # every tenant, unless overridden
        spans_per_second: 10000
        spans_burst: 20000
      tenants:                        # overrides, setting by setting (Loki/Mimir "overrides")
        team-a: {spans_per_second: 50000, request_bytes_per_second: 10000000}
      max_tenant_series: 100          # tenant label values on /metrics; the rest are `other`

A rate of 0 (or absent) is unlimited; a burst of 0 (or absent) is one second of the rate.
Without any rate set, limits are off and receivers do no per-request work for them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from meshscope.errors import ConfigError

Signal = Literal["spans", "logs", "metrics", "bytes"]
SIGNALS: tuple[Signal, ...] = ("spans", "logs", "metrics", "bytes")
UNITS: dict[Signal, str] = {
    "spans": "spans/s",
    "logs": "log records/s",
    "metrics": "metric samples/s",
    "bytes": "request bytes/s",
}
TENANT_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,150}$")
"""What a tenant may be called: the tokens file's rule (and Loki's/Mimir's safe subset)."""


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """Rates (per second) and bursts of one tenant; 0 = unlimited (rate) or = rate (burst)."""

    spans_per_second: float = 0.0
    spans_burst: float = 0.0
    log_records_per_second: float = 0.0
    log_records_burst: float = 0.0
    metric_samples_per_second: float = 0.0
    metric_samples_burst: float = 0.0
    request_bytes_per_second: float = 0.0
    request_bytes_burst: float = 0.0
    max_series: float = 0.0  # active metric series of the tenant (0: unlimited)
    max_series_per_metric: float = 0.0  # active series of one metric name (0: unlimited)
    # A read's limits (0: the `query:` section's), like Mimir's per-tenant query limits.
    query_timeout_seconds: float = 0.0
    max_series_per_query: float = 0.0
    max_samples_per_query: float = 0.0
    # How long the tenant's data is kept (0: storage.retention_hours), like Loki's and
    # Tempo's per-tenant retention; its own store with tenancy on, else the one store's.
    retention_hours: float = 0.0

    def rate(self, signal: Signal) -> tuple[float, float]:
        """(rate, burst) for `signal`; rate 0 = unlimited; the burst defaults to the rate."""
        rate, burst = {
            "spans": (self.spans_per_second, self.spans_burst),
            "logs": (self.log_records_per_second, self.log_records_burst),
            "metrics": (self.metric_samples_per_second, self.metric_samples_burst),
            "bytes": (self.request_bytes_per_second, self.request_bytes_burst),
        }[signal]
        return rate, (burst or rate)

    def limited(self) -> bool:
        return (
            self.limits_series()
            or self.limits_queries()
            or self.retention_hours > 0
            or any(self.rate(signal)[0] > 0 for signal in SIGNALS)
        )

    def limits_queries(self) -> bool:
        return any(
            (self.query_timeout_seconds, self.max_series_per_query, self.max_samples_per_query)
        )

    def limits_series(self) -> bool:
        return self.max_series > 0 or self.max_series_per_metric > 0


_LIMIT_FIELDS = tuple(f.name for f in dataclasses.fields(TenantLimits))


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    defaults: TenantLimits = field(default_factory=TenantLimits)
    tenants: Mapping[str, TenantLimits] = field(default_factory=dict)
    overrides_file: str = ""
    reload_interval_seconds: float = 10.0
    max_tenant_series: int = 100
    max_tenants: int = 10_000
    series_idle_seconds: float = 1200.0

    @property
    def enabled(self) -> bool:
        """Whether any rate is set (or may be, by the overrides file): otherwise nothing is
        wired and receivers are unchanged."""
        return (
            bool(self.overrides_file)
            or self.defaults.limited()
            or any(t.limited() for t in self.tenants.values())
        )

    def of(self, tenant: str) -> TenantLimits:
        return self.tenants.get(tenant, self.defaults)


_FIELDS = (
    "defaults",
    "tenants",
    "overrides_file",
    "reload_interval_seconds",
    "max_tenant_series",
    "max_tenants",
    "series_idle_seconds",
)


def parse_limits(values: Any, path: str = "limits") -> LimitsConfig:
    """Validate the section; each tenant's overrides are merged over `defaults`."""
    if values is None:
        return LimitsConfig()
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {path!r} must be a mapping")
    unknown = [k for k in values if k not in _FIELDS]
    if unknown:
        raise ConfigError(f"unknown setting {path}.{unknown[0]} (known: {', '.join(_FIELDS)})")
    defaults = _tenant_limits(values.get("defaults"), TenantLimits(), f"{path}.defaults")
    tenants = parse_tenants(values.get("tenants"), defaults, f"{path}.tenants")
    counts = {}
    for name, default in (("max_tenant_series", 100), ("max_tenants", 10_000)):
        value = values.get(name, default)
        if type(value) is not int or value < 1:
            raise ConfigError(f"setting {path}.{name} must be an integer >= 1, got {value!r}")
        counts[name] = value
    overrides_file = values.get("overrides_file", "")
    if not isinstance(overrides_file, str):
        raise ConfigError(f"setting {path}.overrides_file must be a path, got {overrides_file!r}")
    interval = values.get("reload_interval_seconds", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        raise ConfigError(
            f"setting {path}.reload_interval_seconds must be a number >= 0, got {interval!r}"
        )
    idle = values.get("series_idle_seconds", 1200.0)
    if isinstance(idle, bool) or not isinstance(idle, int | float) or idle <= 0:
        raise ConfigError(f"setting {path}.series_idle_seconds must be a number > 0, got {idle!r}")
    return LimitsConfig(
        defaults,
        tenants,
        overrides_file=overrides_file,
        reload_interval_seconds=float(interval),
        series_idle_seconds=float(idle),
        **counts,
    )


def parse_tenants(raw: Any, defaults: TenantLimits, path: str) -> dict[str, TenantLimits]:
    """A mapping of tenant name to its settings, each merged over `defaults`."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"setting {path} must be a mapping of tenant names")
    tenants: dict[str, TenantLimits] = {}
    for name, overrides in raw.items():
        if not isinstance(name, str) or not TENANT_NAME.match(name):
            raise ConfigError(
                f"setting {path}: {name!r} is not a tenant name (letters, digits, _ . -)"
            )
        tenants[name] = _tenant_limits(overrides, defaults, f"{path}.{name}")
    return tenants


def _tenant_limits(values: Any, base: TenantLimits, path: str) -> TenantLimits:
    if values is None:
        return base
    if not isinstance(values, Mapping):
        raise ConfigError(f"setting {path} must be a mapping")
    changes: dict[str, float] = {}
    for name, value in values.items():
        if name not in _LIMIT_FIELDS:
            raise ConfigError(f"unknown setting {path}.{name} (known: {', '.join(_LIMIT_FIELDS)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"setting {path}.{name} must be a number >= 0, got {value!r}")
        changes[name] = float(value)
    limits = dataclasses.replace(base, **changes)
    for signal in SIGNALS:
        rate, burst = limits.rate(signal)
        if rate and burst < 1:
            raise ConfigError(f"setting {path}: the {signal} burst must be >= 1 (one item)")
    return limits
