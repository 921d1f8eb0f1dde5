"""Attribute values as OpenTelemetry defines them (AnyValue)."""

from __future__ import annotations

import base64
import json
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


def json_text(value: AttrValue) -> str:
    """A list or map value as compact JSON, bytes inside as base64: what the OTel Collector's
    pdata writes for one (`AsString`), in Jaeger tags and Zipkin annotations."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_base64)


def _base64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"not an attribute value: {type(value).__name__}")
