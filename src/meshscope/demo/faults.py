"""Switchable fault injection for the demo services.

- `error_rate[service]`: probability that the service answers 500 itself.
- `spike_ms[service]` with `spike_rate`: a latency spike, now and then (probability).
- `slow_ms[service]`: a slow dependency, every request of that service takes this much longer.

Set at start with `meshscope demo --error-rate db=0.2 --spike api=400 --slow cache=50`, and
switched while it runs with `PUT /faults` on the control port (JSON, same field names).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

KNOWN_SERVICES = ("web", "api", "db", "cache", "worker")


class FaultError(ValueError):
    """A fault setting is invalid; the message says which and why."""


def _service(name: object) -> str:
    if name not in KNOWN_SERVICES:
        raise FaultError(f"unknown service {name!r} (known: {', '.join(KNOWN_SERVICES)})")
    return str(name)


def _number(field_name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultError(f"{field_name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _per_service(field_name: str, raw: object, high: float) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise FaultError(f"{field_name} must be an object of service: number")
    return {_service(k): _number(f"{field_name}.{k}", v, 0, high) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class Faults:
    error_rate: dict[str, float] = field(default_factory=dict)
    spike_ms: dict[str, float] = field(default_factory=dict)
    spike_rate: float = 0.1
    slow_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: object) -> Faults:
        if not isinstance(raw, dict):
            raise FaultError("faults must be a JSON object")
        unknown = set(raw) - {"error_rate", "spike_ms", "spike_rate", "slow_ms"}
        if unknown:
            raise FaultError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(
            error_rate=_per_service("error_rate", raw.get("error_rate", {}), 1.0),
            spike_ms=_per_service("spike_ms", raw.get("spike_ms", {}), 60_000),
            spike_rate=_number("spike_rate", raw.get("spike_rate", 0.1), 0, 1),
            slow_ms=_per_service("slow_ms", raw.get("slow_ms", {}), 60_000),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "spike_ms": self.spike_ms,
            "spike_rate": self.spike_rate,
            "slow_ms": self.slow_ms,
        }

    def delay_s(self, service: str, rng: random.Random) -> float:
        delay = self.slow_ms.get(service, 0.0)
        if service in self.spike_ms and rng.random() < self.spike_rate:
            delay += self.spike_ms[service]
        return delay / 1000

    def fails(self, service: str, rng: random.Random) -> bool:
        rate = self.error_rate.get(service, 0.0)
        return rate > 0 and rng.random() < rate


def parse_assignment(option: str, value: str, high: float) -> tuple[str, float]:
    """`SERVICE=NUMBER` from the command line."""
    name, sep, number = value.partition("=")
    if not sep:
        raise FaultError(f"{option} must be SERVICE=NUMBER, got {value!r}")
    try:
        parsed = float(number)
    except ValueError as error:
        raise FaultError(f"{option} must be SERVICE=NUMBER, got {value!r}") from error
    return _service(name.strip()), _number(option, parsed, 0, high)
