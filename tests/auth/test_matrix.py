"""Every route of every HTTP app, enumerated from the OpenAPI description (so a new route is
covered as soon as it is documented, and tests/api/test_openapi.py fails until it is), and
every OTLP/gRPC method, with authentication on: no credentials and a wrong token are 401
(with a `WWW-Authenticate` challenge), a token without the route's scope 403, each in the
API's own envelope; a token with the scope gets past authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped]
from starlette.testclient import TestClient

from meshscope.api.openapi import openapi_document
from meshscope.api.openapi_routes import access_of
from meshscope.app import App, build
from meshscope.config import load_config
from meshscope.ingest.grpc import SERVICES, serve_grpc
from tests.auth.tokens import (
    ADMIN,
    GRAFANA,
    HASHED,
    READER,
    WRITER,
    WRONG,
    basic,
    bearer,
    write_tokens,
)

TOKEN_OF = {"read": READER, "write": WRITER, "admin": ADMIN}
HEX = "0af7651916cd43dd8448eb211c80319c"


def _operations() -> list[tuple[str, str, str]]:
    """(app, method, path template) of every documented operation."""
    found = []
    for path, item in openapi_document()["paths"].items():
        for method in item:
            if method == "servers":
                continue
            for server in item["servers"]:
                found.append((server["description"], method.upper(), path))
    return sorted(found)


OPERATIONS = _operations()


def _url(path: str) -> str:
    return (path.replace("{trace_id}", HEX).replace("{path:path}", "js/app.js")
            .replace("{service}", "checkout").replace("{tag}", "http.route")
            .replace("{name}", "job"))  # fmt: skip


@pytest.fixture(scope="module", params=["single-tenant", "tenancy"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Every check runs without tenancy and with it (its gates sit inside the auth gates)."""
    tokens = write_tokens(tmp_path_factory.mktemp("auth") / "tokens.yaml")
    env = {
        "MESHSCOPE_STORAGE__KIND": "memory",
        "MESHSCOPE_AUTH__ENABLED": "true",
        "MESHSCOPE_AUTH__TOKENS_FILE": str(tokens),
        "MESHSCOPE_TENANCY__ENABLED": str(request.param == "tenancy").lower(),
    }
    built = build(load_config(env=env))
    try:
        yield built
    finally:
        built.storage.close()  # memory stores: nothing else to release (never started)


@pytest.fixture(scope="module")
def clients(app: App) -> dict[str, TestClient]:
    return {
        "ui": TestClient(app.ui),
        "otlp_http": TestClient(app.otlp_http),
        "zipkin": TestClient(app.zipkin),
    }


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if method == "POST":
        headers = {**headers, "Content-Type": "application/x-protobuf"}
        response: httpx.Response = client.request(method, _url(path), headers=headers, content=b"")
        return response
    response = client.request(method, _url(path), headers=headers)
    return response


def _assert_envelope(app: str, path: str, response: httpx.Response, status: int) -> None:
    """The refusal is in the envelope of the API the route belongs to."""
    assert response.status_code == status, (path, response.text)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="meshscope"')
    if app == "otlp_http":
        message = status_pb2.Status.FromString(response.content)
        code = code_pb2.UNAUTHENTICATED if status == 401 else code_pb2.PERMISSION_DENIED
        assert message.code == code and message.message
    elif app == "zipkin" or path.startswith(
        ("/api/v1/write", "/api/sampling", "/sampling", "/tempo/", "/loki/", "/metrics")
    ):
        assert response.headers["content-type"].startswith("text/plain") and response.text
    elif path.startswith(("/api/v1/", "/prometheus/api/v1/")):  # Prometheus, Loki's ruler
        body = response.json()
        assert body["status"] == "error" and body["errorType"] and body["error"]
    elif path.startswith("/api/meshscope/"):
        assert response.json()["error"]
    else:  # Jaeger
        assert response.json()["errors"][0]["code"] == status


def test_operations_cover_every_app() -> None:
    apps = {app for app, _, _ in OPERATIONS}
    assert apps == {"ui", "otlp_http", "zipkin"}
    assert len(OPERATIONS) > 60


@pytest.mark.parametrize(("app_name", "method", "path"), OPERATIONS)
def test_route(clients: dict[str, TestClient], app_name: str, method: str, path: str) -> None:
    client = clients[app_name]
    access = access_of(method, path)
    if access == ("open",):
        response = _call(client, method, path, {})
        assert response.status_code not in (401, 403), (path, response.text)
        return
    _assert_envelope(app_name, path, _call(client, method, path, {}), 401)
    wrong = _call(client, method, path, bearer(WRONG))
    _assert_envelope(app_name, path, wrong, 401)
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    _assert_envelope(app_name, path, _call(client, method, path, basic("grafana", "wrong")), 401)
    lacking = next(token for scope, token in TOKEN_OF.items() if scope not in access)
    refused = _call(client, method, path, bearer(lacking))
    _assert_envelope(app_name, path, refused, 403)
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    for scope in access:
        allowed = _call(client, method, path, bearer(TOKEN_OF[scope]))
        assert allowed.status_code not in (401, 403), (path, scope, allowed.text)
    if "read" in access:  # the hashed token and Grafana's basic auth are readers too
        for headers in (bearer(HASHED), basic(*GRAFANA)):
            assert _call(client, method, path, headers).status_code not in (401, 403)


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Token abc", "Basic !!!", "Basic " + "bm9jb2xvbg==", f"bearer{READER}"],
)
def test_malformed_authorization_is_401(clients: dict[str, TestClient], header: str) -> None:
    response = clients["ui"].get("/api/services", headers={"Authorization": header})
    _assert_envelope("ui", "/api/services", response, 401)


