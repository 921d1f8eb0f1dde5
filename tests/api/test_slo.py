"""SLO routes over known span metrics (tests/query/slo_data): meshscope's JSON and the
Prometheus alerting views (`/api/v1/rules`, `/api/v1/alerts`) field by field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.slo import slo_routes
from meshscope.app import build
from meshscope.config import load_config
from meshscope.query.slo import LATENCY, Slo
from tests.query.slo_data import CALLS_PER_MINUTE, MINUTE, MINUTES

DAY = 1440 * MINUTE
SLOS = (
    Slo("api-availability", "api", 0.99, DAY),
    Slo("api-latency", "api", 0.99, 7 * DAY, sli=LATENCY, threshold_ms=200, operation="GET /"),
)


class Clock:
    now_ns = 0


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[TestClient, int]]:
    from tests.query.slo_data import load

    storage, start = load()
    Clock.now_ns = start + 450 * MINUTE  # the burst: page and ticket both fire

    with TestClient(Starlette(routes=slo_routes(storage.metrics, SLOS, lambda: Clock.now_ns))) as c:
        yield c, start


def _json(client: TestClient, path: str, params: Any = None) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_meshscope_slos_at_a_given_time(client: tuple[TestClient, int]) -> None:
    http, start = client
    at_ms = (start + MINUTES * MINUTE) // 10**6
    data = _json(http, "/api/meshscope/slos", {"time": at_ms})["data"]
    assert data["time"] == at_ms
    first, second = data["slos"]
    bad, total = 360 * 8 + 30 * 30, MINUTES * CALLS_PER_MINUTE
    assert {k: first[k] for k in ("name", "service", "operation", "sli", "thresholdMs")} == {
        "name": "api-availability", "service": "api", "operation": None,
        "sli": "availability", "thresholdMs": None,
    }  # fmt: skip
    assert (first["objective"], first["window"], first["state"]) == (0.99, "1d", "ok")
    assert first["value"] == pytest.approx(1 - bad / total)
    assert first["events"] == {"total": total, "bad": bad, "good": total - bad}
    budget = first["errorBudget"]
    assert budget["total"] == pytest.approx(0.01)
    assert budget["allowedBadEvents"] == pytest.approx(0.01 * total)
    assert budget["consumed"] == pytest.approx(bad / (0.01 * total))
    assert budget["remaining"] == pytest.approx(1 - bad / (0.01 * total))
    assert budget["remainingBadEvents"] == pytest.approx(0.01 * total - bad)
    page, ticket = first["burnRates"]
    assert (page["severity"], page["longWindow"], page["shortWindow"]) == ("page", "1h", "5m")
    assert (ticket["severity"], ticket["longWindow"], ticket["shortWindow"]) == (
        "ticket", "6h", "30m",
    )  # fmt: skip
    assert (page["threshold"], ticket["threshold"]) == (14.4, 6.0)
    assert page["long"] == pytest.approx(900 / 6000 / 0.01) and page["short"] == 0
    assert not page["firing"] and not ticket["firing"]
    assert first["traces"] == {"service": "api", "status": "error"}
    assert second["window"] == "7d" and second["thresholdMs"] == 200
    # Bad is slower than 200 ms: 200 ms + 1 ns and slower (Jaeger's minDuration is inclusive).
    assert second["traces"] == {
        "service": "api", "operation": "GET /", "minDuration": "200.000001ms",
    }  # fmt: skip


def test_meshscope_slos_default_to_now(client: tuple[TestClient, int]) -> None:
    http, _ = client
    data = _json(http, "/api/meshscope/slos")["data"]
    assert data["time"] == Clock.now_ns // 10**6
    assert [s["state"] for s in data["slos"]] == ["page", "page"]


@pytest.mark.parametrize("value", ["soon", "-5", "1.5"])
def test_bad_time_is_a_400(client: tuple[TestClient, int], value: str) -> None:
    response = client[0].get("/api/meshscope/slos", params={"time": value})
    assert response.status_code == 400
    assert "time" in response.json()["error"]


def test_rules_in_prometheus_shape(client: tuple[TestClient, int]) -> None:
    body = _json(client[0], "/api/v1/rules")
    assert body["status"] == "success"
    groups = body["data"]["groups"]
    assert [g["name"] for g in groups] == ["api-availability", "api-latency"]
    group = groups[0]
    assert group["file"] == "meshscope-slos"
    assert (group["interval"], group["limit"]) == (60, 0)
    evaluated = datetime.fromtimestamp(Clock.now_ns // 10**9, UTC)
    assert group["lastEvaluation"] == evaluated.strftime("%Y-%m-%dT%H:%M:%SZ")
    page, ticket = group["rules"]
    assert set(page) == {
        "state", "name", "query", "duration", "keepFiringFor", "labels", "annotations",
        "health", "evaluationTime", "lastEvaluation", "type", "alerts",
    }  # fmt: skip
    assert (page["type"], page["health"], page["state"]) == ("alerting", "ok", "firing")
    assert (page["name"], ticket["name"]) == ("ErrorBudgetBurnPage", "ErrorBudgetBurnTicket")
    assert page["duration"] == 0 and isinstance(page["evaluationTime"], float)
    assert page["labels"] == {
        "severity": "page", "slo": "api-availability", "service": "api", "sli": "availability",
    }  # fmt: skip
    assert page["query"] == (
        '(sum(rate(calls_total{service_name="api",span_kind="SPAN_KIND_SERVER",'
        'status_code="STATUS_CODE_ERROR"}[1h])) / sum(rate(calls_total{service_name="api",'
        'span_kind="SPAN_KIND_SERVER"}[1h]))) > (14.4 * 0.01) and '
        '(sum(rate(calls_total{service_name="api",span_kind="SPAN_KIND_SERVER",'
        'status_code="STATUS_CODE_ERROR"}[5m])) / sum(rate(calls_total{service_name="api",'
        'span_kind="SPAN_KIND_SERVER"}[5m]))) > (14.4 * 0.01)'
    )
    assert 'le="200"' in groups[1]["rules"][0]["query"]
    assert "duration_milliseconds_count" in groups[1]["rules"][0]["query"]
    [alert] = page["alerts"]
    assert alert["state"] == "firing"
    assert float(alert["value"]) == pytest.approx((30 * 8 + 30 * 30) / 6000 / 0.01)
    assert alert["value"] == f"{float(alert['value']):.10e}"
    assert alert["labels"]["alertname"] == "ErrorBudgetBurnPage"
    assert alert["annotations"]["traces"] == "/#/traces?service=api&status=error"
    assert "14.4x" in alert["annotations"]["summary"]


def test_rules_filters(client: tuple[TestClient, int]) -> None:
    http = client[0]
    assert _json(http, "/api/v1/rules", {"type": "record"})["data"] == {"groups": []}
    groups = _json(http, "/api/v1/rules", {"type": "alert", "exclude_alerts": "true"})
    assert all("alerts" not in r for g in groups["data"]["groups"] for r in g["rules"])
    named = _json(http, "/api/v1/rules", {"rule_group[]": "api-latency"})["data"]["groups"]
    assert [g["name"] for g in named] == ["api-latency"]
    for params in ({"type": "alerts"}, {"exclude_alerts": "maybe"}):
        response = http.get("/api/v1/rules", params=params)
        assert response.status_code == 400
        body = response.json()
        assert (body["status"], body["errorType"]) == ("error", "bad_data")
        assert next(iter(params)) in body["error"]


def test_alerts_in_prometheus_shape(client: tuple[TestClient, int]) -> None:
    alerts = _json(client[0], "/api/v1/alerts")["data"]["alerts"]
    assert [(a["labels"]["slo"], a["labels"]["severity"]) for a in alerts] == [
        ("api-availability", "page"), ("api-availability", "ticket"),
        ("api-latency", "page"), ("api-latency", "ticket"),
    ]  # fmt: skip
    first = alerts[0]
    assert set(first) == {"labels", "annotations", "state", "activeAt", "value"}
    assert first["activeAt"].endswith("Z") and first["state"] == "firing"
    assert alerts[2]["labels"]["operation"] == "GET /"


def test_quiet_moments_have_no_alerts(client: tuple[TestClient, int]) -> None:
    saved = Clock.now_ns
    Clock.now_ns = client[1] + 60 * MINUTE
    try:
        assert _json(client[0], "/api/v1/alerts")["data"]["alerts"] == []
        rules = _json(client[0], "/api/v1/rules")["data"]["groups"][0]["rules"]
        assert [(r["state"], r["alerts"]) for r in rules] == [("inactive", []), ("inactive", [])]
    finally:
        Clock.now_ns = saved


def test_build_serves_the_configured_slos(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage: {kind: memory}\nslos:\n  - {service: api, objective: 0.999}\n")
    app = build(load_config(path, env={}))
    try:
        http = TestClient(app.ui)
        [slo] = _json(http, "/api/meshscope/slos")["data"]["slos"]
        assert (slo["name"], slo["state"], slo["value"], slo["window"]) == (
            "api-availability", "ok", None, "30d",
        )  # fmt: skip
        [group] = _json(http, "/api/v1/rules")["data"]["groups"]
        assert [r["state"] for r in group["rules"]] == ["inactive", "inactive"]
        assert _json(http, "/api/v1/alerts")["data"] == {"alerts": []}
    finally:
        app.storage.close()
