"""`meshscope serve` with alerting rule files: the rules are evaluated in the background and
shown on `/api/v1/rules` and the Loki ruler's `/prometheus/api/v1/rules`; SIGHUP reads the
files again (a rule added appears), and a file broken meanwhile leaves the rules as they were
and the server up."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_durability import Ports, serve
from tests.serving import wait_for

RULES = """groups:
  - name: golden
    interval: 1s
    rules:
      - alert: Always
        expr: vector(1)
        labels: {severity: ticket}
"""


def _groups(port: int, path: str) -> list[dict[str, Any]]:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    assert response.status_code == 200, response.text
    groups: list[dict[str, Any]] = response.json()["data"]["groups"]
    return groups


def test_rules_run_in_serve_and_reload_on_sighup(tmp_path: Path) -> None:
    rules, logs = tmp_path / "rules.yml", tmp_path / "logs.yml"
    rules.write_text(RULES)
    logs.write_text("groups: [{name: logs, rules: [{alert: Quiet, expr: "
                    "'sum(count_over_time({service_name=\"x\"}[1m])) > 0'}]}]\n")  # fmt: skip
    config = tmp_path / "meshscope.yaml"
    config.write_text("alerting:\n  rule_files: [rules.yml]\n  loki_rule_files: [logs.yml]\n")
    ports = Ports()
    with serve(tmp_path / "db.duckdb", ports, config=config) as proc:

        def firing() -> bool:
            (group,) = _groups(ports.ui, "/api/v1/rules")
            return bool(group["rules"][0]["state"] == "firing")

        assert wait_for(firing)
        (logs_group,) = _groups(ports.ui, "/prometheus/api/v1/rules")
        assert logs_group["name"] == "logs"
        rules.write_text(RULES + "      - alert: AlsoAlways\n        expr: vector(2)\n")
        proc.send_signal(signal.SIGHUP)

        def reloaded() -> list[str]:
            (group,) = _groups(ports.ui, "/api/v1/rules")
            names = [rule["name"] for rule in group["rules"]]
            return names if len(names) == 2 else []

        assert wait_for(reloaded) == ["Always", "AlsoAlways"]
        (group,) = _groups(ports.ui, "/api/v1/rules")
        assert group["rules"][0]["state"] == "firing"  # kept its alert across the reload
        rules.write_text("groups: [{name: broken")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        assert proc.poll() is None
        (group,) = _groups(ports.ui, "/api/v1/rules")
        assert [rule["name"] for rule in group["rules"]] == ["Always", "AlsoAlways"]
    log = (tmp_path / "server.log").read_text()
    assert "alerting rules reloaded" in log and "alerting rules not reloaded" in log
