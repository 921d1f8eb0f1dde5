"""JSON shapes of alerting rules from rule files, as Prometheus' `/api/v1/rules` and
`/api/v1/alerts` (and the Loki ruler's `/prometheus/api/v1/...`) show them."""

from __future__ import annotations

from typing import Any

from meshscope.alerting.rule_files import AlertRule
from meshscope.alerting.rules import Alert, GroupState, RuleState
from meshscope.api.params import rfc3339


def alert_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "state": alert.state,
        "activeAt": rfc3339(alert.active_at_ns),
        "value": f"{alert.value:.10e}",
    }
    if alert.keep_firing_since_ns:
        out["keepFiringSince"] = rfc3339(alert.keep_firing_since_ns)
    return out


def rule_json(state: RuleState, alerts: bool) -> dict[str, Any]:
    rule: AlertRule = state.rule
    out: dict[str, Any] = {
        "state": state.state,
        "name": rule.name,
        "query": rule.expr,
        "duration": rule.for_ns / 1e9,
        "keepFiringFor": rule.keep_firing_for_ns / 1e9,
        "labels": {name: t.text for name, t in rule.labels.items()},
        "annotations": {name: t.text for name, t in rule.annotations.items()},
        "health": state.health,
        "evaluationTime": state.evaluation_s,
        "lastEvaluation": rfc3339(state.last_evaluation_ns) if state.last_evaluation_ns
        else "0001-01-01T00:00:00Z",
        "type": "alerting",
    }  # fmt: skip
    if state.last_error:
        out["lastError"] = state.last_error
    if alerts:
        out["alerts"] = [alert_json(a) for a in state.alerts.values()]
    return out


def rule_group_json(state: GroupState, alerts: bool = True) -> dict[str, Any]:
    return {
        "name": state.group.name,
        "file": state.group.file,
        "rules": [rule_json(rule, alerts) for rule in state.rules],
        "interval": state.group.interval_ns / 1e9,
        "limit": state.group.limit,
        "evaluationTime": state.evaluation_s,
        "lastEvaluation": rfc3339(state.last_evaluation_ns) if state.last_evaluation_ns
        else "0001-01-01T00:00:00Z",
    }  # fmt: skip
