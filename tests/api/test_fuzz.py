"""An API fuzz over the OpenAPI description (schemathesis): every GET route of the UI/query
app, with generated parameters, answers without a 5xx. Bounded examples per route so the
whole run stays well under a minute."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from starlette.testclient import TestClient

from meshscope.app import build
from meshscope.config import load_config

APP = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
DOCUMENT = TestClient(APP.ui).get("/api/meshscope/openapi.json").json()
# Only the routes the UI app serves, read-only: ingest routes are fuzzed by their own tests,
# and a POST here would need the writer thread running.
DOCUMENT["paths"] = {
    path: {"get": item["get"], "servers": [{"url": "/"}]}
    for path, item in DOCUMENT["paths"].items()
    if "get" in item
    and any(s["description"] == "ui" for s in item["servers"])
    and ":" not in path  # the UI's `{path:path}` catch-all: Starlette syntax, not OpenAPI
}
DOCUMENT["servers"] = [{"url": "/"}]
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
SCHEMA.app = APP.ui


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
