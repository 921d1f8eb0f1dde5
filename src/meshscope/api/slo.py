"""SLO and alerting routes: meshscope's `/api/meshscope/slos`, and Prometheus' alerting views
`/api/v1/rules` and `/api/v1/alerts` (what Grafana's alert list reads from a Prometheus data
source): the SLOs' burn-rate rules evaluated from the span metrics at request time, and the
rule files' PromQL groups as their evaluator left them; the rule files' LogQL groups on the
Loki ruler's `/prometheus/api/v1/rules` and `/alerts` (what Grafana reads from a Loki data
source). Routes only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from meshscope.alerting.rule_files import Language
from meshscope.alerting.rules import GroupState, RuleEvaluator
from meshscope.api import rules_json
from meshscope.api.envelope import FastJSONResponse
from meshscope.api.handlers import WARNINGS, status_of, threaded
from meshscope.api.params import NS_PER_MS, ParamError, optional_int, scaled
from meshscope.api.prometheus import refusal
from meshscope.api.slo_json import alert_json, rule_group_json, status_json
from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.query.slo import Slo, SloStatus, evaluate_all
from meshscope.store.base import MetricStore
from meshscope.tenancy.context import visible_tenants

NowNs = Callable[[], int]
RULE_TYPES = ("alert", "record")


def slo_routes(
    metrics: MetricStore,
    slos: Sequence[Slo],
    now_ns: NowNs = time.time_ns,
    rules: RuleEvaluator | None = None,
) -> list[Route]:
    """The routes answer with no SLOs (empty lists) when none is configured. `rules`: the
    rule files' groups, beside the SLOs' (PromQL ones on `/api/v1/...`, LogQL ones on the
    Loki ruler's `/prometheus/api/v1/...`), as their evaluator last left them."""

    def rule_groups(language: Language) -> list[GroupState]:
        tenants = visible_tenants()
        found = rules.groups(language) if rules is not None else []
        return [g for g in found if (g.group.tenant or DEFAULT_TENANT) in tenants]

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
        kind, names, with_alerts = _rules_params(request)
        if kind == "record":
            return {"groups": []}
        found, seconds = evaluate(now_ns())
        data = [
            rule_group_json(s, seconds, alerts=with_alerts)
            for s in found
            if not names or s.slo.name in names
        ]
        data += [
            rules_json.rule_group_json(g, with_alerts)
            for g in rule_groups("promql")
            if not names or g.group.name in names
        ]
        return {"groups": data}

    def alerts_work(request: Request) -> dict[str, Any]:
        found, _ = evaluate(now_ns())
        data = [alert_json(s, b) for s in found for b in s.burns if b.firing]
        return {"alerts": data + _rule_alerts(rule_groups("promql"))}

    def loki_rules_work(request: Request) -> dict[str, Any]:
        kind, names, with_alerts = _rules_params(request)
        groups = [] if kind == "record" else rule_groups("logql")
        return {"groups": [rules_json.rule_group_json(g, with_alerts) for g in groups
                           if not names or g.group.name in names]}  # fmt: skip

    def loki_alerts_work(request: Request) -> dict[str, Any]:
        return {"alerts": _rule_alerts(rule_groups("logql"))}

    meshscope_slos = threaded(
        slos_work,
        lambda data: FastJSONResponse({"data": data}),
        lambda error: JSONResponse({"error": str(error)}, status_code=status_of(error)),
        notes=WARNINGS,
    )

    def prom(work: Callable[[Request], dict[str, Any]]) -> Any:
        return threaded(work, _prom_ok, refusal, notes=WARNINGS)

    return [
        Route("/api/meshscope/slos", meshscope_slos, methods=["GET"]),
        Route("/api/v1/rules", prom(rules_work), methods=["GET"]),
        Route("/api/v1/alerts", prom(alerts_work), methods=["GET"]),
        Route("/prometheus/api/v1/rules", prom(loki_rules_work), methods=["GET"]),
        Route("/prometheus/api/v1/alerts", prom(loki_alerts_work), methods=["GET"]),
    ]


def _rules_params(request: Request) -> tuple[str, set[str], bool]:
    """`type`, `rule_group[]` and whether alerts are wanted (not `exclude_alerts`)."""
    params = request.query_params
    kind = params.get("type", "")
    if kind and kind not in RULE_TYPES:
        raise ParamError(f"invalid parameter type: {kind!r} is not alert or record")
    exclude = params.get("exclude_alerts", "false").lower()
    if exclude not in ("true", "false"):
        raise ParamError("invalid parameter exclude_alerts: must be true or false")
    return kind, set(params.getlist("rule_group[]")), exclude == "false"


def _rule_alerts(groups: list[GroupState]) -> list[dict[str, Any]]:
    return [rules_json.alert_json(a) for g in groups for r in g.rules for a in r.alerts.values()]


def _prom_ok(data: Any) -> JSONResponse:
    return FastJSONResponse({"status": "success", "data": data})
