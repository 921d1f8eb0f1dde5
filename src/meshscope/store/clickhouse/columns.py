"""Model values <-> ClickHouse column values, shared by the stores of this backend.

The attribute encoding is the DuckDB backend's (`store/codec.py`): values in their
query text form (`attr_text`) plus a type letter per entry; None is stored as "" with the
letter `n`, which the attribute filters check so a None never matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from meshscope.model.attributes import AttrValue
from meshscope.store.codec import TAG_NONE, text_and_tag

_HEX = re.compile(r"^[0-9a-f]{1,32}$")


def encode_attrs(attributes: Mapping[str, AttrValue]) -> tuple[list[str], list[str], str]:
    keys: list[str] = []
    values: list[str] = []
    tags: list[str] = []
    for key, value in attributes.items():
        text, tag = text_and_tag(value)
        keys.append(key)
        values.append(text or "")
        tags.append(tag)
    return keys, values, "".join(tags)


def trace_key(trace_id: str) -> tuple[int, int] | None:
    """(high, low) halves of a lowercase hex trace id; None when it is not one."""
    if not _HEX.match(trace_id):
        return None
    value = int(trace_id, 16)
    return value >> 64, value & (2**64 - 1)


def span_key(span_id: str) -> int | None:
    """A nonzero 64-bit hex span id as an integer; None when it is not one."""
    if len(span_id) > 16 or not _HEX.match(span_id):
        return None
    return int(span_id, 16) or None


def attr_equal(prefix: str, index: int) -> str:
    """SQL true when the row's `{prefix}_keys` has the key `%(k{index})s` with the text
    `%(v{index})s` (the first entry of that key; a None never matches)."""
    at = f"indexOf({prefix}_keys, %(k{index})s)"
    return (
        f"(has({prefix}_keys, %(k{index})s) AND {prefix}_values[{at}] = %(v{index})s"
        f" AND substring({prefix}_types, {at}, 1) != '{TAG_NONE}')"
    )


def attr_condition(prefixes: tuple[str, str], index: int) -> str:
    """SQL true when attribute `%(k{index})s` of the row's own attributes (prefixes[0]), or
    if it has none of that name its resource's (prefixes[1]), has the text `%(v{index})s`."""
    own, res = prefixes
    return f"if(has({own}_keys, %(k{index})s), {attr_equal(own, index)}, {attr_equal(res, index)})"


def attr_params(attributes: Mapping[str, str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for index, (key, value) in enumerate(attributes.items()):
        params[f"k{index}"] = key
        params[f"v{index}"] = value
    return params
