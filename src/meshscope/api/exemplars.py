"""Prometheus' `GET|POST /api/v1/query_exemplars` over the span metrics (query/exemplars.py).

Parameters `query` (PromQL), `start` and `end` (RFC 3339 or unix seconds; default the last
hour); answer `{"status": "success", "data": [{"seriesLabels": {...}, "exemplars":
[{"labels": {"trace_id", "span_id"}, "value": "<string>", "timestamp": <unix s>}]}]}` as
Prometheus gives it, so Grafana shows exemplars on span-metric panels. Bad parameters and
unparsable queries are 400 `bad_data`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from meshscope.api.envelope import FastJSONResponse
from meshscope.api.handlers import WARNINGS, threaded
from meshscope.api.params import ParamError
from meshscope.api.prometheus import parse_time, refusal
from meshscope.query.exemplars import query_exemplars
from meshscope.query.promql.values import PromQLError, format_value
from meshscope.store.base import TraceStore

HOUR_MS = 3_600_000


def exemplar_routes(traces: TraceStore, now_ns: Callable[[], int] = time.time_ns) -> list[Route]:
    def answer(params: dict[str, list[str]], _: Request) -> list[dict[str, Any]]:
        query = (params.get("query") or [""])[0]
        if not query:
            raise ParamError('invalid parameter "query": it is required')
        end_ms = parse_time(params["end"][0], "end") if params.get("end") else now_ns() // 10**6
        start_text = (params.get("start") or [""])[0]
        start_ms = parse_time(start_text, "start") if start_text else end_ms - HOUR_MS
        if end_ms < start_ms:
            raise ParamError('invalid parameter "end": end timestamp must not be before start')
        found = query_exemplars(traces, query, start_ms * 10**6, end_ms * 10**6)
        return [
            {
                "seriesLabels": series.labels,
                "exemplars": [
                    {"labels": labels, "value": format_value(value), "timestamp": t_ns / 1e9}
                    for labels, value, t_ns in series.exemplars
                ],
            }
            for series in found
        ]

    def ok(data: Any) -> Response:
        return FastJSONResponse({"status": "success", "data": data})

    handle = threaded(answer, ok, refusal, (ParamError, PromQLError), form=True, notes=WARNINGS)
    return [Route("/api/v1/query_exemplars", handle, methods=["GET", "POST"])]
