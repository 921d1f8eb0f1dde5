"""`GET /api/meshscope/logs`: log records newest first with their trace and span ids, for the
UI's logs explorer (one JSON object per record, simpler for a UI than Loki's streams).

Parameters: `trace` (a trace id: only that trace's records), `service`, `severity` (minimum
level: trace, debug, info, warn, error, fatal), `q` (text the body must contain,
case-sensitive), `start`/`end` (ms; default the last hour), `limit` (default 200, at most
2000), `access` (`true` keeps the derived access logs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.api.handlers import WARNINGS, status_of, threaded
from meshscope.api.meshscope import NowNs, time_range
from meshscope.api.params import ParamError, optional_int
from meshscope.api.params import trace_id as parse_trace_id
from meshscope.api.trace_logs import log_json, logs_response
from meshscope.model.logs import LogRecord, Severity
from meshscope.store.base import LogQuery, LogStore, Storage

DEFAULT_LIMIT = 200
MAX_LIMIT = 2000
LEVELS = {"trace", "debug", "info", "warn", "error", "fatal"}


def minimum_severity(text: str) -> Severity:
    """`severity` as the lowest level kept; empty keeps everything."""
    if not text:
        return Severity.UNSPECIFIED
    if text.lower() not in LEVELS:
        raise ParamError(f"parameter severity must be one of {', '.join(sorted(LEVELS))}")
    return Severity.from_text(text)


def newest_logs(
    store: LogStore, query: LogQuery, lowest: Severity, limit: int, page: int = 0
) -> list[LogRecord]:
    """At most `limit` records of `query`, newest first, at `lowest` severity or above, read
    `page` records at a time (default: twice the limit, at least 500)."""
    found: list[LogRecord] = []
    for record in _pages(store, query, page or max(2 * limit, 500)):
        if record.severity >= lowest:
            found.append(record)
            if len(found) >= limit:
                break
    return found


def _pages(store: LogStore, query: LogQuery, page: int) -> Iterator[LogRecord]:
    """Every record of `query` newest first, read `page` records at a time, moving `end` down;
    the records at a page's oldest instant are read again whole with the next page."""
    high = query.end_ns
    while high > query.start_ns:
        records = store.find_logs(replace(query, end_ns=high, limit=page, newest_first=True))
        if len(records) < page:
            yield from records
            return
        edge = records[-1].time_ns
        before = [r for r in records if r.time_ns != edge]
        if before:
            yield from before
            high = edge + 1
        else:  # a whole page at one instant: read that instant completely, then go on below
            yield from store.find_logs(
                replace(query, start_ns=edge, end_ns=edge + 1, limit=0, newest_first=True)
            )
            high = edge


def log_search_routes(storage: Storage, now_ns: NowNs = time.time_ns) -> list[Route]:
    def search(request: Request) -> Any:
        start_ns, end_ns = time_range(request, now_ns)
        params = request.query_params
        lowest = minimum_severity(params.get("severity", ""))
        limit = optional_int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        access = params.get("access", "false").lower()
        if access not in ("true", "false"):
            raise ParamError("parameter access must be true or false")
        text = params.get("q", "")
        trace = params.get("trace", "")
        query = LogQuery(
            trace_id=parse_trace_id(trace, "trace") if trace else "",
            service=params.get("service", ""),
            start_ns=start_ns,
            end_ns=end_ns,
            body_contains=(text,) if text else (),
            access=None if access == "true" else False,
        )
        return [log_json(r) for r in newest_logs(storage.logs, query, lowest, limit)]

    handle = threaded(
        search,
        lambda data: logs_response({"data": data}),
        lambda error: JSONResponse({"error": str(error)}, status_code=status_of(error)),
        notes=WARNINGS,
    )
    return [Route("/api/meshscope/logs", handle, methods=["GET"])]
