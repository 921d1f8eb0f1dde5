"""An API fuzz over the OpenAPI description (schemathesis): every read route of the UI/query
app (GET, and POST where a route reads with it: Prometheus' query, query_range, series,
labels and exemplars), with generated parameters, over a store holding traces, logs and
their derived metrics, answers without a 5xx. Bounded examples per route so the whole run
stays well under a minute."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from starlette.testclient import TestClient

from meshscope.app import build
from meshscope.clock import SystemClock
from meshscope.config import load_config
from meshscope.model.batch import Batch
from meshscope.model.logs import LogRecord
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline

APP = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
DOCUMENT = TestClient(APP.ui).get("/api/meshscope/openapi.json").json()
# Only the routes the UI app serves, read-only: ingest routes (the POSTs with a body) are
# fuzzed by their own tests (tests/ingest/test_decoders_total.py, tests/e2e/test_isolation.py)
# and would need the writer thread running.
DOCUMENT["paths"] = {
    # `{name:path}` is Starlette's (a parameter that may hold "/"): OpenAPI's `{name}`.
    re.sub(r"\{(\w+):path\}", r"{\1}", path): {
        **{m: op for m, op in item.items() if m in ("get", "post") and "requestBody" not in op},
        "servers": [{"url": "/"}],
    }
    for path, item in DOCUMENT["paths"].items()
    if any(s["description"] == "ui" for s in item["servers"])
    and not path.startswith("/ui/")  # the UI's static files
}
DOCUMENT["paths"] = {path: item for path, item in DOCUMENT["paths"].items() if len(item) > 1}
DOCUMENT["servers"] = [{"url": "/"}]
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
SCHEMA.app = APP.ui
NOW = time.time_ns()


def _seed() -> None:
    """A few traces (a call between two services, an error), their logs and, through the
    real pipeline, their span metrics and service graph, so reads have something to read."""
    spans, logs = [], []
    for i in range(20):
        trace, start = f"{i + 1:032x}", NOW - (i + 1) * 60 * 10**9
        spans += [
            Span(trace, f"{1:016x}", "GET /cart", "web", start, start + 5 * 10**6,
                 kind=SpanKind.CLIENT, attributes={"http.route": "/cart"}),
            Span(trace, f"{2:016x}", "GET /cart", "cart", start + 10**6, start + 4 * 10**6,
                 f"{1:016x}", kind=SpanKind.SERVER,
                 status_code=StatusCode.ERROR if i % 5 == 0 else StatusCode.UNSET),
        ]  # fmt: skip
        logs.append(LogRecord(start, "served", "cart", trace_id=trace, span_id=f"{2:016x}"))
    pipeline = Pipeline(APP.storage, SystemClock())
    pipeline.consume(Batch(spans=spans, logs=logs))
    pipeline.flush()


_seed()


@pytest.fixture(scope="module", autouse=True)
def _close_storage() -> Iterator[None]:
    yield
    APP.storage.close()


@SCHEMA.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,  # the same examples each run: a red CI run is reproducible
)
def test_no_route_answers_5xx(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    response = case.call(app=APP.ui)
    assert response.status_code < 500, (case.path, case.query, response.text[:300])
