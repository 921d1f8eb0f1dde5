"""SLO routes: meshscope's `/api/meshscope/slos`, and Prometheus' alerting views
`/api/v1/rules` and `/api/v1/alerts` (what Grafana's alert list reads from a Prometheus data
source), all evaluated from the span metrics at request time. Routes only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.api.params import NS_PER_MS, ParamError, optional_int, scaled
from meshscope.api.slo_json import alert_json, rule_group_json, status_json
from meshscope.query.slo import Slo, SloStatus, evaluate_all
from meshscope.store.base import MetricStore
from meshscope.tenancy.context import visible_tenants

NowNs = Callable[[], int]
RULE_TYPES = ("alert", "record")


def slo_routes(
    metrics: MetricStore, slos: Sequence[Slo], now_ns: NowNs = time.time_ns
) -> list[Route]:
    """The routes answer with no SLOs (empty lists) when none is configured."""

    def evaluate(time_ns: int) -> tuple[list[SloStatus], float]:
        started = time.perf_counter()
        tenants = visible_tenants()  # with tenancy on, the request's tenant's SLOs only
        found = evaluate_all(metrics, [slo for slo in slos if slo.tenant in tenants], time_ns)
        return found, time.perf_counter() - started

    async def meshscope_slos(request: Request) -> Response:
        try:
            at_ms = optional_int(request.query_params, "time", now_ns() // NS_PER_MS, 1)
        except ParamError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        at_ns = scaled(at_ms, NS_PER_MS)
        found, _ = await run_in_threadpool(evaluate, at_ns)
        data = {"time": at_ms, "slos": [status_json(s) for s in found]}
        return JSONResponse({"data": data})

    async def rules(request: Request) -> Response:
        params = request.query_params
        kind = params.get("type", "")
        if kind and kind not in RULE_TYPES:
            return _prom_error(f"invalid parameter type: {kind!r} is not alert or record")
        exclude = params.get("exclude_alerts", "false").lower()
        if exclude not in ("true", "false"):
            return _prom_error("invalid parameter exclude_alerts: must be true or false")
        found, seconds = await run_in_threadpool(evaluate, now_ns())
        groups = [] if kind == "record" else found
        names = set(params.getlist("rule_group[]"))
        data = [
            rule_group_json(s, seconds, alerts=exclude == "false")
            for s in groups
            if not names or s.slo.name in names
        ]
        return _prom_ok({"groups": data})

    async def alerts(request: Request) -> Response:
        found, _ = await run_in_threadpool(evaluate, now_ns())
        firing = [alert_json(s, b) for s in found for b in s.burns if b.firing]
        return _prom_ok({"alerts": firing})

    return [
        Route("/api/meshscope/slos", meshscope_slos, methods=["GET"]),
        Route("/api/v1/rules", rules, methods=["GET"]),
        Route("/api/v1/alerts", alerts, methods=["GET"]),
    ]


def _prom_ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _prom_error(message: str) -> JSONResponse:
    body = {"status": "error", "errorType": "bad_data", "error": message}
    return JSONResponse(body, status_code=400)
