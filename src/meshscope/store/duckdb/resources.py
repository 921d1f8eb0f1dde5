"""Resources (the attributes of the process that emitted a span or log) stored once each.

A resource's id is a 64-bit hash of its encoded attributes; id 0 is the empty resource.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from meshscope.model.attributes import AttrValue
from meshscope.store.codec import AttrColumns, resource_id
from meshscope.store.duckdb.database import Database, Txn
from meshscope.store.duckdb.packed import pack_columns, unpack


class Resources:
    def __init__(self, db: Database) -> None:
        self._db = db
        rows = db.read().execute("SELECT DISTINCT resource_id FROM resources").fetchall()
        self._known: frozenset[int] = frozenset(row[0] for row in rows)
        # id -> attributes; a resource never changes (its id is the hash of its content), so
        # readers cache it instead of joining `resources` on every trace read.
        self._attrs: dict[int, dict[str, AttrValue]] = {0: {}}

    def attributes(self, resource_ids: Sequence[int]) -> dict[int, dict[str, AttrValue]]:
        """The attributes of each given (committed) resource id; unknown ids map to {}."""
        cache = self._attrs
        missing = [rid for rid in dict.fromkeys(resource_ids) if rid not in cache]
        if missing:
            rows = (
                self._db.read()
                .execute(
                    "SELECT resource_id, any_value(attrs), any_value(attr_types)"
                    " FROM resources WHERE resource_id IN"
                    f" ({', '.join(str(int(rid)) for rid in missing)}) GROUP BY resource_id"
                )
                .fetchall()
            )
            fresh = {row[0]: unpack(row[1], row[2]) for row in rows}
            self._attrs = cache = {**cache, **fresh}  # replaced, never mutated: thread-safe
        return {rid: cache.get(rid, {}) for rid in resource_ids}

    def ids(self, txn: Txn, resources: Sequence[Mapping[str, AttrValue]]) -> list[int]:
        """The id of each resource, inserting the ones never seen in this transaction."""
        by_object: dict[int, int] = {}  # id(dict) -> resource id; objects live for this call
        new = AttrColumns()
        new_ids: list[int] = []
        out: list[int] = []
        for resource in resources:
            rid = by_object.get(id(resource))
            if rid is None:
                rid = resource_id(resource)
                by_object[id(resource)] = rid
                if rid and rid not in self._known and rid not in new_ids:
                    new.add(resource)
                    new_ids.append(rid)
            out.append(rid)
        if new_ids:
            attrs, attr_types = pack_columns(new)
            table = pa.table(
                {
                    "resource_id": pa.array(new_ids, pa.uint64()),
                    "attrs": attrs,
                    "attr_types": attr_types,
                }
            )
            txn.insert("resources", table)
            # Seen by later writes of this transaction, and kept only if it commits.
            known = self._known
            self._known = known | frozenset(new_ids)
            txn.on_rollback.append(lambda: setattr(self, "_known", known))
        return out
