"""The `tenancy` section.

tenancy:
  enabled: true       # every write and read has a tenant (token / X-Scope-OrgID)
  max_tenants: 16     # stores opened at most (each a DuckDB file or ClickHouse database)
"""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TenancyConfig:
    enabled: bool = False
    max_tenants: int = 16


def validate_tenancy(config: TenancyConfig) -> None:
    if config.max_tenants < 1:
        raise ConfigError(f"setting tenancy.max_tenants must be >= 1, got {config.max_tenants}")