def test_scheme_is_case_insensitive(clients: dict[str, TestClient]) -> None:
    response = clients["ui"].get("/api/services", headers={"Authorization": f"bEaReR {READER}"})
    assert response.status_code == 200


def test_the_principal_is_on_the_request(app: App) -> None:
    """What the tenancy step will read: the token's name, tenants and scopes."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from meshscope.auth.http import guard_routes
    from meshscope.auth.principal import current_principal

    async def who(request: Request) -> JSONResponse:
        principal = current_principal.get()
        assert principal is not None and principal is request.user
        # Read handlers run in worker threads (api/handlers.threaded): it is there too.
        assert await run_in_threadpool(current_principal.get) is principal
        return JSONResponse({"name": request.user.display_name, "scopes": request.auth.scopes,
                             "tenants": sorted(principal.tenants)})  # fmt: skip

    from starlette.applications import Starlette

    assert app.tokens is not None
    routes = [Route("/api/v1/who", who, methods=["GET"])]
    guard_routes("ui", routes, app.tokens, metrics_open=False)
    body = TestClient(Starlette(routes=routes)).get("/api/v1/who", headers=bearer(WRITER))
    assert body.status_code == 403  # not a documented route: read, which the writer lacks
    body = TestClient(Starlette(routes=routes)).get("/api/v1/who", headers=bearer(READER))
    assert body.json() == {"name": "dashboards", "scopes": ["read"], "tenants": ["default"]}
    assert current_principal.get() is None


def test_metrics_open_leaves_only_metrics_open(tmp_path: Path) -> None:
    env = {
        "MESHSCOPE_STORAGE__KIND": "memory",
        "MESHSCOPE_AUTH__ENABLED": "true",
        "MESHSCOPE_AUTH__TOKENS_FILE": str(write_tokens(tmp_path / "t.yaml")),
        "MESHSCOPE_AUTH__METRICS_OPEN": "true",
    }
    built = build(load_config(env=env))
    try:
        client = TestClient(built.ui)
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/services").status_code == 401
    finally:
        built.storage.close()


# --- OTLP/gRPC: every method of every service the receiver registers --------------------


def _grpc_call(port: int, service: str, metadata: tuple[tuple[str, str], ...]) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        method = channel.unary_unary(f"/{service}/Export")
        try:
            method(b"", metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


@pytest.mark.parametrize("service", sorted(SERVICES.values()))
def test_grpc_method(app: App, service: str) -> None:
    async def run() -> dict[str, Any]:
        server, port = await serve_grpc(
            app.sink, "127.0.0.1", 0, interceptors=app.grpc_interceptors
        )
        try:
            cases = {
                "none": (),
                "wrong": (("authorization", f"Bearer {WRONG}"),),
                "reader": (("authorization", f"Bearer {READER}"),),
                "writer": (("authorization", f"Bearer {WRITER}"),),
            }
            results = {}
            for name, metadata in cases.items():
                results[name] = await asyncio.to_thread(_grpc_call, port, service, metadata)
            return results
        finally:
            await server.stop(None)

    results = asyncio.run(run())
    assert results == {
        "none": grpc.StatusCode.UNAUTHENTICATED,
        "wrong": grpc.StatusCode.UNAUTHENTICATED,
        "reader": grpc.StatusCode.PERMISSION_DENIED,
        "writer": grpc.StatusCode.OK,  # an empty Export request is a valid, empty one
    }


def test_zz_refusals_are_counted_on_metrics(clients: dict[str, TestClient]) -> None:
    """Defined last: the requests above were refused in every way, over HTTP and gRPC."""
    text = clients["ui"].get("/metrics", headers=bearer(ADMIN)).text
    values = {}
    for line in text.splitlines():
        if line.startswith("meshscope_auth_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    assert values["meshscope_auth_tokens"] == 5
    assert values['meshscope_auth_reloads_total{outcome="failed"}'] == 0
    for transport in ("http", "grpc"):
        for reason in ("unauthenticated", "forbidden"):
            labels = f'reason="{reason}",transport="{transport}"'
            key = f"meshscope_auth_refused_requests_total{{{labels}}}"
            assert values[key] > 0, key
