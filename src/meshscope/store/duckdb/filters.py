"""SQL for attribute conditions shared by span and log searches.

A condition `key = text` holds when the row's own attributes have `key` with that text form,
or, when they have no `key` at all, the row's resource has it (see `TraceQuery`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_CONDITION = """(CASE WHEN list_contains(attr_keys, ?)
    THEN attr_values[list_position(attr_keys, ?)] = ?
    ELSE resource_id IN (SELECT resource_id FROM resources
        WHERE attr_values[list_position(attr_keys, ?)] = ?) END)"""


def attribute_conditions(wanted: Mapping[str, str]) -> tuple[list[str], list[Any]]:
    """WHERE clauses (to be AND-ed) and their parameters, in order."""
    clauses: list[str] = []
    params: list[Any] = []
    for key, text in wanted.items():
        clauses.append(_CONDITION)
        params += [key, key, text, key, text]
    return clauses, params
