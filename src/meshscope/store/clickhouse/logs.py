"""Log records: one table ordered (service, time_ns); access logs are rows flagged `access`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from meshscope.model.logs import LogRecord
from meshscope.store.base import MAX_TIME_NS, LogQuery
from meshscope.store.clickhouse.columns import (
    attr_condition,
    attr_params,
    encode_attrs,
    span_key,
    trace_key,
)
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.codec import id64, id128, log_record

_COLUMNS = (
    "time_ns, body, service, severity, severity_text, trace_hi, trace_lo, span_id,"
    " attr_keys, attr_values, attr_types, res_keys, res_values, res_types"
)


def log_columns(logs: Sequence[LogRecord], first_seq: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    value: Any  # one column's value; the columns have many types
    for offset, r in enumerate(logs):
        hi, lo = id128(r.trace_id)
        attrs, res = encode_attrs(r.attributes), encode_attrs(r.resource)
        for name, value in (
            ("service", r.service), ("time_ns", r.time_ns), ("seq", first_seq + offset),
            ("body", r.body), ("severity", int(r.severity)), ("severity_text", r.severity_text),
            ("trace_hi", hi), ("trace_lo", lo), ("span_id", id64(r.span_id)),
            ("access", int(r.is_access_log)),
            ("attr_keys", attrs[0]), ("attr_values", attrs[1]), ("attr_types", attrs[2]),
            ("res_keys", res[0]), ("res_values", res[1]), ("res_types", res[2]),
        ):  # fmt: skip
            out[name].append(value)
    return out


class ClickHouseLogStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._db = conn.database

    def write_logs(self, logs: Sequence[LogRecord]) -> None:
        if logs:
            self._conn.insert("logs", log_columns(logs, self._conn.seq(len(logs))))

    def find_logs(self, query: LogQuery) -> list[LogRecord]:
        conditions = ["time_ns >= %(start)s", "time_ns < %(end)s"]
        params: dict[str, Any] = {"start": query.start_ns, "end": query.end_ns}
        if query.trace_id:
            key = trace_key(query.trace_id)
            if key is None:
                return []
            conditions.append(f"trace_hi = {key[0]} AND trace_lo = {key[1]}")
        if query.span_id:
            span = span_key(query.span_id)
            if span is None:
                return []
            conditions.append(f"span_id = {span}")
        if query.service:
            conditions.append("service = %(service)s")
            params["service"] = query.service
        if query.access is not None:
            conditions.append(f"access = {int(query.access)}")
        for index, text in enumerate(query.body_contains):
            conditions.append(f"position(body, %(b{index})s) > 0")
            params[f"b{index}"] = text
        for index in range(len(query.attributes)):
            conditions.append(attr_condition(("attr", "res"), index))
        params.update(attr_params(query.attributes))
        order = "time_ns DESC, seq DESC" if query.newest_first else "time_ns, seq"
        limit = f" LIMIT {int(query.limit)}" if query.limit else ""
        rows = self._conn.rows(
            f"SELECT {_COLUMNS} FROM {self._db}.logs WHERE {' AND '.join(conditions)}"
            f" ORDER BY {order}{limit}",
            params,
        )
        return [log_record(row) for row in rows]

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        rows = self._conn.rows(
            f"SELECT service, count() FROM {self._db}.logs"
            " WHERE time_ns >= %(start)s AND time_ns < %(end)s GROUP BY service",
            {"start": start_ns, "end": end_ns},
        )
        return {service: int(count) for service, count in rows}
