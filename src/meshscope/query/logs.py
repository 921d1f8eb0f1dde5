"""Log questions: the logs of a trace (the last step of metrics -> traces -> logs)."""

from __future__ import annotations

from meshscope.model.logs import LogRecord
from meshscope.store.base import LogQuery, LogStore


def trace_logs(
    logs: LogStore, trace_id: str, include_access: bool = False, limit: int = 0
) -> list[LogRecord]:
    """The application logs correlated with `trace_id`, oldest first (in the order logged),
    at most `limit` (0: all). Access logs derived from the trace's calls are left out unless
    asked for."""
    if not trace_id:
        return []
    access = None if include_access else False
    return logs.find_logs(LogQuery(trace_id=trace_id, access=access, limit=limit))
