"""Services and operations in DuckDB, in order of first appearance (also kept in memory)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from meshscope.model.spans import SpanKind
from meshscope.store.base import Operation
from meshscope.store.duckdb.database import Database, Txn


class DuckDBCatalogStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        cursor = db.read()
        services = cursor.execute("SELECT service FROM services ORDER BY position").fetchall()
        operations = cursor.execute(
            "SELECT service, name, kind FROM operations ORDER BY position"
        ).fetchall()
        # Replaced, never mutated, so readers on other threads see a stable snapshot.
        self._services: dict[str, None] = {service: None for (service,) in services}
        self._operations: dict[Operation, None] = {
            Operation(service, name, SpanKind(kind)): None for service, name, kind in operations
        }

    def note(self, operations: Sequence[Operation]) -> None:
        if self._new(operations):
            with self._db.transaction() as txn:
                self.insert(txn, operations)

    def insert(self, txn: Txn, operations: Sequence[Operation]) -> None:
        services, ops = self._services, self._operations
        new_services: dict[str, None] = {}
        new_ops: dict[Operation, None] = {}
        for op in operations:
            if op.service not in services:
                new_services[op.service] = None
            if op.name and op not in ops:
                new_ops[op] = None
        if new_services:
            txn.insert(
                "services",
                pa.table(
                    {
                        "position": pa.array(
                            range(len(services), len(services) + len(new_services)), pa.uint32()
                        ),
                        "service": pa.array(list(new_services), pa.string()),
                    }
                ),
            )
            self._services = {**services, **new_services}
            txn.on_rollback.append(lambda: setattr(self, "_services", services))
        if new_ops:
            txn.insert(
                "operations",
                pa.table(
                    {
                        "position": pa.array(range(len(ops), len(ops) + len(new_ops)), pa.uint32()),
                        "service": pa.array([op.service for op in new_ops], pa.string()),
                        "name": pa.array([op.name for op in new_ops], pa.string()),
                        "kind": pa.array([int(op.kind) for op in new_ops], pa.uint8()),
                    }
                ),
            )
            self._operations = {**ops, **new_ops}
            txn.on_rollback.append(lambda: setattr(self, "_operations", ops))

    def services(self) -> list[str]:
        return list(self._services)

    def operations(self, service: str) -> list[Operation]:
        return [op for op in self._operations if op.service == service]

    def _new(self, operations: Sequence[Operation]) -> bool:
        return any(
            op.service not in self._services or (op.name and op not in self._operations)
            for op in operations
        )
