"""SQL for attribute conditions shared by span and log searches.

A condition `key = text` holds when the row's own attributes have `key` with that text form,
or, when they have no `key` at all, the row's resource has it (see `TraceQuery`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb


def attribute_conditions(
    cursor: duckdb.DuckDBPyConnection, wanted: Mapping[str, str]
) -> tuple[list[str], list[Any]]:
    """`key = text` on the span's own attribute, or when it has no `key`, on its resource's.

    The resources that match are looked up first (`resources` is small) and inlined as a list
    of ids: a subquery per span row turns into a join that costs more than the scan; and
    where no resource matches, the span's own attribute must, which `list_contains` on the
    values checks quickly before the key is looked up."""
    clauses: list[str] = []
    params: list[Any] = []
    own = "attr_values[list_position(attr_keys, ?)] = ?"
    for key, text in wanted.items():
        ids = [
            row[0]
            for row in cursor.execute(
                f"SELECT DISTINCT resource_id FROM resources WHERE {own}", [key, text]
            ).fetchall()
        ]
        if ids:
            clauses.append(
                f"(CASE WHEN list_contains(attr_keys, ?) THEN {own}"
                f" ELSE resource_id IN ({', '.join(str(int(i)) for i in ids)}) END)"
            )
            params += [key, key, text]
        else:
            clauses.append(f"list_contains(attr_values, ?) AND {own}")
            params += [text, key, text]
    return clauses, params
