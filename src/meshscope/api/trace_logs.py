"""`GET /api/meshscope/traces/{trace_id}/logs`: the logs of a trace, oldest first.

Application logs only by default; `?access=true` adds the access logs derived from the
trace's calls. Each log: service, time (RFC 3339 and ns), severity, body, trace and span
ids, attributes and resource. An unknown trace has no logs (200, empty list); an id that is
not 1-32 hex digits is a 400 `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.api.params import ParamError, rfc3339
from meshscope.api.params import trace_id as parse_trace_id
from meshscope.model.logs import LogRecord
from meshscope.query.logql.labels import level_name
from meshscope.query.logs import trace_logs
from meshscope.store.base import Storage

_TRUE = ("true", "1", "yes")


def log_json(record: LogRecord) -> dict[str, Any]:
    return {
        "service": record.service,
        "time": rfc3339(record.time_ns),
        "timeUnixNano": str(record.time_ns),
        "severity": level_name(record.severity) or "unspecified",
        "severityNumber": int(record.severity),
        "severityText": record.severity_text,
        "body": record.body,
        "traceID": record.trace_id,
        "spanID": record.span_id,
        "access": record.is_access_log,
        "attributes": record.attributes,
        "resource": record.resource,
    }


def _default(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError


def trace_logs_route(storage: Storage) -> Route:
    async def logs(request: Request) -> Response:
        try:
            trace_id = parse_trace_id(request.path_params["trace_id"], "trace_id")
        except ParamError as error:
            return Response(orjson.dumps({"error": str(error)}), 400, media_type="application/json")
        access = request.query_params.get("access", "").lower() in _TRUE
        records = await run_in_threadpool(trace_logs, storage.logs, trace_id, access)
        data = {"traceID": trace_id, "logs": [log_json(r) for r in records]}
        return Response(orjson.dumps(data, default=_default), media_type="application/json")

    return Route("/api/meshscope/traces/{trace_id}/logs", logs, methods=["GET"])
