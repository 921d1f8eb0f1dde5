"""Span-metric exemplars from the `spans` table: the slowest span per series and interval.

One scan of the time range (`start_ns` zonemaps prune it), ranked per (service, kind, name,
status, interval) by a window function; see `ExemplarQuery` for the rules.
"""

from __future__ import annotations

from typing import Any

import duckdb

from meshscope.model.spans import SpanKind, StatusCode
from meshscope.store.base import ExemplarQuery, SpanExemplar
from meshscope.store.codec import hex64, hex128


def exemplars(cursor: duckdb.DuckDBPyConnection, query: ExemplarQuery) -> list[SpanExemplar]:
    where = ["start_ns >= ?", "start_ns < ?"]
    params: list[Any] = [query.start_ns, query.interval_ns, query.start_ns, query.end_ns]
    for column, value in (
        ("service", query.service or None),
        ("name", query.name or None),
        ("kind", None if query.kind is None else int(query.kind)),
        ("status_code", None if query.status is None else int(query.status)),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    params.append(query.limit)
    rows = cursor.execute(
        f"""SELECT service, name, kind, status_code, start_ns, duration_ns, trace_hi,
                   trace_lo, span_id
            FROM (SELECT *, row_number() OVER (
                    PARTITION BY service, kind, name, status_code, (start_ns - ?) // ?
                    ORDER BY duration_ns DESC, start_ns, trace_hi, trace_lo, span_id) AS rank
                  FROM spans WHERE {" AND ".join(where)})
            WHERE rank = 1
            ORDER BY service, kind, name, status_code, start_ns
            LIMIT ?""",
        params,
    ).fetchall()
    return [
        SpanExemplar(service, name, SpanKind(kind), StatusCode(status), start, duration,
                     hex128(t_hi, t_lo), hex64(span_id))
        for service, name, kind, status, start, duration, t_hi, t_lo, span_id in rows
    ]  # fmt: skip
