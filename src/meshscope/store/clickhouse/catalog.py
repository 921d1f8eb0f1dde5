"""Services and operations in order of first appearance (ReplacingMergeTree, min seq read)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from meshscope.model.spans import SpanKind
from meshscope.store.base import Operation
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.clickhouse.schema import RANK_MAX


class ClickHouseCatalogStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.database
        self._lock = threading.Lock()
        self._noted: set[tuple[str, str, int]] = set()  # written by this process

    def note(self, operations: Sequence[Operation], seqs: Sequence[int] | None = None) -> None:
        """`seqs`: as in `ClickHouseMetricStore.write_points`."""
        if not operations:
            return
        columns: dict[str, list[Any]] = defaultdict(list)
        if seqs is None:
            first = self._conn.seq(len(operations))
            seqs = range(first, first + len(operations))
        with self._lock:
            for op, seq in zip(operations, seqs, strict=True):
                key = (op.service, op.name, int(op.kind) if op.name else 0)
                if key in self._noted:
                    continue
                self._noted.add(key)
                for name, value in zip(
                    ("service", "name", "kind", "seq", "rank"),
                    (*key, seq, RANK_MAX - seq),
                    strict=True,
                ):
                    columns[name].append(value)
        self._conn.insert("catalog", columns)

    def services(self) -> list[str]:
        rows = self._conn.rows(
            f"SELECT service, min(seq) AS first FROM {self._db}.catalog"
            " GROUP BY service ORDER BY first"
        )
        return [service for service, _ in rows]

    def operations(self, service: str) -> list[Operation]:
        rows = self._conn.rows(
            f"SELECT name, kind, min(seq) AS first FROM {self._db}.catalog"
            " WHERE service = %(service)s AND name != '' GROUP BY name, kind ORDER BY first",
            {"service": service},
        )
        return [Operation(service, name, SpanKind(kind)) for name, kind, _ in rows]
