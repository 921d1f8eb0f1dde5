"""Sampling settings: defaults drop nothing, the example loads, every mistake names its setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshscope.config import ConfigError
from meshscope.pipeline.sampling.config import SamplingConfig, TailSamplingConfig, from_mapping
from meshscope.pipeline.sampling.policy_config import (
    AllOf,
    LatencyThreshold,
    Probabilistic,
    RateLimiting,
    StatusCodeMatch,
    StringAttribute,
)
from meshscope.pipeline.sampling.tail import TailSampler

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_drop_nothing() -> None:
    config = from_mapping({})
    assert config == from_mapping(None) == SamplingConfig()
    assert not config.head.enabled and config.head.ratio == 1.0
    assert not config.tail.enabled and config.tail.policies == ()
    assert config.tail.decision_wait_seconds == 10.0
    strategy = config.remote.strategy_for("anything")
    assert (strategy.type, strategy.param) == ("probabilistic", 1.0)


def test_example_file_loads_and_builds_a_sampler() -> None:
    raw = yaml.safe_load((ROOT / "examples" / "sampling.yaml").read_text())
    config = from_mapping(raw["sampling"])
    names = [p.name for p in config.tail.policies]
    assert names[:3] == ["errors", "slow", "no-health-checks"]
    assert config.tail.policies[0].settings == StatusCodeMatch(("ERROR",))
    assert config.tail.policies[1].settings == LatencyThreshold(500)
    inverted = config.tail.policies[2].settings
    assert isinstance(inverted, StringAttribute) and inverted.invert_match
    assert isinstance(config.tail.policies[3].settings, AllOf)
    assert config.tail.policies[4].settings == Probabilistic(10)
    assert config.tail.policies[5].settings == RateLimiting(traces_per_second=100)
    assert config.remote.strategy_for("checkout").type == "ratelimiting"
    assert config.remote.strategy_for("frontend").operation_strategies[0].param == 0.0
    sampler = TailSampler.from_config(config.tail)
    assert len(sampler.policies) == 6 and sampler.decision_wait_ns == 10 * 10**9


def test_env_style_double_underscore_keys_nest() -> None:
    config = from_mapping(
        {
            "tail__enabled": True,
            "tail__decision_wait_seconds": 2,
            "tail": {"policies": [{"name": "e", "type": "status_code", "status_code": {}}]},
            "head__ratio": 0.5,
        }
    )
    assert config.tail.enabled and config.tail.decision_wait_seconds == 2.0
    assert config.head.ratio == 0.5
    assert config.tail == TailSamplingConfig(
        enabled=True,
        decision_wait_seconds=2.0,
        policies=config.tail.policies,
    )


def _policy(kind: str, body: Any, name: str = "p") -> dict[str, Any]:
    return {"name": name, "type": kind, kind: body}


def _tail(*policies: dict[str, Any]) -> dict[str, Any]:
    return {"tail": {"enabled": True, "policies": list(policies)}}


OK = _policy("always_sample", {}, "ok")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nope": 1}, "unknown setting sampling.nope"),
        ({"head": {"ratio": 1.5}}, "sampling.head.ratio must be <= 1, got 1.5"),
        ({"head": {"enabled": "yes"}}, "sampling.head.enabled must be true or false"),
        ({"tail": {"enabled": True}}, "sampling.tail.policies must list at least one policy"),
        ({"tail": {"decision_wait_seconds": 0}}, "sampling.tail.decision_wait_seconds must be > 0"),
        ({"tail": {"num_traces": 0}}, "sampling.tail.num_traces must be >= 1"),
        ({"tail": {"decision_cache": {"sampled_cache_size": -1}}}, "sampled_cache_size must be >="),
        (
            _tail(OK, OK, _policy("latency", {"threshold_ms": 0})),
            "policy name 'ok' is used twice",
        ),
        (
            _tail(OK, _policy("status_code", {}), _policy("latency", {"threshold_ms": 0}, "l")),
            "sampling.tail.policies[2].latency.threshold_ms must be > 0",
        ),
        (
            _tail(_policy("latency", {})),
            "sampling.tail.policies[0].latency.threshold_ms is required",
        ),
        (
            _tail(_policy("latency", {"threshold_ms": 10, "upper_threshold_ms": 5})),
            "upper_threshold_ms must be > threshold_ms",
        ),
        (_tail(_policy("magic", {})), "sampling.tail.policies[0].type must be one of"),
        (_tail({"type": "always_sample"}), "sampling.tail.policies[0].name is required"),
        (
            _tail(_policy("status_code", {"status_codes": ["FATAL"]})),
            "policies[0].status_code.status_codes values must be one of ERROR, OK, UNSET",
        ),
        (
            _tail(_policy("probabilistic", {"sampling_percentage": 101})),
            "policies[0].probabilistic.sampling_percentage must be <= 100",
        ),
        (
            _tail(_policy("rate_limiting", {})),
            "policies[0].rate_limiting needs exactly one of spans_per_second, traces_per_second",
        ),
        (
            _tail(
                _policy(
                    "string_attribute",
                    {"key": "k", "values": ["("], "enabled_regex_matching": True},
                )
            ),
            "policies[0].string_attribute.values[0] is not a valid regular expression",
        ),
        (
            _tail(_policy("string_attribute", {"key": "k", "values": []})),
            "policies[0].string_attribute.values must list at least one value",
        ),
        (
            _tail(_policy("numeric_attribute", {"key": "k"})),
            "policies[0].numeric_attribute needs min_value, max_value or both",
        ),
        (
            _tail(_policy("numeric_attribute", {"key": "k", "min_value": 5, "max_value": 1})),
            "numeric_attribute.max_value must be >= min_value",
        ),
        (
            _tail(_policy("latency", {"threshold_ms": 1, "color": 2})),
            "unknown setting sampling.tail.policies[0].latency.color",
        ),
        (
            _tail(_policy("and", {"and_sub_policy": [_policy("and", {})]})),
            "policies[0].and.and_sub_policy[0].type must be one of",
        ),
        (
            _tail(_policy("and", {"and_sub_policy": []})),
            "sampling.tail.policies[0].and.and_sub_policy must list at least one policy",
        ),
        (
            _tail(
                _policy(
                    "composite",
                    {
                        "max_total_spans_per_second": 10,
                        "composite_sub_policy": [OK],
                        "rate_allocation": [{"policy": "missing", "percent": 10}],
                    },
                )
            ),
            "rate_allocation[0].policy names no composite_sub_policy: 'missing'",
        ),
        (
            {"remote": {"default_strategy": {"type": "const", "param": 1}}},
            "sampling.remote.default_strategy.type must be probabilistic or ratelimiting",
        ),
        (
            {
                "remote": {
                    "service_strategies": [{"service": "a", "type": "ratelimiting", "param": 1.5}]
                }
            },
            "sampling.remote.service_strategies[0].param must be a whole number",
        ),
        (
            {
                "remote": {
                    "service_strategies": [
                        {"service": "a", "type": "probabilistic", "param": 0.1},
                        {"service": "a", "type": "probabilistic", "param": 0.2},
                    ]
                }
            },
            "service 'a' is listed twice",
        ),
        (
            {
                "remote": {
                    "default_strategy": {
                        "type": "probabilistic",
                        "param": 1,
                        "operation_strategies": [
                            {"operation": "x", "type": "ratelimiting", "param": 1}
                        ],
                    }
                }
            },
            "operation_strategies[0].type must be probabilistic",
        ),
        ({"remote": {"service_strategies": {"a": 1}}}, "service_strategies must be a list"),
        ("tail", "sampling must be a mapping"),
    ],
)
def test_invalid_settings_are_named(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(raw)
    assert message in str(caught.value)


def test_documented_settings() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert "## Sampling" in doc
    for setting in (
        "sampling.head.enabled",
        "sampling.head.ratio",
        "sampling.remote.default_strategy",
        "sampling.remote.service_strategies",
        "sampling.remote.default_lower_bound_traces_per_second",
        "sampling.tail.enabled",
        "sampling.tail.decision_wait_seconds",
        "sampling.tail.num_traces",
        "sampling.tail.decision_cache.sampled_cache_size",
        "sampling.tail.decision_cache.non_sampled_cache_size",
        "sampling.tail.policies",
    ):
        assert f"`{setting}`" in doc, setting
    for kind in ("always_sample", "status_code", "latency", "probabilistic", "rate_limiting"):
        assert f"`{kind}`" in doc, kind
    for kind in ("string_attribute", "numeric_attribute", "and", "composite"):
        assert f"`{kind}`" in doc, kind


def test_documented_example_is_valid() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    section = doc[doc.index("## Sampling") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```\n", 10)]
    config = from_mapping(yaml.safe_load(block)["sampling"])
    assert config.tail.enabled and len(config.tail.policies) == 4
