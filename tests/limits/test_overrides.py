"""The overrides file is read at start and again when it changes (fake clock), an invalid
new file keeps the limits in force, and buckets take new limits without losing state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshscope.config import ConfigError
from meshscope.limits.config import LimitsConfig, TenantLimits
from meshscope.limits.limiter import Limiter, RateLimitedError
from tests.limits.test_limiter import FakeClock

DEFAULTS = TenantLimits(spans_per_second=10, spans_burst=10)


def _write(path: Path, text: str, bump: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(bump * 10**9, bump * 10**9))  # a new modification time each write


def _limiter(path: Path, interval: float = 5.0) -> tuple[Limiter, FakeClock]:
    clock = FakeClock()
    config = LimitsConfig(
        defaults=DEFAULTS,
        tenants={"a": TenantLimits(spans_per_second=1, spans_burst=1)},
        overrides_file=str(path),
        reload_interval_seconds=interval,
    )
    return Limiter(config, clock), clock


def test_the_file_overrides_the_config_and_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    _write(path, "overrides:\n  a: {spans_burst: 100}\n", 1)
    limiter, clock = _limiter(path)
    assert limiter.of("a").rate("spans") == (10, 100)  # merged over defaults, not over tenants
    limiter.admit("a", [("spans", 100)])
    _write(path, "overrides:\n  a: {spans_per_second: 1000, spans_burst: 1000}\n", 2)
    with pytest.raises(RateLimitedError):
        limiter.admit("a", [("spans", 50)])  # not checked yet: at most every 5 s
    clock.now += 5
    limiter.admit("a", [("spans", 50)])  # 5 s at the old 10/s refilled 50
    assert limiter.of("a").rate("spans") == (1000, 1000)
    assert limiter.overrides is not None and limiter.overrides.reloads == 1


def test_an_invalid_new_file_keeps_the_limits_in_force(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    _write(path, "overrides:\n  b: {spans_per_second: 5}\n", 1)
    limiter, clock = _limiter(path)
    _write(path, "overrides:\n  b: {spans_per_second: -1}\n", 2)
    clock.now += 10
    limiter.admit("x", [("spans", 1)])  # triggers the check
    assert limiter.of("b").rate("spans") == (5, 10)  # the burst from the defaults
    assert limiter.overrides is not None and limiter.overrides.reload_failures == 1


def test_sighup_reloads_even_with_interval_zero(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    _write(path, "", 1)  # an empty file: no overrides
    limiter, clock = _limiter(path, interval=0)
    _write(path, "overrides:\n  c: {log_records_per_second: 3}\n", 2)
    clock.now += 1000
    limiter.admit("c", [("logs", 100)])  # interval 0: never checked on requests
    assert limiter.reload()
    assert limiter.of("c").rate("logs") == (3, 3)
    assert not limiter.reload()  # unchanged since


def test_a_missing_or_invalid_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read limits\.overrides_file"):
        _limiter(tmp_path / "absent.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("tenants: {}\n")
    with pytest.raises(ConfigError, match="one key, `overrides`"):
        _limiter(path)


def test_a_bucket_keeps_its_tokens_under_new_limits(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    _write(path, "overrides:\n  d: {spans_per_second: 1, spans_burst: 100}\n", 1)
    limiter, clock = _limiter(path)
    limiter.admit("d", [("spans", 100)])  # empty now
    _write(path, "overrides:\n  d: {spans_per_second: 1, spans_burst: 200}\n", 2)
    clock.now += 5
    with pytest.raises(RateLimitedError):  # a larger burst is not a refill: 5 tokens
        limiter.admit("d", [("spans", 10)])
    limiter.admit("d", [("spans", 5)])
