"""SQL for attribute conditions shared by span and log searches.

A condition `key = text` holds when the row's own attributes have `key` with that text form,
or, when they have no `key` at all, the row's resource has it (see `TraceQuery`). Attributes
are packed strings (store/duckdb/packed.py), so each test is a substring search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from meshscope.store.duckdb.packed import has_params, key_needle, needle, sql_has


def attribute_conditions(
    cursor: duckdb.DuckDBPyConnection, wanted: Mapping[str, str], either: bool = False
) -> tuple[list[str], list[Any]]:
    """`key = text` on the row's own attribute, or when it has no `key`, on its resource's;
    with `either` (spans, as Jaeger matches span or process tags), on either.

    The resources that match are looked up first (`resources` is small) and inlined as a list
    of ids: a subquery per row turns into a join that costs more than the scan."""
    clauses: list[str] = []
    params: list[Any] = []
    own = sql_has("attrs")
    for key, text in wanted.items():
        entry = needle(key, text)
        ids = [
            row[0]
            for row in cursor.execute(
                f"SELECT DISTINCT resource_id FROM resources WHERE {own}", has_params(entry)
            ).fetchall()
        ]
        listed = ", ".join(str(int(i)) for i in ids)
        if ids and either:
            clauses.append(f"({own} OR resource_id IN ({listed}))")
            params += has_params(entry)
        elif ids:
            clauses.append(f"(CASE WHEN {own} THEN {own} ELSE resource_id IN ({listed}) END)")
            params += [*has_params(key_needle(key)), *has_params(entry)]
        else:
            clauses.append(own)
            params += has_params(entry)
    return clauses, params
