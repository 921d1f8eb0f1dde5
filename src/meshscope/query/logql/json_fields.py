"""JSON log lines for `| json`: decoding a line with each number's text kept, and the paths of
`| json label="expression"` (Loki's `jsonexpr`: object keys joined by `.` or written
`["key"]`, array indexes `[0]`) read from it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

_PART = re.compile(r'\.?([A-Za-z0-9_]+)|\[\s*(\d+)\s*\]|\[\s*"((?:[^"\\]|\\.)*)"\s*\]')


def json_path(expression: str) -> tuple[str | int, ...] | None:
    """The keys and indexes of `expression`; None if it is not a path."""
    parts: list[str | int] = []
    at = 0
    while at < len(expression):
        match = _PART.match(expression, at)
        if match is None or (match.group(0).startswith(".") and not parts):
            return None
        key, index, quoted = match.groups()
        if key is not None:
            parts.append(key)
        elif index is not None:
            parts.append(int(index))
        else:
            try:
                parts.append(json.loads(f'"{quoted}"'))
            except ValueError:
                return None
        at = match.end()
    return tuple(parts) or None


class RawFloat(float):
    """A JSON number with a fraction or exponent, and its text (`1.50`, `1e3`): Loki's parser
    reads numbers raw, so a label shows the text."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> RawFloat:
        number = float.__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text


def decode_object(line: str) -> tuple[dict[str, Any] | None, str]:
    """The JSON object a line is, or None and why not. orjson (~6x faster) reads it first;
    a line with a fractional number is read again by `json`, keeping each number's text."""
    try:
        document = orjson.loads(line)
        if isinstance(document, dict) and _has_float(document):
            document = json.loads(line, parse_float=RawFloat)
    except (ValueError, RecursionError) as error:  # orjson's error is a ValueError
        return None, str(error) or "nested too deep"
    if not isinstance(document, dict):
        return None, "the line is not a JSON object"
    return document, ""


def _has_float(document: dict[str, Any]) -> bool:
    pending: list[Any] = [document]
    while pending:
        item = pending.pop()
        for value in item.values() if isinstance(item, dict) else item:
            if isinstance(value, float):
                return True
            if isinstance(value, dict | list):
                pending.append(value)
    return False


def _raw(value: Any) -> orjson.Fragment:
    if isinstance(value, RawFloat):
        return orjson.Fragment(value.text)
    raise TypeError


def leaves(document: dict[str, Any]) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """What `| json` extracts from a document: each scalar field's name (nested keys joined
    by `_`), its path of keys and its text (numbers as their JSON text, `true`/`false`);
    depth first in document order. Arrays and nulls are skipped, as Loki's parser skips them.
    An explicit stack: no recursion, however deep the document the decoder accepted."""
    stack: list[tuple[str, tuple[str, ...], Iterator[tuple[str, Any]]]] = [
        ("", (), iter(document.items()))
    ]
    while stack:
        prefix, path, items = stack[-1]
        entry = next(items, None)
        if entry is None:
            stack.pop()
            continue
        key, value = entry
        name = f"{prefix}_{key}" if prefix else key
        if isinstance(value, dict):
            stack.append((name, (*path, key), iter(value.items())))
        elif isinstance(value, bool):
            yield name, (*path, key), "true" if value else "false"
        elif value is not None and not isinstance(value, list):
            yield name, (*path, key), str(value)


_MISSING = object()


def value_at(document: Any, path: tuple[str | int, ...]) -> str | None:
    """The text a label takes from `path` in a decoded document (numbers as their JSON text,
    `true`/`false`, "" for null, objects and arrays as compact JSON); None when absent."""
    found: Any = document
    for part in path:
        if isinstance(part, int):
            found = found[part] if isinstance(found, list) and part < len(found) else _MISSING
        else:
            found = found.get(part, _MISSING) if isinstance(found, dict) else _MISSING
        if found is _MISSING:
            return None
    if isinstance(found, bool):
        return "true" if found else "false"
    if found is None:
        return ""
    if isinstance(found, dict | list):
        return orjson.dumps(found, default=_raw).decode()
    return str(found)
