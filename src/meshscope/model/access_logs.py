"""Access logs: one log record per call between services, like a mesh proxy's access log."""

from __future__ import annotations

from meshscope.model.attributes import AttrValue
from meshscope.model.calls import Call
from meshscope.model.logs import ACCESS_LOG_TYPE, LOG_TYPE_KEY, LogRecord, Severity

SOURCE_KEY = "source.service"
TARGET_KEY = "destination.service"


def access_log(call: Call) -> LogRecord:
    duration_ms = call.duration_ns / 1e6
    attributes: dict[str, AttrValue] = {
        LOG_TYPE_KEY: ACCESS_LOG_TYPE,
        SOURCE_KEY: call.source,
        TARGET_KEY: call.target,
        "duration_ms": duration_ms,
        "error": call.failed,
    }
    if call.status_code:
        attributes["http.response.status_code"] = call.status_code
    if call.method:
        attributes["http.request.method"] = call.method
    if call.path:
        attributes["url.path"] = call.path
    if call.connection_type:
        attributes["connection_type"] = call.connection_type
    request = " ".join(part for part in (call.method, call.path) if part) or "-"
    status = str(call.status_code) if call.status_code else ("error" if call.failed else "ok")
    return LogRecord(
        time_ns=call.time_ns,
        body=f"{call.source} -> {call.target} {request} {status} {duration_ms:.3f}ms",
        service=call.target,
        severity=Severity.ERROR if call.failed else Severity.INFO,
        trace_id=call.trace_id,
        span_id=call.span_id,
        attributes=attributes,
    )
