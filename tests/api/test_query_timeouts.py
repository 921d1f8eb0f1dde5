"""The query deadline (`query.timeout_seconds`) in each read API's own error format: a store
holding logs and spans, a deadline already past when the work starts, and every API whose
evaluation checks it answers 503 as that API writes errors (Prometheus' JSON envelope with
`errorType: timeout`, Loki's and Tempo's plain text, meshscope's `{"error": ...}`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from meshscope.app import build
from meshscope.clock import SystemClock
from meshscope.config import load_config
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span
from meshscope.pipeline.chain import Pipeline

NOW = time.time_ns()
S = 10**9
WINDOW = {"start": str(NOW - 600 * S), "end": str(NOW + S)}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    env = {"MESHSCOPE_STORAGE__KIND": "memory", "MESHSCOPE_QUERY__TIMEOUT_SECONDS": "0.000001"}
    app = build(load_config(env=env))
    spans = [
        Span(f"{i + 1:032x}", f"{1:016x}", "op", "svc", NOW - i * S, NOW - i * S + 10**6,
             attributes={"x": "y"})
        for i in range(50)
    ]  # fmt: skip
    logs = [LogRecord(NOW - i * S, "hello", "svc") for i in range(50)]
    pipeline = Pipeline(app.storage, SystemClock())
    pipeline.consume(Batch(spans=spans, logs=logs))
    pipeline.flush()
    yield TestClient(app.ui)
    app.storage.close()


TIMEOUT = "query timed out in expression evaluation after 1e-06s"
CASES = [
    ("/api/v1/query", {"query": "sum(calls_total)"}, "prometheus"),
    ("/api/v1/query_range",
     {"query": "sum(rate(calls_total[1m]))", "start": str(NOW // S - 600),
      "end": str(NOW // S), "step": "15"}, "prometheus"),
    ("/loki/api/v1/query_range", {"query": '{service_name="svc"}', **WINDOW}, "text"),
    ("/loki/api/v1/query_range",
     {"query": 'count_over_time({service_name="svc"}[1m])', **WINDOW, "step": "60"}, "text"),
    ("/tempo/api/search", {"q": '{ .x = "y" }'}, "text"),
    ("/api/meshscope/red/range", {}, "json"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "params", "form"), CASES)
def test_a_query_past_its_deadline_is_a_503_in_its_apis_format(
    client: TestClient, path: str, params: dict[str, str], form: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 503, response.text[:300]
    if form == "prometheus":
        assert response.json() == {"status": "error", "errorType": "timeout", "error": TIMEOUT}
    elif form == "json":
        assert response.json() == {"error": TIMEOUT}
    else:
        assert response.text == TIMEOUT
