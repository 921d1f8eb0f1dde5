from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from meshscope.config import ConfigError, load_config
from meshscope.limits.config import LimitsConfig, TenantLimits, parse_limits

ROOT = Path(__file__).resolve().parent.parent.parent


def test_absent_or_zero_is_off() -> None:
    assert not LimitsConfig().enabled
    assert not load_config(None, env={}).limits.enabled
    assert not parse_limits({"defaults": {"spans_per_second": 0}}).enabled


def test_overrides_are_merged_setting_by_setting_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "limits:\n"
        "  defaults: {spans_per_second: 100, spans_burst: 300, request_bytes_per_second: 1000000}\n"
        "  tenants:\n"
        "    team-a: {spans_per_second: 1000}\n"
        "    team.b: {request_bytes_per_second: 0}\n"
        "  max_tenant_series: 5\n"
    )
    limits = load_config(path, env={}).limits
    assert limits.enabled and limits.max_tenant_series == 5
    assert limits.of("team-a").rate("spans") == (1000, 300)
    assert limits.of("team-a").rate("bytes") == (1e6, 1e6)  # burst: one second's worth
    assert limits.of("team.b").rate("bytes") == (0, 0)  # unlimited for this tenant
    assert limits.of("anyone") == limits.defaults
    assert limits.of("anyone").rate("logs") == (0, 0)


def test_environment_sets_defaults() -> None:
    env = {"MESHSCOPE_LIMITS__DEFAULTS__LOG_RECORDS_PER_SECOND": "50"}
    assert load_config(None, env=env).limits.defaults.rate("logs") == (50, 50)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"defaults": {"spans": 1}}, "unknown setting limits.defaults.spans"),
        ({"defaults": {"spans_per_second": -1}}, "must be a number >= 0"),
        ({"defaults": {"spans_per_second": True}}, "must be a number >= 0"),
        ({"defaults": {"spans_per_second": 5, "spans_burst": 0.5}}, "burst must be >= 1"),
        ({"tenants": {"a b": {}}}, "is not a tenant name"),
        ({"tenants": ["a"]}, "must be a mapping"),
        ({"max_tenant_series": 0}, "max_tenant_series must be an integer >= 1"),
        ({"rate": 1}, "unknown setting limits.rate"),
    ],
)
def test_invalid_settings_name_themselves(raw: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_limits(raw)


def test_every_limits_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "examples" / "meshscope.yaml").read_text()
    for setting in dataclasses.fields(TenantLimits):
        assert f"`limits.defaults.{setting.name}`" in doc, setting.name
    for setting in dataclasses.fields(LimitsConfig):
        assert f"`limits.{setting.name}`" in doc, setting.name
        assert f"  {setting.name}:" in example, setting.name
