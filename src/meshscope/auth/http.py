"""Authentication of HTTP routes: each guarded route's endpoint is wrapped in a `Gate`.

Wrapping the matched route (rather than a middleware in front of the router) means the route
is known without matching the path again, each route carries the scopes it accepts and its
API's error envelope, and a request to an open route (`/health`) does no work at all. With
authentication off nothing is wrapped. A request is answered 401 (with `WWW-Authenticate`)
without credentials or with credentials no token matches, 403 when the token lacks the
route's scope; otherwise the principal is put on the ASGI scope (`request.user`,
`request.auth`) and in `current_principal` while the endpoint runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import cast

from starlette.authentication import AuthCredentials
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from meshscope.api.openapi_routes import OPEN, access_of
from meshscope.auth.errors import Refuse, refusal_for
from meshscope.auth.principal import Principal, current_principal
from meshscope.auth.principal import Scope as TokenScope
from meshscope.auth.tokens import TokenStore
from meshscope.request_headers import first_header

REALM = "meshscope"
_ADMIN_ONLY: frozenset[TokenScope] = frozenset({"admin"})  # a method the route does not list


class UnauthenticatedError(Exception):
    """No usable credentials; the message says what was wrong (never the secret)."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error  # RFC 6750 `error` code of the challenge


def authenticate(tokens: TokenStore, authorization: str | None) -> Principal:
    """The principal of an `Authorization` header value (Bearer or Basic)."""
    if not authorization:
        raise UnauthenticatedError("authentication required: send Authorization: Bearer <token>")
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    scheme = scheme.lower()
    principal: Principal | None = None
    if scheme == "bearer" and credentials:
        principal = tokens.bearer(credentials)
    elif scheme == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UnauthenticatedError("malformed basic credentials", "invalid_request") from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise UnauthenticatedError("malformed basic credentials", "invalid_request")
        principal = tokens.basic(username, password)
    else:
        message = "unsupported authorization scheme: use Bearer or Basic"
        raise UnauthenticatedError(message, "invalid_request")
    if principal is None:
        raise UnauthenticatedError("invalid credentials", "invalid_token")
    return principal


def challenge(error: str | None = None, scope: str | None = None) -> str:
    parts = [f'Bearer realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{scope}"')
    return ", ".join(parts)


class Gate:
    """An endpoint's ASGI app behind authentication and a scope check."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenStore,
        scopes: dict[str, frozenset[TokenScope]],
        refuse: Refuse,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.scopes = scopes  # by method; HEAD as GET
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization = first_header(scope, b"authorization")
        try:
            principal = authenticate(self.tokens, authorization)
        except UnauthenticatedError as error:
            self.tokens.refusals["http", "unauthenticated"] += 1
            response = self.refuse(401, str(error), scope)
            response.headers["WWW-Authenticate"] = challenge(error.error)
            await response(scope, receive, send)
            return
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        needed = self.scopes.get(method, _ADMIN_ONLY)
        if not principal.allows(needed):
            self.tokens.refusals["http", "forbidden"] += 1
            names = " ".join(sorted(needed))
            message = f"token {principal.name!r} lacks the scope this route needs: {names}"
            response = self.refuse(403, message, scope)
            response.headers["WWW-Authenticate"] = challenge("insufficient_scope", names)
            await response(scope, receive, send)
            return
        scope["user"] = principal
        scope["auth"] = AuthCredentials(sorted(principal.scopes))
        reset = current_principal.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            current_principal.reset(reset)


def guard_routes(
    app_name: str, routes: Iterable[BaseRoute], tokens: TokenStore, *, metrics_open: bool
) -> None:
    """Put every route of `app_name` that is not open behind a `Gate`, in place."""
    for route in routes:
        if not isinstance(route, Route):  # every meshscope route is one (tests/api/test_openapi)
            raise TypeError(f"cannot guard {route!r}")
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        access = {method: set(access_of(method, route.path)) for method in methods}
        if route.path == "/metrics" and metrics_open:
            access = {method: {OPEN} for method in methods}
        if all(OPEN in accepted for accepted in access.values()):
            continue
        if any(OPEN in accepted for accepted in access.values()):
            raise ValueError(f"{route.path}: open for some methods only")
        scopes = {
            method: frozenset(cast(set[TokenScope], accepted))
            for method, accepted in access.items()
        }
        route.app = Gate(route.app, tokens, scopes, refusal_for(app_name, route.path))
