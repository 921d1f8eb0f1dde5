"""The overrides file: per-tenant limits changed without a restart (what Loki and Mimir call
the runtime configuration).

    overrides:                      # tenant -> settings, merged over `limits.defaults`
      team-a: {spans_per_second: 50000}
      team-b: {request_bytes_per_second: 0}

Tenants named here take precedence over `limits.tenants`. The file is read at start (a
missing or invalid file stops the start), then again when its modification time, size or
inode changes (checked at most every `limits.reload_interval_seconds`, on the next write
request; the tokens file's pattern). A file that has become invalid is logged and the
limits read before stay in force.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import yaml

from meshscope import watched_file
from meshscope.errors import ConfigError
from meshscope.limits.config import TenantLimits, parse_tenants

logger = logging.getLogger(__name__)


def read_overrides(path: Path, defaults: TenantLimits) -> dict[str, TenantLimits]:
    where = f"limits.overrides_file {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {where}: {error.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"{where} is not valid YAML: {error}") from None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or set(raw) - {"overrides"}:
        raise ConfigError(f"{where}: must be a mapping with one key, `overrides`")
    return parse_tenants(raw.get("overrides"), defaults, f"{where}: overrides")


class OverridesFile:
    """The file's tenants, kept current: `check(now)` re-reads it when it changed."""

    def __init__(
        self, path: str | Path, defaults: TenantLimits, interval_s: float, now: float
    ) -> None:
        self.path = Path(path)
        self.defaults = defaults
        self.interval_s = interval_s
        self._stamp = watched_file.stamp(self.path)
        self.tenants = read_overrides(self.path, defaults)  # ConfigError: the start stops
        self._next_check = now + interval_s
        self.reloads = 0
        self.reload_failures = 0

    def check(self, now: float, *, force: bool = False) -> bool:
        """True when the file was read again (and changed) just now: when due (every
        `interval_s`; never with 0), or at once with `force` (SIGHUP)."""
        if not force and (self.interval_s <= 0 or now < self._next_check):
            return False
        self._next_check = now + self.interval_s
        stamp = watched_file.stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a broken file is not re-read on every check
        try:
            tenants = read_overrides(self.path, self.defaults)
        except ConfigError as error:
            self.reload_failures += 1
            logger.error("limits overrides not reloaded, the previous ones stay: %s", error)
            return False
        self.tenants = tenants
        self.reloads += 1
        logger.info("limits overrides reloaded", extra={"tenants": len(tenants)})
        return True
