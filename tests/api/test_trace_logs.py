"""`GET /api/meshscope/traces/{id}/logs`: the logs of a trace, oldest first, with access logs
on request (route-level, Starlette TestClient over a memory store)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from meshscope.api.loki import loki_query_routes
from meshscope.ingest.loki import decode_loki_json
from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, json_push


@pytest.fixture
def client() -> TestClient:
    storage = MemoryStorage()
    storage.logs.write_logs(decode_loki_json(json_push(LINES)).batch.logs)
    traced = LINES[4]
    call = Call(
        "web",
        traced.service,
        traced.time_ns - 5,
        True,
        2_000_000,
        1_500_000,
        status_code=503,
        method="GET",
        path="/cart",
        trace_id=traced.trace_id,
        span_id="00000000000000aa",
    )
    storage.logs.write_logs([access_log(call)])
    return TestClient(Starlette(routes=loki_query_routes(storage)))


def test_logs_of_a_trace_oldest_first(client: TestClient) -> None:
    traced = LINES[4]
    assert traced.level == "debug"
    response = client.get(f"/api/meshscope/traces/{traced.trace_id.upper()}/logs")
    assert response.status_code == 200
    body = response.json()
    assert body["traceID"] == traced.trace_id
    (log,) = body["logs"]
    assert log == {
        "service": traced.service,
        "time": log["time"],
        "timeUnixNano": str(traced.time_ns),
        "severity": "debug",  # LINES[4] logs at debug
        "severityNumber": 5,
        "severityText": traced.level,
        "body": traced.body,
        "traceID": traced.trace_id,
        "spanID": traced.span_id,
        "access": False,
        "attributes": {},
        "resource": {"env": traced.labels["env"], "level": traced.level},
    }
    assert log["time"].startswith("2023-11-14T22:1") and log["time"].endswith("Z")


def test_access_logs_on_request_and_short_ids_padded(client: TestClient) -> None:
    traced = LINES[4]
    body = client.get(f"/api/meshscope/traces/{traced.trace_id}/logs?access=true").json()
    assert [(x["access"], x["severity"]) for x in body["logs"]] == [
        (True, "error"),
        (False, "debug"),
    ]
    assert body["logs"][0]["attributes"]["http.response.status_code"] == 503
    short = traced.trace_id.lstrip("0")
    assert client.get(f"/api/meshscope/traces/{short}/logs").json()["traceID"] == traced.trace_id


def test_unknown_and_bad_trace_ids(client: TestClient) -> None:
    assert client.get("/api/meshscope/traces/" + "f" * 32 + "/logs").json()["logs"] == []
    response = client.get("/api/meshscope/traces/not-hex/logs")
    assert response.status_code == 400
    assert "hex" in response.json()["error"]
