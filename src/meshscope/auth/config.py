"""The `auth` section: off by default; on, every listener asks for a token (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass

from meshscope.errors import ConfigError


@dataclass(frozen=True, slots=True)
class AuthConfig:
    enabled: bool = False
    tokens_file: str = ""
    reload_interval_seconds: float = 5.0
    metrics_open: bool = False


def validate_auth(config: AuthConfig) -> None:
    if config.enabled and not config.tokens_file:
        raise ConfigError("setting auth.tokens_file is required when auth.enabled is true")
    if config.reload_interval_seconds < 0:
        raise ConfigError("setting auth.reload_interval_seconds must be >= 0 (0: SIGHUP only)")
