"""Attribute values as OpenTelemetry defines them (AnyValue)."""

from __future__ import annotations

from collections.abc import Mapping

AttrValue = str | bool | int | float | bytes | list["AttrValue"] | dict[str, "AttrValue"] | None
Attributes = Mapping[str, AttrValue]

EMPTY: dict[str, AttrValue] = {}


def attr_str(attributes: Attributes, *keys: str) -> str:
    """The first of `keys` present with a non-empty value, as a string; "" if none."""
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return str(value)
    return ""
