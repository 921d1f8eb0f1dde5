"""Field validation for node messages. A bad field becomes an error reply with code 12."""

from __future__ import annotations

import math
from typing import Any

from meshscope.node.framing import JsonObject


class BadFieldError(ValueError):
    """A required field is missing or a field has the wrong type."""


def req_str(body: JsonObject, key: str, allow_empty: bool = False) -> str:
    value = body.get(key)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise BadFieldError(f"field '{key}' must be a non-empty string")
    return value


def opt_str(body: JsonObject, key: str, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadFieldError(f"field '{key}' must be a string")
    return value


def req_number(body: JsonObject, key: str, minimum: float = 0.0, below: float = math.inf) -> float:
    """A finite number from `minimum` up to, not including, `below`."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadFieldError(f"field '{key}' must be a number")
    if value < minimum:
        raise BadFieldError(f"field '{key}' must be >= {minimum:g}")
    if not value < below:  # infinity and integers past a double's range too
        raise BadFieldError(f"field '{key}' must be below {below:g}")
    return float(value)


def req_int(body: JsonObject, key: str, low: int, high: int) -> int:
    value = body.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadFieldError(f"field '{key}' must be an integer from {low} to {high}")
    return value


def opt_object(body: JsonObject, key: str) -> JsonObject:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadFieldError(f"field '{key}' must be an object")
    return value


def req_str_list(body: JsonObject, key: str) -> list[str]:
    value: Any = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadFieldError(f"field '{key}' must be a list of non-empty strings")
    return list(value)
