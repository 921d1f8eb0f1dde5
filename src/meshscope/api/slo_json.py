"""JSON shapes of evaluated SLOs: meshscope's own, and Prometheus' alerting rules and alerts
(`/api/v1/rules`, `/api/v1/alerts`, as `web/api/v1` writes them) for Grafana.

Each SLO is one rule group holding its two burn-rate alerting rules (page, ticket). Rules have
no `for` (duration 0: the short window is what keeps a past burst from firing), so an alert is
`firing` or absent, never `pending`; without kept state, `activeAt` is the evaluation time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from meshscope.api.params import rfc3339
from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.model.spans import SpanKind, StatusCode
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION
from meshscope.query.promql.values import format_le
from meshscope.query.slo import AVAILABILITY, Burn, Slo, SloStatus

RULES_FILE = "meshscope-slos"
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(ns: int) -> str:
    """`30d`, `1h`, `5m`: the largest unit (at most days) that divides the duration."""
    seconds = ns // 10**9
    unit, size = next((u, s) for u, s in _UNITS if seconds % s == 0)
    return f"{seconds // size}{unit}"


def trace_params(slo: Slo) -> dict[str, str]:
    """Query of the UI's trace search for the SLO's bad events."""
    params = {"service": slo.service} | ({"operation": slo.operation} if slo.operation else {})
    if slo.sli == AVAILABILITY:
        return params | {"status": "error"}
    # Bad is slower than the threshold; Jaeger's minDuration is "at least", so the threshold
    # plus 1 ns (it was the threshold: the link showed the good events at it too).
    first_bad = round((slo.threshold_ms or 0.0) * 10**6) + 1
    return params | {"minDuration": f"{first_bad // 10**6}.{first_bad % 10**6:06d}ms"}


def status_json(status: SloStatus) -> dict[str, Any]:
    slo, events = status.slo, status.events
    return {
        "name": slo.name,
        "service": slo.service,
        "operation": slo.operation or None,
        "sli": slo.sli,
        "thresholdMs": slo.threshold_ms,
        "objective": slo.objective,
        "window": duration_text(slo.window_ns),
        "state": status.state,
        "value": status.sli,
        "events": {"total": events.total, "bad": events.bad, "good": events.total - events.bad},
        "errorBudget": {
            "total": slo.budget,
            "consumed": status.budget_consumed,
            "remaining": status.budget_remaining,
            "allowedBadEvents": status.budget_events,
            "remainingBadEvents": status.budget_events - events.bad,
        },
        "burnRates": [
            {
                "severity": b.alert.severity,
                "longWindow": duration_text(b.alert.long_ns),
                "shortWindow": duration_text(b.alert.short_ns),
                "threshold": b.alert.factor,
                "long": b.long_rate,
                "short": b.short_rate,
                "firing": b.firing,
            }
            for b in status.burns
        ],
        "traces": trace_params(slo),
    }


def bad_ratio_promql(slo: Slo, window: str) -> str:
    """The PromQL of the share of bad events over `window`, on the span metrics."""
    pairs = [("service_name", slo.service), ("span_kind", SpanKind.SERVER.otel_name)]
    if slo.operation:
        pairs.append(("span_name", slo.operation))

    def selector(name: str, *extra: tuple[str, str]) -> str:
        matchers = ",".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in [*pairs, *extra])
        return f"sum(rate({name}{{{matchers}}}[{window}]))"

    if slo.sli == AVAILABILITY:
        error = ("status_code", StatusCode.ERROR.otel_name)
        return f"({selector(CALLS, error)} / {selector(CALLS)})"
    le = ("le", format_le(slo.threshold_ms or 0.0))
    return f"(1 - {selector(DURATION + '_bucket', le)} / {selector(DURATION + '_count')})"


def _labels(slo: Slo, burn: Burn) -> dict[str, str]:
    labels = {"severity": burn.alert.severity, "slo": slo.name, "service": slo.service}
    labels |= {"sli": slo.sli} | ({"operation": slo.operation} if slo.operation else {})
    return labels | ({"tenant": slo.tenant} if slo.tenant != DEFAULT_TENANT else {})


def alert_name(burn: Burn) -> str:
    return f"ErrorBudgetBurn{burn.alert.severity.capitalize()}"


def _annotations(slo: Slo, burn: Burn) -> dict[str, str]:
    long, short = duration_text(burn.alert.long_ns), duration_text(burn.alert.short_ns)
    return {
        "summary": f"SLO {slo.name}: error budget burning over {burn.alert.factor:g}x "
        f"(over {long} and {short})",
        "description": f"burn rate {burn.long_rate:.4g} over {long}, {burn.short_rate:.4g} "
        f"over {short}; objective {slo.objective:g} over {duration_text(slo.window_ns)}",
        "traces": "/#/traces?" + urlencode(trace_params(slo)),
    }


def alert_json(status: SloStatus, burn: Burn) -> dict[str, Any]:
    return {
        "labels": {"alertname": alert_name(burn), **_labels(status.slo, burn)},
        "annotations": _annotations(status.slo, burn),
        "state": "firing",
        "activeAt": rfc3339(status.time_ns),
        "value": f"{burn.long_rate:.10e}",
    }


def rule_group_json(status: SloStatus, seconds: float, alerts: bool = True) -> dict[str, Any]:
    """One group per SLO with its burn-rate alerting rules; `seconds`: evaluation time."""
    slo, evaluated = status.slo, rfc3339(status.time_ns)
    rules = []
    for burn in status.burns:
        threshold = f"({burn.alert.factor:g} * {slo.budget:.6g})"
        long = bad_ratio_promql(slo, duration_text(burn.alert.long_ns))
        short = bad_ratio_promql(slo, duration_text(burn.alert.short_ns))
        rule: dict[str, Any] = {
            "state": "firing" if burn.firing else "inactive",
            "name": alert_name(burn),
            "query": f"{long} > {threshold} and {short} > {threshold}",
            "duration": 0,
            "keepFiringFor": 0,
            "labels": _labels(slo, burn),
            "annotations": _annotations(slo, burn),
            "health": "ok",
            "evaluationTime": seconds,
            "lastEvaluation": evaluated,
            "type": "alerting",
        }
        if alerts:
            rule["alerts"] = [alert_json(status, burn)] if burn.firing else []
        rules.append(rule)
    return {
        "name": slo.name,
        "file": RULES_FILE,
        "rules": rules,
        "interval": 60,
        "limit": 0,
        "evaluationTime": seconds,
        "lastEvaluation": evaluated,
    }
