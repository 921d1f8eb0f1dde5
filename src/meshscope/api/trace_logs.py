"""`GET /api/meshscope/traces/{trace_id}/logs`: the logs of a trace, oldest first.

Application logs only by default; `?access=true` adds the access logs derived from the
trace's calls. Each log: service, time (RFC 3339 and ns), severity, body, trace and span
ids, attributes and resource; the first `limit` (default 1000, at most 10,000). An unknown
trace has no logs (200, empty list); an id that is not 1-32 hex digits, or all zeros, is a
400 `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.api.handlers import status_of, threaded
from meshscope.api.params import ParamError, optional_int, rfc3339
from meshscope.api.params import trace_id as parse_trace_id
from meshscope.model.logs import LogRecord
from meshscope.query.logql.labels import level_name
from meshscope.query.logs import trace_logs
from meshscope.store.base import Storage

_TRUE = ("true", "1", "yes")
DEFAULT_LIMIT = 1000  # one trace's logs; a busy trace can log more: `limit` up to MAX_LIMIT
MAX_LIMIT = 10_000


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


def logs_response(payload: object) -> Response:
    """Records' JSON (`log_json`): bytes attributes as hex, NaN and infinite attributes as
    null (JSON has no such numbers; `json.dumps` refuses them)."""
    return Response(orjson.dumps(payload, default=_default), media_type="application/json")


def trace_logs_route(storage: Storage) -> Route:
    def work(request: Request) -> dict[str, Any]:
        trace_id = parse_trace_id(request.path_params["trace_id"], "trace_id")
        if not trace_id.strip("0"):
            # W3C: all zeros is no trace; logs without one would all match it.
            raise ParamError("parameter trace_id must not be all zeros (an invalid trace id)")
        limit = optional_int(request.query_params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        access = request.query_params.get("access", "").lower() in _TRUE
        records = trace_logs(storage.logs, trace_id, access, limit)
        return {"traceID": trace_id, "logs": [log_json(r) for r in records]}

    logs = threaded(
        work,
        logs_response,
        lambda error: Response(
            orjson.dumps({"error": str(error)}), status_of(error), media_type="application/json"
        ),
    )
    return Route("/api/meshscope/traces/{trace_id}/logs", logs, methods=["GET"])
