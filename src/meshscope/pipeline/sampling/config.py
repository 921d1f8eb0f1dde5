"""Sampling settings (the `sampling` section of the config file), validated with clear errors.

Defaults drop nothing, like Jaeger all-in-one: head sampling off, tail sampling off, and the
remote-sampling endpoint tells SDKs to sample every trace. `remote` uses Jaeger's own
strategies-file format (`default_strategy`, `service_strategies`, `type`, `param`,
`operation_strategies`); `tail` uses the OTel collector's tail_sampling format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshscope.errors import ConfigError
from meshscope.pipeline.sampling.policy_config import PolicyConfig, parse_policies
from meshscope.pipeline.sampling.validate import Section, nest_double_underscores

PROBABILISTIC = "probabilistic"
RATE_LIMITING = "ratelimiting"


@dataclass(frozen=True, slots=True)
class HeadSamplingConfig:
    """Pipeline-side trace-id-ratio sampling (the same rule as OTel's TraceIdRatioBased)."""

    enabled: bool = False
    ratio: float = 1.0


@dataclass(frozen=True, slots=True)
class OperationStrategy:
    operation: str
    param: float  # probabilistic sampling rate (Jaeger supports only that per operation)


@dataclass(frozen=True, slots=True)
class Strategy:
    type: str = PROBABILISTIC
    param: float = 1.0  # probability for probabilistic, traces/s for ratelimiting
    operation_strategies: tuple[OperationStrategy, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceStrategy:
    service: str
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class RemoteSamplingConfig:
    default_strategy: Strategy = field(default_factory=Strategy)
    service_strategies: tuple[ServiceStrategy, ...] = ()
    default_lower_bound_traces_per_second: float = 0.0

    def strategy_for(self, service: str) -> Strategy:
        for entry in self.service_strategies:
            if entry.service == service:
                return entry.strategy
        return self.default_strategy


@dataclass(frozen=True, slots=True)
class TailSamplingConfig:
    enabled: bool = False
    decision_wait_seconds: float = 10.0
    num_traces: int = 50_000
    sampled_cache_size: int = 100_000
    non_sampled_cache_size: int = 100_000
    policies: tuple[PolicyConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    head: HeadSamplingConfig = field(default_factory=HeadSamplingConfig)
    remote: RemoteSamplingConfig = field(default_factory=RemoteSamplingConfig)
    tail: TailSamplingConfig = field(default_factory=TailSamplingConfig)


def from_mapping(values: Mapping[str, Any] | None, path: str = "sampling") -> SamplingConfig:
    """Build and validate the section; raises ConfigError naming the setting at fault.

    Keys with double underscores (`tail__enabled`, as environment overrides produce) are
    read as nested settings.
    """
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"{path} must be a mapping, got {values!r}")
    root = Section(nest_double_underscores(values or {}), path, ("head", "remote", "tail"))
    return SamplingConfig(_head(root.child("head")), _remote(root.child("remote")), _tail(root))


def _head(s: Section) -> HeadSamplingConfig:
    s = Section(s.values, s.path, ("enabled", "ratio"))
    return HeadSamplingConfig(s.boolean("enabled", False), s.number("ratio", 1.0, ge=0, le=1))


def _strategy(s: Section) -> Strategy:
    kind = s.text("type", non_empty=True)
    if kind == PROBABILISTIC:
        param = s.number("param", ge=0, le=1)
    elif kind == RATE_LIMITING:
        param = float(s.integer("param", ge=0))
    else:
        raise ConfigError(
            f"{s.at('type')} must be {PROBABILISTIC} or {RATE_LIMITING}, got {kind!r}"
        )
    operations = []
    for op_path, item in s.items("operation_strategies"):
        op = Section(item, op_path, ("operation", "type", "param"))
        if op.text("type", PROBABILISTIC) != PROBABILISTIC:
            raise ConfigError(
                f"{op.at('type')} must be {PROBABILISTIC} (Jaeger's only per-operation type)"
            )
        operations.append(
            OperationStrategy(op.text("operation", non_empty=True), op.number("param", ge=0, le=1))
        )
    return Strategy(kind, param, tuple(operations))


def _remote(s: Section) -> RemoteSamplingConfig:
    known = ("default_strategy", "service_strategies", "default_lower_bound_traces_per_second")
    s = Section(s.values, s.path, known)
    default = Strategy()
    if s.has("default_strategy"):
        default = _strategy(s.child("default_strategy", ("type", "param", "operation_strategies")))
    services: list[ServiceStrategy] = []
    for item_path, item in s.items("service_strategies"):
        entry = Section(item, item_path, ("service", "type", "param", "operation_strategies"))
        name = entry.text("service", non_empty=True)
        if any(known.service == name for known in services):
            raise ConfigError(f"{entry.at('service')}: service {name!r} is listed twice")
        services.append(ServiceStrategy(name, _strategy(entry)))
    bound = s.number("default_lower_bound_traces_per_second", 0.0, ge=0)
    return RemoteSamplingConfig(default, tuple(services), bound)


def _tail(root: Section) -> TailSamplingConfig:
    known = ("enabled", "decision_wait_seconds", "num_traces", "decision_cache", "policies")
    s = root.child("tail", known)
    cache = s.child("decision_cache", ("sampled_cache_size", "non_sampled_cache_size"))
    config = TailSamplingConfig(
        enabled=s.boolean("enabled", False),
        decision_wait_seconds=s.number("decision_wait_seconds", 10.0, gt=0),
        num_traces=s.integer("num_traces", 50_000, ge=1),
        sampled_cache_size=cache.integer("sampled_cache_size", 100_000, ge=0),
        non_sampled_cache_size=cache.integer("non_sampled_cache_size", 100_000, ge=0),
        policies=parse_policies(s),
    )
    if config.enabled and not config.policies:
        raise ConfigError(
            f"{s.at('policies')} must list at least one policy when {s.at('enabled')} is true"
        )
    return config
