"""Log records: the `logs` table ordered (service, time_ns), and the calls' access logs, typed
rows of `access_logs` (access_logs.py) that reads render as records; a record of `logs` may
be an access log too (flagged `access`: written as one, or a call out of the typed range)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.store.base import MAX_TIME_NS, LogQuery
from meshscope.store.clickhouse import access_logs
from meshscope.store.clickhouse.columns import (
    attr_condition,
    attr_params,
    encode_attrs,
    span_key,
    trace_key,
)
from meshscope.store.clickhouse.connection import Connection
from meshscope.store.codec import id64, id128, log_record

_NAMES = (
    "time_ns", "body", "service", "severity", "severity_text", "trace_hi", "trace_lo", "span_id",
    "attr_keys", "attr_values", "attr_types", "res_keys", "res_values", "res_types",
)  # fmt: skip
"""The columns a record is read from (`codec.log_record`)."""
_COLUMNS = ", ".join(_NAMES)
# The `access_logs` rows as `logs` rows: the columns a read selects or filters on.
_ACCESS_COLUMNS = ", ".join(
    name if sql == name else f"{sql} AS {name}" for name, sql in access_logs.SELECT.items()
)


def log_columns(logs: Sequence[LogRecord], seqs: Sequence[int]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    value: Any  # one column's value; the columns have many types
    for r, seq in zip(logs, seqs, strict=True):
        hi, lo = id128(r.trace_id)
        attrs, res = encode_attrs(r.attributes), encode_attrs(r.resource)
        for name, value in (
            ("service", r.service), ("time_ns", r.time_ns), ("seq", seq),
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

    def write_logs(
        self,
        logs: Sequence[LogRecord],
        calls: Sequence[Call] = (),
        seqs: Sequence[int] | None = None,
    ) -> None:
        """The records into `logs` and the calls into `access_logs`, with write sequence
        numbers in that order (the records first, then the calls: equal times read back in
        it; `seqs`, one per record then call, as in `ClickHouseMetricStore.write_points`).
        A call whose duration the typed rows cannot render exactly is stored as the
        record `access_log` renders (access_logs.py)."""
        if not logs and not calls:
            return
        if seqs is None:
            first = self._conn.seq(len(logs) + len(calls))
            seqs = range(first, first + len(logs) + len(calls))
        generic, generic_seqs = list(logs), list(seqs[: len(logs)])
        if calls:
            call_seqs = seqs[len(logs) :]
            columns, odd = access_logs.access_columns(calls, call_seqs)
            generic += [access_log(calls[i]) for i in odd]
            generic_seqs += [call_seqs[i] for i in odd]
            self._conn.insert_native("access_logs", columns)
        if generic:
            self._conn.insert("logs", log_columns(generic, generic_seqs))

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
        for index, text in enumerate(query.body_contains):
            conditions.append(f"position(body, %(b{index})s) > 0")
            params[f"b{index}"] = text
        for index in range(len(query.attributes)):
            conditions.append(attr_condition(("attr", "res"), index))
        params.update(attr_params(query.attributes))
        where = " AND ".join(conditions)
        order = "time_ns DESC, seq DESC" if query.newest_first else "time_ns, seq"
        limit = f" LIMIT {int(query.limit)}" if query.limit else ""
        # Each table filtered, sorted and cut on its own, then merged: (time_ns, seq) is
        # unique across both (one write sequence), so ties are in write order.
        access = "" if query.access is None else f" AND access = {int(query.access)}"
        parts = [
            f"SELECT {_COLUMNS}, seq FROM {self._db}.logs WHERE {where}{access}"
            f" ORDER BY {order}{limit}"
        ]
        if query.access is not False:
            parts.append(
                f"SELECT {_ACCESS_COLUMNS} FROM {self._db}.access_logs WHERE {where}"
                f" ORDER BY {order}{limit}"
            )
        union = " UNION ALL ".join(f"SELECT {_COLUMNS}, seq FROM ({part})" for part in parts)
        rows = self._conn.rows(f"SELECT {_COLUMNS} FROM ({union}) ORDER BY {order}{limit}", params)
        return [log_record(row) for row in rows]

    def log_counts(self, start_ns: int = 0, end_ns: int = MAX_TIME_NS) -> dict[str, int]:
        where = "time_ns >= %(start)s AND time_ns < %(end)s"
        rows = self._conn.rows(
            f"SELECT service, sum(n) FROM (SELECT service, count() AS n FROM {self._db}.logs"
            f" WHERE {where} GROUP BY service UNION ALL SELECT target AS service, count() AS n"
            f" FROM {self._db}.access_logs WHERE {where} GROUP BY target) GROUP BY service",
            {"start": start_ns, "end": end_ns},
        )
        return {service: int(count) for service, count in rows}
