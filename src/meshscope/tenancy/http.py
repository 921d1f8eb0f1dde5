"""HTTP routes with tenancy on: each request's tenants are resolved and set for its run.

`tenant_routes` wraps every route that reads or writes telemetry in a `TenancyGate` (inside
the auth `Gate`, so the principal is known, and outside the limits gate). The gate answers a
tenant the request may not use (400 malformed, 403 not the token's or past
`tenancy.max_tenants`) in the route's own envelope; otherwise the endpoint runs with
`current_tenants` set. Open routes (`/health`, the UI's page and assets, the OpenAPI
description) and meshscope's own `/metrics` hold no tenant's data and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from meshscope.api.openapi_routes import OPEN, WRITE, access_of
from meshscope.auth.errors import Refuse, refusal_for
from meshscope.auth.principal import current_principal
from meshscope.limits.tenant import TenantError
from meshscope.request_headers import first_header
from meshscope.tenancy import resolve
from meshscope.tenancy.context import current_tenants

_HEADER = b"x-scope-orgid"
SEVERAL_PREFIX = "/loki/api/v1/"
"""Reads under this prefix may name several tenants (`a|b`), as Loki's do."""
SEVERAL_PATHS = frozenset(
    {
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/label/{name}/values",
        "/api/v1/metadata",
        "/api/v1/rules",
        "/api/v1/alerts",
    }
)
"""Prometheus reads that may name several tenants, as Mimir's tenant federation allows."""
SELF_ROUTES = frozenset({"/metrics"})


class TenancyGate:
    def __init__(
        self,
        app: ASGIApp,
        refuse: Refuse,
        *,
        writes: frozenset[str],
        several: bool,
        can_write: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.writes = writes  # the methods that write
        self.several = several
        self.can_write = can_write

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        requested = first_header(scope, _HEADER)
        principal = current_principal.get()
        try:
            if scope["method"] in self.writes:
                tenants = resolve.write_tenants(principal, requested)
                if not self.can_write(tenants[0]):
                    raise TenantError(403, resolve.too_many(tenants[0]))
            else:
                tenants = resolve.read_tenants(principal, requested, several=self.several)
        except TenantError as error:
            await self.refuse(error.status, error.message, scope)(scope, receive, send)
            return
        reset = current_tenants.set(tenants)
        try:
            await self.app(scope, receive, send)
        finally:
            current_tenants.reset(reset)


def tenant_routes(
    app_name: str, routes: Iterable[BaseRoute], can_write: Callable[[str], bool]
) -> None:
    """Put every route of `app_name` that reads or writes telemetry behind a
    `TenancyGate`, in place (after `limits.http.limit_routes`, before
    `auth.http.guard_routes`: authentication runs first, then this, then limits)."""
    for route in routes:
        if not isinstance(route, Route) or route.path in SELF_ROUTES:
            continue
        methods = sorted((route.methods or {"GET"}) - {"HEAD"})
        access = {method: access_of(method, route.path) for method in methods}
        if all(OPEN in accepted for accepted in access.values()):
            continue
        writes = frozenset(m for m, accepted in access.items() if accepted == (WRITE,))
        route.app = TenancyGate(
            route.app,
            refusal_for(app_name, route.path),
            writes=writes,
            several=(route.path.startswith(SEVERAL_PREFIX) or route.path in SEVERAL_PATHS)
            and not writes,
            can_write=can_write,
        )
