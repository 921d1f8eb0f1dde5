"""Every route of every app (UI, OTLP/HTTP, Zipkin) is in the OpenAPI document and docs/api.md."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route
from starlette.testclient import TestClient

from meshscope.app import build
from meshscope.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_every_route_is_described(tmp_path: Path) -> None:
    app = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
    try:
        document = TestClient(app.ui).get("/api/meshscope/openapi.json").json()
        api_md = (ROOT / "docs" / "api.md").read_text()
        documented = set(re.findall(r"`(/[^`\s]*)`", api_md))
        assert document["openapi"].startswith("3.")
        for name, asgi in (("ui", app.ui), ("otlp_http", app.otlp_http), ("zipkin", app.zipkin)):
            for route in asgi.routes:
                assert isinstance(route, Route)
                item = document["paths"].get(route.path)
                assert item is not None, f"{name} route {route.path} missing from OpenAPI"
                for method in route.methods or ():
                    if method != "HEAD":
                        assert method.lower() in item, f"{method} {route.path} not in OpenAPI"
                urls = [server["description"] for server in item["servers"]]
                assert name in urls, f"{route.path}: OpenAPI does not say {name} serves it"
                assert route.path in documented, f"{route.path} missing from docs/api.md"
    finally:
        app.storage.close()


def test_path_parameters_are_declared() -> None:
    app = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
    try:
        document = TestClient(app.ui).get("/api/meshscope/openapi.json").json()
    finally:
        app.storage.close()
    for path, item in document["paths"].items():
        for name in re.findall(r"{(\w+)}", path):
            for method, operation in item.items():
                if method == "servers":
                    continue
                declared = {(p["name"], p["in"]) for p in operation.get("parameters", [])}
                assert (name, "path") in declared, f"{method} {path}: {name} undeclared"
