"""meshscope's alerting rules against Prometheus' own: the same rules and series are
evaluated minute by minute by `RuleEvaluator`, and what it fires (labels, annotations) at
every minute is handed to `promtool test rules` (Debian's Prometheus 2.42) as the expected
alerts, which promtool checks against its own evaluation: a difference in state, `for`,
`keep_firing_for`, labels, templates (with `{{-`/`-}}` trimming) or values fails the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from meshscope.alerting.rule_files import load_rule_files
from meshscope.alerting.rule_queries import rule_queries
from meshscope.alerting.rules import RuleEvaluator
from meshscope.model.metrics import MetricPoint
from meshscope.query.budget import QueryLimits
from meshscope.store.memory import MemoryStorage

PROMTOOL = shutil.which("promtool")
MINUTES = 40
RULES = """
groups:
  - name: agreement
    rules:
      - alert: HighErrorRatio
        expr: >-
          sum by (service) (rate(errors_total[5m]))
          / sum by (service) (rate(requests_total[5m])) > 0.1
        for: 3m
        labels: {severity: page, owner: "{{ $labels.service }}-team"}
        annotations:
          summary: "{{ $labels.service }}: {{ $value | humanizePercentage }}"
          value: "{{ $value }}"
          pretty: '{{ printf "%.3f" $value }} {{ $value | humanize }}'
      - alert: AnyErrors
        expr: sum by (service) (rate(errors_total[5m])) > 0
        keep_firing_for: 4m
        annotations: {rate: "{{ $value | humanize }}/s"}
      - alert: Slow
        expr: max by (service) (latency_seconds) > 0.5
        for: 1m
        annotations: {took: "{{ $value | humanizeDuration }}", raw: "{{ $value }}",
                      trimmed: "[ {{- $labels.service -}} ] at  {{- $value }}"}
"""


def _series() -> dict[str, list[float]]:
    """Per minute 0..MINUTES: cart fails 20 % of 100 calls/min in minutes 10-19; pay 8 % of
    50 throughout; cart's latency spikes in minutes 15-22."""
    cart_errors, total = [], 0.0
    for minute in range(MINUTES + 1):
        total += 20 if 10 <= minute < 20 else 0
        cart_errors.append(total)
    return {
        'requests_total{service="cart"}': [100.0 * m for m in range(MINUTES + 1)],
        'errors_total{service="cart"}': cart_errors,
        'requests_total{service="pay"}': [50.0 * m for m in range(MINUTES + 1)],
        'errors_total{service="pay"}': [4.0 * m for m in range(MINUTES + 1)],
        'latency_seconds{service="cart"}': [
            93784.0 if m == 18 else 0.75 if 15 <= m < 23 else 0.2 for m in range(MINUTES + 1)
        ],
    }


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (scripts/system-deps.sh)")
def test_promtool_agrees_with_every_minute_of_the_evaluation(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    storage = MemoryStorage()
    series = _series()
    for text, values in series.items():
        name, labels = text.split("{")
        key, value = labels.rstrip("}").split("=")
        storage.metrics.write_points([
            MetricPoint(name, ((key, value.strip('"')),), m * 60 * 10**9, value=v)
            for m, v in enumerate(values)
        ])  # fmt: skip
    groups = load_rule_files([str(rules)], "promql", 60 * 10**9, "alerting.rule_files")
    evaluator = RuleEvaluator(groups, rule_queries(storage, QueryLimits()))
    checks = []
    fired = {"HighErrorRatio": 0, "AnyErrors": 0, "Slow": 0}
    for minute in range(MINUTES + 1):
        evaluator.evaluate_due(minute * 60 * 10**9)
        for rule in evaluator.groups()[0].rules:
            firing = [a for a in rule.alerts.values() if a.state == "firing"]
            fired[rule.rule.name] += len(firing)
            checks.append({
                "eval_time": f"{minute}m",
                "alertname": rule.rule.name,
                "exp_alerts": [
                    {"exp_labels": {k: v for k, v in a.labels.items() if k != "alertname"},
                     "exp_annotations": a.annotations}
                    for a in sorted(firing, key=lambda a: sorted(a.labels.items()))
                ],
            })  # fmt: skip
    assert all(fired.values()), fired  # every rule fired at some minute: not vacuous
    assert any(not c["exp_alerts"] for c in checks)
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": s, "values": " ".join(repr(v) for v in values)}
                             for s, values in series.items()],
            "alert_rule_test": checks,
        }],
    }  # fmt: skip
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "test.yml")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "SUCCESS" in done.stdout
