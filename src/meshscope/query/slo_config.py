"""The `slos` section of the config file: a list of SLOs, validated with clear errors.

Each entry: `service` and `objective` (required), `window` (default 30d), `sli`
(availability, the default, or latency with `threshold_ms`, a bucket bound of
duration_milliseconds), `operation`, `name` and `tenant` (optional; whose span metrics, with
tenancy on). See docs/configuration.md#slos.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.errors import ConfigError
from meshscope.limits.config import TENANT_NAME
from meshscope.query.slo import AVAILABILITY, LATENCY, LATENCY_BOUNDS_MS, SLI_KINDS, Slo

DEFAULT_WINDOW = "30d"
_UNITS_NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9,
             "w": 7 * 86400 * 10**9}  # fmt: skip
_WINDOW = re.compile(r"(\d+)([smhdw])")
_FIELDS = (
    "name", "service", "operation", "objective", "window", "sli", "threshold_ms", "tenant",
)  # fmt: skip


def window_ns(text: Any, setting: str) -> int:
    """A window like `30d`, `7d`, `12h` in nanoseconds (> 0)."""
    match = _WINDOW.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match[1]) == 0:
        raise ConfigError(f"setting {setting} must be a duration like 30d, 7d or 12h, got {text!r}")
    return int(match[1]) * _UNITS_NS[match[2]]


def parse_slos(values: Any, path: str = "slos") -> tuple[Slo, ...]:
    """The SLOs of the `slos` section (None: no SLOs); names must be unique."""
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ConfigError(f"config section {path!r} must be a list of SLOs")
    slos = tuple(_parse_one(entry, f"{path}[{i}]") for i, entry in enumerate(values))
    seen: set[tuple[str, str]] = set()
    for slo in slos:
        if (slo.tenant, slo.name) in seen:
            raise ConfigError(f"SLO name {slo.name!r} appears twice in {path}")
        seen.add((slo.tenant, slo.name))
    return slos


def _parse_one(entry: Any, path: str) -> Slo:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{path} must be a mapping with service and objective")
    unknown = [k for k in entry if k not in _FIELDS]
    if unknown:
        raise ConfigError(f"unknown setting {path}.{unknown[0]} (known: {', '.join(_FIELDS)})")
    service = _text(entry, "service", path, required=True)
    operation = _text(entry, "operation", path)
    sli = _text(entry, "sli", path) or AVAILABILITY
    if sli not in SLI_KINDS:
        raise ConfigError(f"setting {path}.sli must be one of {', '.join(SLI_KINDS)}, got {sli!r}")
    objective = entry.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, int | float):
        raise ConfigError(f"setting {path}.objective is required: a number like 0.999")
    if not 0 < objective < 1:
        raise ConfigError(f"setting {path}.objective must be between 0 and 1 (exclusive)")
    threshold = _threshold(entry.get("threshold_ms"), sli, path)
    tenant = _text(entry, "tenant", path) or DEFAULT_TENANT
    if not TENANT_NAME.match(tenant):
        raise ConfigError(
            f"setting {path}.tenant must be a tenant name of letters, digits, _ . - (1-150)"
        )
    return Slo(
        name=_text(entry, "name", path) or f"{service}-{sli}",
        service=service,
        objective=float(objective),
        window_ns=window_ns(entry.get("window", DEFAULT_WINDOW), f"{path}.window"),
        sli=sli,
        operation=operation,
        threshold_ms=threshold,
        tenant=tenant,
    )


def _text(entry: Mapping[str, Any], name: str, path: str, required: bool = False) -> str:
    value = entry.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"setting {path}.{name} must be a {'non-empty ' * required}string")
    return value.strip()


def _threshold(value: Any, sli: str, path: str) -> float | None:
    if sli != LATENCY:
        if value is not None:
            raise ConfigError(f"setting {path}.threshold_ms applies only to sli: latency")
        return None
    bounds = ", ".join(f"{b:g}" for b in LATENCY_BOUNDS_MS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"setting {path}.threshold_ms is required for sli: latency ({bounds})")
    if float(value) not in LATENCY_BOUNDS_MS:
        raise ConfigError(
            f"setting {path}.threshold_ms must be a bucket bound of duration_milliseconds "
            f"({bounds}), got {value}"
        )
    return float(value)
