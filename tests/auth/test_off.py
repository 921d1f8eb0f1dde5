"""With authentication off (the default) nothing is wrapped: no route has a gate, the gRPC
server has no interceptor and every route answers without credentials, as before."""

from __future__ import annotations

from starlette.routing import Route
from starlette.testclient import TestClient

from meshscope.app import build
from meshscope.auth.http import Gate
from meshscope.config import load_config


def test_auth_off_wraps_nothing() -> None:
    app = build(load_config(env={"MESHSCOPE_STORAGE__KIND": "memory"}))
    try:
        assert app.tokens is None and app.grpc_interceptors == () and app.tls is None
        for asgi in (app.ui, app.otlp_http, app.zipkin):
            for route in asgi.routes:
                assert isinstance(route, Route) and not isinstance(route.app, Gate)
        client = TestClient(app.ui)
        assert client.get("/api/services").status_code == 200
        assert client.get("/metrics").status_code == 200
    finally:
        app.storage.close()
