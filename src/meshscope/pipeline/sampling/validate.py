"""Reading one mapping of settings with typed getters whose errors name the setting's path.

`Section(mapping, "sampling.tail").number("decision_wait_seconds", gt=0)` raises
`ConfigError("sampling.tail.decision_wait_seconds must be > 0, got -1")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshscope.errors import ConfigError

_MISSING = object()


class Section:
    def __init__(self, values: object, path: str, known: tuple[str, ...] | None = None) -> None:
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {values!r}")
        self.values: Mapping[str, Any] = values
        self.path = path
        if known is not None:
            for key in values:
                if key not in known:
                    raise ConfigError(
                        f"unknown setting {self.at(str(key))} (known: {', '.join(known)})"
                    )

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.values

    def child(self, key: str, known: tuple[str, ...] | None = None) -> Section:
        return Section(self.values.get(key), self.at(key), known)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.at(key)} must be true or false, got {value!r}")
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
    ) -> float:
        value = self.values.get(key, _MISSING if default is None else default)
        if value is _MISSING:
            raise ConfigError(f"{self.at(key)} is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.at(key)} must be a number, got {value!r}")
        if gt is not None and not value > gt:
            raise ConfigError(f"{self.at(key)} must be > {gt:g}, got {value!r}")
        if ge is not None and not value >= ge:
            raise ConfigError(f"{self.at(key)} must be >= {ge:g}, got {value!r}")
        if le is not None and not value <= le:
            raise ConfigError(f"{self.at(key)} must be <= {le:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int | None = None, *, ge: int | None = None) -> int:
        value = self.values.get(key, _MISSING if default is None else default)
        if value is _MISSING:
            raise ConfigError(f"{self.at(key)} is required")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.at(key)} must be a whole number, got {value!r}")
        if ge is not None and value < ge:
            raise ConfigError(f"{self.at(key)} must be >= {ge}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None, *, non_empty: bool = False) -> str:
        value = self.values.get(key, _MISSING if default is None else default)
        if value is _MISSING:
            raise ConfigError(f"{self.at(key)} is required")
        if not isinstance(value, str):
            raise ConfigError(f"{self.at(key)} must be a string, got {value!r}")
        if non_empty and not value:
            raise ConfigError(f"{self.at(key)} must not be empty")
        return value

    def items(self, key: str) -> list[tuple[str, object]]:
        """A list setting as (path of the element, element) pairs; [] when absent."""
        value = self.values.get(key, [])
        if not isinstance(value, list):
            raise ConfigError(f"{self.at(key)} must be a list, got {value!r}")
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def strings(self, key: str, *, non_empty: bool = False) -> tuple[str, ...]:
        out = []
        for path, item in self.items(key):
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ConfigError(f"{path} must be a string, got {item!r}")
            out.append(str(item))
        if non_empty and not out:
            raise ConfigError(f"{self.at(key)} must list at least one value")
        return tuple(out)


def nest_double_underscores(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"tail__enabled": true}` (from MESHSCOPE_SAMPLING__TAIL__ENABLED) -> nested mappings."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        parts = str(key).split("__")
        target = out
        for part in parts[:-1]:
            existing = target.get(part)
            if not isinstance(existing, dict):
                existing = dict(existing) if isinstance(existing, Mapping) else {}
                target[part] = existing
            target = existing
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(target.get(last), dict):
            target[last].update(nest_double_underscores(value))
        elif isinstance(value, Mapping):
            target[last] = nest_double_underscores(value)
        else:
            target[last] = value
    return out
