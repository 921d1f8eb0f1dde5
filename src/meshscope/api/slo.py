"""SLO routes: meshscope's `/api/meshscope/slos`, and Prometheus' alerting views
`/api/v1/rules` and `/api/v1/alerts` (what Grafana's alert list reads from a Prometheus data
source), all evaluated from the span metrics at request time. Routes only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.api.envelope import FastJSONResponse
from meshscope.api.handlers import WARNINGS, status_of, threaded
from meshscope.api.params import NS_PER_MS, ParamError, optional_int, scaled
from meshscope.api.prometheus import refusal
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

    def slos_work(request: Request) -> dict[str, Any]:
        at_ms = optional_int(request.query_params, "time", now_ns() // NS_PER_MS, 1)
        found, _ = evaluate(scaled(at_ms, NS_PER_MS))
        return {"time": at_ms, "slos": [status_json(s) for s in found]}

    def rules_work(request: Request) -> dict[str, Any]:
        params = request.query_params
        kind = params.get("type", "")
        if kind and kind not in RULE_TYPES:
            raise ParamError(f"invalid parameter type: {kind!r} is not alert or record")
        exclude = params.get("exclude_alerts", "false").lower()
        if exclude not in ("true", "false"):
            raise ParamError("invalid parameter exclude_alerts: must be true or false")
        found, seconds = evaluate(now_ns())
        groups = [] if kind == "record" else found
        names = set(params.getlist("rule_group[]"))
        data = [
            rule_group_json(s, seconds, alerts=exclude == "false")
            for s in groups
            if not names or s.slo.name in names
        ]
        return {"groups": data}

    def alerts_work(request: Request) -> dict[str, Any]:
        found, _ = evaluate(now_ns())
        return {"alerts": [alert_json(s, b) for s in found for b in s.burns if b.firing]}

    meshscope_slos = threaded(
        slos_work,
        lambda data: FastJSONResponse({"data": data}),
        lambda error: JSONResponse({"error": str(error)}, status_code=status_of(error)),
        notes=WARNINGS,
    )
    rules = threaded(rules_work, _prom_ok, refusal, notes=WARNINGS)
    alerts = threaded(alerts_work, _prom_ok, refusal, notes=WARNINGS)

    return [
        Route("/api/meshscope/slos", meshscope_slos, methods=["GET"]),
        Route("/api/v1/rules", rules, methods=["GET"]),
        Route("/api/v1/alerts", alerts, methods=["GET"]),
    ]


def _prom_ok(data: Any) -> JSONResponse:
    return FastJSONResponse({"status": "success", "data": data})
