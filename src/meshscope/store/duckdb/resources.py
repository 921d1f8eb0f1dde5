"""Resources (the attributes of the process that emitted a span or log) stored once each.

A resource is found by a 64-bit hash of its content (`codec.resource_id`: the same in every
process, so ingest workers compute it without asking the owner) and stored under a small
number the owner gives it (`resources.resource_id`, 0: the empty resource), the number the
`spans` and `logs` rows carry. A span's rows are grouped by trace (traces.py), which spreads a
resource's rows apart: random 64-bit hashes there cost 8 bytes a row, small numbers a few bits
(ADR 0020).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa

from meshscope.model.attributes import AttrValue
from meshscope.store.codec import AttrColumns, resource_id
from meshscope.store.duckdb.database import Database, Txn
from meshscope.store.duckdb.packed import pack_columns, unpack


class Resources:
    def __init__(self, db: Database) -> None:
        self._db = db
        rows = db.read().execute("SELECT resource_hash, resource_id FROM resources").fetchall()
        # hash -> number, for writers (one at a time); replaced, never mutated, so a rollback
        # puts the previous dict back.
        self._numbers: dict[int, int] = {0: 0, **{row[0]: row[1] for row in rows}}
        self._next = max(self._numbers.values()) + 1
        # number -> attributes; a resource never changes, so readers cache it instead of
        # joining `resources` on every trace read.
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
        """The number of each resource, inserting the ones never seen."""
        by_object: dict[int, int] = {}  # id(dict) -> hash; objects live for this call
        hashes = []
        for resource in resources:
            rid = by_object.get(id(resource))
            if rid is None:
                rid = by_object[id(resource)] = resource_id(resource)
            hashes.append(rid)
        numbers = self._numbered(txn, dict(zip(hashes, resources, strict=True)))
        return [numbers[rid] for rid in hashes]

    def renumber(
        self, txn: Txn, table: pa.Table, resources: Iterable[Mapping[str, AttrValue]]
    ) -> pa.Table:
        """`table` (encoded span rows, see span_rows.py) with its `resource_id` column of
        hashes turned into numbers. `resources` hold the ones it names; they are hashed only
        when the column names one never seen (then inserted)."""
        distinct, where = np.unique(table.column("resource_id").to_numpy(), return_inverse=True)
        numbers = self._numbers
        unseen = [int(rid) for rid in distinct if int(rid) not in numbers]
        if unseen:
            given = {resource_id(resource): resource for resource in resources}
            missing = [rid for rid in unseen if rid not in given]
            if missing:
                raise ValueError(f"span rows name resources {missing} without their attributes")
            numbers = self._numbered(txn, {rid: given[rid] for rid in unseen})
        mapped = np.array([numbers[int(rid)] for rid in distinct], np.uint64)[where]
        return table.set_column(
            table.schema.get_field_index("resource_id"), "resource_id", pa.array(mapped)
        )

    def _numbered(
        self, txn: Txn, resources: Mapping[int, Mapping[str, AttrValue]]
    ) -> dict[int, int]:
        """hash -> number for every known resource and those given by hash (the unseen ones
        inserted in `txn`, kept only if it commits)."""
        known = self._numbers
        new = {rid: resource for rid, resource in resources.items() if rid not in known}
        if not new:
            return known
        first = self._next
        columns = AttrColumns()
        for resource in new.values():
            columns.add(resource)
        attrs, attr_types = pack_columns(columns)
        table = pa.table(
            {
                "resource_id": pa.array(range(first, first + len(new)), pa.uint64()),
                "attrs": attrs,
                "attr_types": attr_types,
                "resource_hash": pa.array(list(new), pa.uint64()),
            }
        )
        txn.insert("resources", table)
        self._numbers = {**known, **{rid: first + i for i, rid in enumerate(new)}}
        self._next = first + len(new)
        txn.on_rollback.append(lambda: self._restore(known, first))
        return self._numbers

    def _restore(self, numbers: dict[int, int], next_number: int) -> None:
        self._numbers, self._next = numbers, next_number
