"""Alerting rules from rule files, evaluated as Prometheus' rule manager does, over real
stores with known data: PromQL over the span metrics of tests/query/slo_data (an error burst
in minutes 420-449), LogQL over the logs of tests/loki_data; states, `for`,
`keep_firing_for`, `limit`, templates, the API views, and delivery to a real Alertmanager."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.alerting.config import AlertingConfig, parse_alerting
from meshscope.alerting.notifier import AlertNotifier
from meshscope.alerting.rule_files import load_rule_files, prometheus_duration
from meshscope.alerting.rule_queries import rule_queries
from meshscope.alerting.rules import RuleEvaluator
from meshscope.api.slo import slo_routes
from meshscope.errors import ConfigError
from meshscope.ingest.loki import decode_loki_json
from meshscope.query.budget import QueryLimits
from meshscope.store.memory import MemoryStorage
from tests.alerting.test_notifier import EXTERNAL, alertmanager  # noqa: F401 (a fixture)
from tests.loki_data import LINES, T0, S, json_push
from tests.query.slo_data import MINUTE, load

ERROR_RATIO = (  # of the `api` service (`db` fails all the time)
    'sum by (service_name) (rate(calls_total{service_name="api", span_kind="SPAN_KIND_SERVER",'
    ' status_code="STATUS_CODE_ERROR"}[5m])) / sum by (service_name)'
    ' (rate(calls_total{service_name="api", span_kind="SPAN_KIND_SERVER"}[5m]))'
)
RULES = f"""
groups:
  - name: golden-signals
    interval: 30s
    rules:
      - alert: HighErrorRatio
        expr: '{ERROR_RATIO} > 0.2'
        for: 5m
        labels: {{severity: page, team: "{{{{ $labels.service_name }}}}-owners"}}
        annotations:
          summary: '{{{{ $labels.service_name }}}} fails {{{{ $value | humanizePercentage }}}}'
      - alert: AnyErrors
        expr: '{ERROR_RATIO} > 0'
        keep_firing_for: 10m
