"""Tail-sampling policy settings, shaped like the OTel collector's tail_sampling processor.

    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow
        type: latency
        latency: {threshold_ms: 500}

Each policy has a `name`, a `type` and one block named after the type holding its settings.
`and` and `composite` hold sub-policies of the leaf types (no nesting, as in the collector).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from meshscope.errors import ConfigError
from meshscope.pipeline.sampling.validate import Section

STATUS_CODES = ("ERROR", "OK", "UNSET")


@dataclass(frozen=True, slots=True)
class AlwaysSample:
    pass


@dataclass(frozen=True, slots=True)
class StatusCodeMatch:
    status_codes: tuple[str, ...] = ("ERROR",)


@dataclass(frozen=True, slots=True)
class LatencyThreshold:
    threshold_ms: float
    upper_threshold_ms: float = 0.0  # 0: no upper bound


@dataclass(frozen=True, slots=True)
class Probabilistic:
    sampling_percentage: float
    hash_salt: str = ""


@dataclass(frozen=True, slots=True)
class RateLimiting:
    spans_per_second: int = 0  # exactly one of the two is > 0
    traces_per_second: int = 0


@dataclass(frozen=True, slots=True)
class StringAttribute:
    key: str
    values: tuple[str, ...]
    enabled_regex_matching: bool = False
    invert_match: bool = False


@dataclass(frozen=True, slots=True)
class NumericAttribute:
    key: str
    min_value: float | None = None
    max_value: float | None = None
    invert_match: bool = False


LeafSettings = (
    AlwaysSample
    | StatusCodeMatch
    | LatencyThreshold
    | Probabilistic
    | RateLimiting
    | StringAttribute
    | NumericAttribute
)


@dataclass(frozen=True, slots=True)
class SubPolicy:
    name: str
    settings: LeafSettings


@dataclass(frozen=True, slots=True)
class AllOf:
    """The `and` policy: sample when every sub-policy samples."""

    and_sub_policy: tuple[SubPolicy, ...]


@dataclass(frozen=True, slots=True)
class RateAllocation:
    policy: str
    percent: float


@dataclass(frozen=True, slots=True)
class Composite:
    max_total_spans_per_second: int
    policy_order: tuple[str, ...]
    composite_sub_policy: tuple[SubPolicy, ...]
    rate_allocation: tuple[RateAllocation, ...] = ()


PolicySettings = LeafSettings | AllOf | Composite


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    settings: PolicySettings


def _leaf(kind: str, s: Section) -> LeafSettings:
    if kind == "always_sample":
        Section(s.values, s.path, ())
        return AlwaysSample()
    if kind == "status_code":
        s = Section(s.values, s.path, ("status_codes",))
        codes = s.strings("status_codes", non_empty=True) if s.has("status_codes") else ("ERROR",)
        for code in codes:
            if code not in STATUS_CODES:
                raise ConfigError(
                    f"{s.at('status_codes')} values must be one of {', '.join(STATUS_CODES)}"
                    f", got {code!r}"
                )
        return StatusCodeMatch(codes)
    if kind == "latency":
        s = Section(s.values, s.path, ("threshold_ms", "upper_threshold_ms"))
        low = s.number("threshold_ms", gt=0)
        high = s.number("upper_threshold_ms", 0.0, ge=0)
        if high and high <= low:
            raise ConfigError(f"{s.at('upper_threshold_ms')} must be > threshold_ms, got {high}")
        return LatencyThreshold(low, high)
    if kind == "probabilistic":
        s = Section(s.values, s.path, ("sampling_percentage", "hash_salt"))
        return Probabilistic(s.number("sampling_percentage", ge=0, le=100), s.text("hash_salt", ""))
    if kind == "rate_limiting":
        s = Section(s.values, s.path, ("spans_per_second", "traces_per_second"))
        spans, traces = (
            s.integer("spans_per_second", 0, ge=0),
            s.integer("traces_per_second", 0, ge=0),
        )
        if (spans > 0) == (traces > 0):
            raise ConfigError(
                f"{s.path} needs exactly one of spans_per_second, traces_per_second > 0"
            )
        return RateLimiting(spans, traces)
    if kind == "string_attribute":
        known = ("key", "values", "enabled_regex_matching", "invert_match")
        s = Section(s.values, s.path, known)
        regex = s.boolean("enabled_regex_matching", False)
        values = s.strings("values", non_empty=True)
        if regex:
            for path, value in s.items("values"):
                try:
                    re.compile(str(value))
                except re.error as error:
                    raise ConfigError(
                        f"{path} is not a valid regular expression: {error}"
                    ) from None
        key = s.text("key", non_empty=True)
        return StringAttribute(key, values, regex, s.boolean("invert_match", False))
    if kind == "numeric_attribute":
        s = Section(s.values, s.path, ("key", "min_value", "max_value", "invert_match"))
        lo = s.number("min_value") if s.has("min_value") else None
        hi = s.number("max_value") if s.has("max_value") else None
        if lo is None and hi is None:
            raise ConfigError(f"{s.path} needs min_value, max_value or both")
        if lo is not None and hi is not None and hi < lo:
            raise ConfigError(f"{s.at('max_value')} must be >= min_value, got {hi}")
        return NumericAttribute(
            s.text("key", non_empty=True), lo, hi, s.boolean("invert_match", False)
        )
    raise AssertionError(kind)


LEAF_TYPES = (
    "always_sample",
    "status_code",
    "latency",
    "probabilistic",
    "rate_limiting",
    "string_attribute",
    "numeric_attribute",
)
ALL_TYPES = (*LEAF_TYPES, "and", "composite")


def _name_and_kind(item: object, path: str, allowed: tuple[str, ...]) -> tuple[Section, str, str]:
    head = Section(item, path)
    kind = head.text("type", non_empty=True)
    if kind not in allowed:
        raise ConfigError(f"{head.at('type')} must be one of {', '.join(allowed)}, got {kind!r}")
    section = Section(item, path, ("name", "type", kind))
    return section, section.text("name", non_empty=True), kind


def _sub_policies(s: Section, key: str) -> tuple[SubPolicy, ...]:
    subs: list[SubPolicy] = []
    for path, item in s.items(key):
        section, name, kind = _name_and_kind(item, path, LEAF_TYPES)
        subs.append(SubPolicy(name, _leaf(kind, section.child(kind))))
    if not subs:
        raise ConfigError(f"{s.at(key)} must list at least one policy")
    _unique([sub.name for sub in subs], s.at(key))
    return tuple(subs)


def _unique(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{path}: policy name {name!r} is used twice")
        seen.add(name)


def _composite(s: Section) -> Composite:
    known = (
        "max_total_spans_per_second",
        "policy_order",
        "composite_sub_policy",
        "rate_allocation",
    )
    s = Section(s.values, s.path, known)
    total = s.integer("max_total_spans_per_second", ge=1)
    subs = _sub_policies(s, "composite_sub_policy")
    names = [sub.name for sub in subs]
    order = s.strings("policy_order") or tuple(names)
    if sorted(order) != sorted(names):
        raise ConfigError(f"{s.at('policy_order')} must list each composite_sub_policy name once")
    allocations = []
    for path, item in s.items("rate_allocation"):
        a = Section(item, path, ("policy", "percent"))
        policy = a.text("policy", non_empty=True)
        if policy not in names:
            raise ConfigError(f"{a.at('policy')} names no composite_sub_policy: {policy!r}")
        allocations.append(RateAllocation(policy, a.number("percent", gt=0, le=100)))
    if sum(a.percent for a in allocations) > 100:
        raise ConfigError(f"{s.at('rate_allocation')} percents must add up to <= 100")
    return Composite(total, order, tuple(subs[names.index(n)] for n in order), tuple(allocations))


def parse_policies(s: Section, key: str = "policies") -> tuple[PolicyConfig, ...]:
    policies: list[PolicyConfig] = []
    for path, item in s.items(key):
        section, name, kind = _name_and_kind(item, path, ALL_TYPES)
        _unique([*(p.name for p in policies), name], s.at(key))
        block = section.child(kind)
        settings: PolicySettings
        if kind == "and":
            settings = AllOf(
                _sub_policies(
                    Section(block.values, block.path, ("and_sub_policy",)), "and_sub_policy"
                )
            )
        elif kind == "composite":
            settings = _composite(block)
        else:
            settings = _leaf(kind, block)
        policies.append(PolicyConfig(name, settings))
    return tuple(policies)
