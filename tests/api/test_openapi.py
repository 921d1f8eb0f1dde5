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


def test_the_servers_are_the_host_asked_and_the_ports_listened_on() -> None:
    """Each path's `servers` point where this server answers it ("try it" aimed at the
    default ports whatever the configuration)."""
    env = {"MESHSCOPE_STORAGE__KIND": "memory", "MESHSCOPE_SERVER__OTLP_HTTP_PORT": "14318",
           "MESHSCOPE_SERVER__ZIPKIN_PORT": "19411"}  # fmt: skip
    app = build(load_config(env=env))
    try:
        client = TestClient(app.ui, base_url="http://meshscope.example:26686")
        document = client.get("/api/meshscope/openapi.json").json()
    finally:
        app.storage.close()
    assert document["servers"] == [{"url": "http://meshscope.example:26686", "description": "ui"}]
    urls = {s["description"]: s["url"] for item in document["paths"].values()
            for s in item["servers"]}  # fmt: skip
    assert urls == {"ui": "http://meshscope.example:26686",
                    "otlp_http": "http://meshscope.example:14318",
                    "zipkin": "http://meshscope.example:19411"}  # fmt: skip


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