"""


def _rules(tmp_path: Path, text: str, name: str = "rules.yml", language: str = "promql") -> Any:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_rule_files([str(path)], language, 60 * 10**9, "alerting.rule_files")  # type: ignore[arg-type]


def _states(evaluator: RuleEvaluator) -> dict[str, list[tuple[str, str]]]:
    return {
        rule.rule.name: sorted((a.labels.get("service_name", ""), a.state)
                               for a in rule.alerts.values())
        for group in evaluator.groups() for rule in group.rules
    }  # fmt: skip


def test_alerts_go_pending_fire_and_resolve_as_prometheus(tmp_path: Path) -> None:
    storage, start = load()
    evaluator = RuleEvaluator(_rules(tmp_path, RULES), rule_queries(storage, QueryLimits()))
    at = [start + 400 * MINUTE]  # the slow burn: 8 % errors

    def evaluate(minute: int) -> dict[str, list[tuple[str, str]]]:
        at[0] = start + minute * MINUTE
        evaluator.evaluate_due(at[0])
        return _states(evaluator)

    assert evaluate(400) == {"HighErrorRatio": [], "AnyErrors": [("api", "firing")]}
    assert evaluate(423) == {"HighErrorRatio": [("api", "pending")],
                             "AnyErrors": [("api", "firing")]}  # fmt: skip
    assert evaluate(427)["HighErrorRatio"] == [("api", "pending")]  # 4 minutes: not yet
    assert evaluate(428)["HighErrorRatio"] == [("api", "firing")]
    (group,) = evaluator.groups()
    high = group.rules[0]
    (alert,) = high.alerts.values()
    assert alert.labels == {"alertname": "HighErrorRatio", "service_name": "api",
                            "severity": "page", "team": "api-owners"}  # fmt: skip
    assert alert.annotations == {"summary": "api fails 30%"}
    assert alert.active_at_ns == start + 423 * MINUTE
    assert alert.fired_at_ns == start + 428 * MINUTE
    assert high.health == "ok" and high.state == "firing"
    # The burst ends at minute 450; by 456 the 5 m rates are clean again: the page resolves,
    # AnyErrors is kept firing for 10 m from the first evaluation without it, as Prometheus.
    assert evaluate(452)["AnyErrors"] == [("api", "firing")]
    assert evaluate(456) == {"HighErrorRatio": [], "AnyErrors": [("api", "firing")]}
    kept = evaluator.groups()[0].rules[1]
    assert next(iter(kept.alerts.values())).keep_firing_since_ns == start + 456 * MINUTE
    assert evaluate(465)["AnyErrors"] == [("api", "firing")]
    assert evaluate(466)["AnyErrors"] == []


def test_a_group_is_evaluated_at_its_interval(tmp_path: Path) -> None:
    storage, start = load()
    evaluator = RuleEvaluator(_rules(tmp_path, RULES), rule_queries(storage, QueryLimits()))
    now = start + 430 * MINUTE
    due = evaluator.evaluate_due(now)
    assert due == now + 30 * 10**9
    assert evaluator.evaluate_due(now + 10 * 10**9) == due  # not due: not evaluated again
    assert evaluator.groups()[0].last_evaluation_ns == now


def test_failures_limits_and_duplicate_labels_are_rule_errors(tmp_path: Path) -> None:
    storage, start = load()
    text = """
    groups:
      - name: g
        limit: 1
        rules:
          - alert: TwoSeries
            expr: sum by (service_name) (rate(calls_total[5m])) > 0
          - alert: Same
            expr: >-
              label_replace(sum by (service_name) (rate(calls_total[5m])),
              "service_name", "x", "", "")
          - alert: Range
            expr: calls_total[5m]
    """
    evaluator = RuleEvaluator(_rules(tmp_path, text), rule_queries(storage, QueryLimits()))
    evaluator.evaluate_due(start + 430 * MINUTE)
    rules = {r.rule.name: r for r in evaluator.groups()[0].rules}
    assert rules["TwoSeries"].health == "err" and not rules["TwoSeries"].alerts
    assert rules["TwoSeries"].last_error == "exceeded limit of 1 with 2 alerts"
    assert "same labelset" in rules["Same"].last_error
    assert "instant vector or scalar" in rules["Range"].last_error


def test_logql_rules_alert_on_log_lines(tmp_path: Path) -> None:
    storage = MemoryStorage()
    storage.logs.write_logs(decode_loki_json(json_push(LINES)).batch.logs)
    text = """
    groups:
      - name: logs
        rules:
          - alert: ServerErrorsLogged
            expr: sum by (service_name) (count_over_time({env=~".+"} |= "status=50" [10m])) > 3
            annotations: {summary: "{{ $value }} 5xx lines from {{ $labels.service_name }}"}
    """
    evaluator = RuleEvaluator(_rules(tmp_path, text, language="logql"),
                              rule_queries(storage, QueryLimits()))  # fmt: skip
    now = T0 + 1200 * S
    evaluator.evaluate_due(now)
    (rule,) = evaluator.groups()[0].rules
    want = {}
    for service in ("cart", "pay", "web"):
        count = sum(1 for x in LINES if x.service == service and "status=50" in x.body
                    and now - 600 * S < x.time_ns <= now)  # fmt: skip
        if count > 3:
            want[service] = f"{count} 5xx lines from {service}"
    assert want and {a.labels["service_name"]: a.annotations["summary"]
                     for a in rule.alerts.values()} == want  # fmt: skip
    routes = slo_routes(storage.metrics, (), lambda: now, rules=evaluator)
    with TestClient(Starlette(routes=routes)) as client:
        loki = client.get("/prometheus/api/v1/rules").json()["data"]["groups"]
        prom = client.get("/api/v1/rules").json()["data"]["groups"]
        alerts = client.get("/prometheus/api/v1/alerts").json()["data"]["alerts"]
    assert [g["name"] for g in loki] == ["logs"] and prom == []
    assert loki[0]["rules"][0]["state"] == "firing" and len(alerts) == len(want)


def test_rules_and_alerts_routes_show_the_evaluator_state(tmp_path: Path) -> None:
    storage, start = load()
    evaluator = RuleEvaluator(_rules(tmp_path, RULES), rule_queries(storage, QueryLimits()))
    now = start + 425 * MINUTE
    evaluator.evaluate_due(now)
    with TestClient(Starlette(routes=slo_routes(storage.metrics, (), lambda: now,
                                                rules=evaluator))) as client:  # fmt: skip
        groups = client.get("/api/v1/rules").json()["data"]["groups"]
        alerts = client.get("/api/v1/alerts").json()["data"]["alerts"]
        bare = client.get("/api/v1/rules", params={"exclude_alerts": "true"}).json()
        other = client.get("/api/v1/rules", params={"rule_group[]": "x"}).json()
        record = client.get("/api/v1/rules", params={"type": "record"}).json()
    (group,) = groups
    assert group["name"] == "golden-signals" and group["interval"] == 30
    assert group["file"].endswith("rules.yml")
    high, anyone = group["rules"]
    assert high["state"] == "pending" and high["duration"] == 300 and high["health"] == "ok"
    assert high["labels"] == {"severity": "page", "team": "{{ $labels.service_name }}-owners"}
    assert high["query"].endswith("> 0.2") and high["type"] == "alerting"
    assert high["alerts"][0]["state"] == "pending"
    assert float(high["alerts"][0]["value"]) == pytest.approx(0.3)
    assert anyone["state"] == "firing" and anyone["keepFiringFor"] == 600
    assert sorted(a["state"] for a in alerts) == ["firing", "pending"]
    assert "alerts" not in bare["data"]["groups"][0]["rules"][0]
    assert other["data"]["groups"] == [] and record["data"]["groups"] == []


def test_firing_rules_reach_alertmanager(tmp_path: Path, alertmanager: str) -> None:  # noqa: F811
    now = time.time_ns() // MINUTE * MINUTE
    storage, _ = load(start_ns=now - 440 * MINUTE)  # minute 440: inside the burst
    evaluator = RuleEvaluator(_rules(tmp_path, RULES), rule_queries(storage, QueryLimits()))
    evaluator.evaluate_due(now - 6 * MINUTE)
    evaluator.evaluate_due(now)
    config = AlertingConfig(alertmanagers=(alertmanager,), interval_ns=3600 * 10**9)
    notifier = AlertNotifier(storage.metrics, (), config, EXTERNAL, lambda: now, rules=evaluator)
    notifier.evaluate_and_send()
    got = httpx.get(alertmanager + "/api/v2/alerts",
                    params={"filter": 'alertname="HighErrorRatio"'}).json()  # fmt: skip
    (alert,) = got
    assert alert["labels"]["team"] == "api-owners"
    assert alert["generatorURL"] == f"{EXTERNAL}/#/traces?service=api"
    assert alert["startsAt"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now / 1e9)))
    notifier.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups: [{name: g, rules: [{record: r, expr: up}]}]", "recording rules are not"),
        ("groups: [{name: g, rules: [{alert: A, expr: 'up +'}]}]", "expr: parse error"),
        ("groups: [{name: g, rules: [{alert: A, expr: '" + "(" * 200 + "up" + ")" * 200 + "'}]}]",
         "nests deeper than 150 levels"),
        ("groups: [{name: g, rules: [{alert: A, expr: up, for: 5x}]}]", "for must be a duration"),
        ("groups: [{name: g, rules: [{alert: A, expr: up, color: red}]}]", "unknown key 'color'"),
        ("groups: [{name: g, rules: [{alert: 'A B', expr: up}]}]", "alert must be a name"),
        ("groups: [{name: g, rules: [{alert: A, expr: up, annotations: {s: '{{ .x }}'}}]}]",
         "unsupported template action {{ .x }}"),
        ("groups: [{name: g, rules: [{alert: A, expr: up, labels: {a-b: x}}]}]",
         "invalid label name 'a-b'"),
        ("groups: [{name: g, interval: 0s, rules: []}]", "interval must be a duration"),
        ("groups: [{name: g, rules: []}, {name: g, rules: []}]", "group name 'g' repeated"),
        ("groups: [{rules: []}]", "a group needs a name"),
        ("rules: []", "one key, groups"),
        ("groups: [{name: g", "not YAML"),
    ],
)  # fmt: skip
def test_bad_rule_files_are_refused_naming_the_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _rules(tmp_path, text)
    assert message in str(info.value) and "rules.yml" in str(info.value)


def test_loki_rule_files_need_metric_queries_and_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a log query"):
        _rules(tmp_path, 'groups: [{name: g, rules: [{alert: A, expr: "{a=\\"b\\"}"}]}]',
               language="logql")  # fmt: skip
    with pytest.raises(ConfigError, match=r"cannot read alerting\.rule_files file"):
        parse_alerting({"rule_files": [str(tmp_path / "missing.yml")]})
    (tmp_path / "r.yml").write_text(RULES)
    (tmp_path / "l.yml").write_text(
        "groups: [{name: l, rules: [{alert: A, expr: 'count_over_time({a=\"b\"}[1m]) > 1'}]}]"
    )
    config = parse_alerting({"interval": "2m", "rule_files": [str(tmp_path / "r.yml")],
                             "loki_rule_files": [str(tmp_path / "l.yml")]})  # fmt: skip
    assert [(g.name, g.language, g.interval_ns) for g in config.rule_groups] == [
        ("golden-signals", "promql", 30 * 10**9), ("l", "logql", 120 * 10**9)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "ns"),
    [("5m", 300 * 10**9), ("1h30m", 5400 * 10**9), ("1d", 86400 * 10**9), ("0", 0),
     ("250ms", 250 * 10**6), ("1w2d", 9 * 86400 * 10**9), ("1m1h", None), ("1.5m", None),
     ("", None), ("5", None)],
)  # fmt: skip
def test_prometheus_durations(text: str, ns: int | None) -> None:
    assert prometheus_duration(text) == ns


def test_serve_evaluates_the_rule_files_in_the_background(tmp_path: Path) -> None:
    from meshscope.app import build
    from meshscope.config import Config, PipelineConfig, StorageConfig

    groups = _rules(tmp_path, RULES)
    config = Config(
        storage=StorageConfig(kind="memory"), pipeline=PipelineConfig(ingest_workers=0),
        alerting=AlertingConfig(rule_groups=groups),
    )  # fmt: skip
    app = build(config)
    assert app.rules is not None and app.notifier is None  # no Alertmanager: nothing to send
    app.start()
    try:
        deadline = time.monotonic() + 30
        with TestClient(app.ui) as client:
            while True:
                (group,) = client.get("/api/v1/rules").json()["data"]["groups"]
                if group["lastEvaluation"] != "0001-01-01T00:00:00Z" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
    finally:
        app.stop()
    assert [r["health"] for r in group["rules"]] == ["ok", "ok"]  # an empty store: no alerts
    assert [r["state"] for r in group["rules"]] == ["inactive", "inactive"]


def test_a_reload_keeps_the_state_of_unchanged_rules(tmp_path: Path) -> None:
    """As Prometheus' reload: an unchanged rule keeps its alerts (a pending one stays
    pending since when it was); a changed or new one starts over; a file that no longer loads
    leaves the rules as they were."""
    storage, start = load()
    path = tmp_path / "rules.yml"
    path.write_text(RULES)
    config = parse_alerting({"rule_files": [str(path)]})
    evaluator = RuleEvaluator(config.rule_groups, rule_queries(storage, QueryLimits()),
                              load=config.load_rules)  # fmt: skip
    evaluator.evaluate_due(start + 423 * MINUTE)
    assert _states(evaluator)["HighErrorRatio"] == [("api", "pending")]
    changed = RULES.replace("keep_firing_for: 10m", "keep_firing_for: 20m").replace(
        "      - alert: AnyErrors\n        expr: '", "      - alert: AnyErrors\n        expr: '2 * "
    )
    path.write_text(changed + "      - alert: Always\n        expr: vector(1)\n")
    assert evaluator.reload()
    rules = {r.rule.name: r for r in evaluator.groups()[0].rules}
    assert list(rules) == ["HighErrorRatio", "AnyErrors", "Always"]
    (pending,) = rules["HighErrorRatio"].alerts.values()
    assert pending.state == "pending" and pending.active_at_ns == start + 423 * MINUTE
    assert rules["AnyErrors"].alerts == {} and rules["AnyErrors"].health == "unknown"
    assert rules["Always"].health == "unknown"
    evaluator.evaluate_due(start + 428 * MINUTE)  # 5 minutes since 423: fires, as before
    assert _states(evaluator)["HighErrorRatio"] == [("api", "firing")]
    path.write_text("groups: [{name: broken")
    assert not evaluator.reload()
    assert [r.rule.name for r in evaluator.groups()[0].rules] == ["HighErrorRatio", "AnyErrors",
                                                                   "Always"]  # fmt: skip
    assert not RuleEvaluator((), {}).reload()  # no files named: nothing to read
