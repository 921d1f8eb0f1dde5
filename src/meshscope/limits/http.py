"""The write routes with limits on: each request's tenant is resolved and set for its run.

`limit_routes` wraps every write route's endpoint in a `TenantGate` (inside the auth `Gate`,
so the principal is known). The gate answers a tenant the request may not name (400/403) in
the route's own envelope, and otherwise runs the endpoint with `current_admission` set: the
receiver then charges the body's bytes and the decoded items to that tenant.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from meshscope.auth.errors import Refuse, refusal_for
from meshscope.auth.principal import DEFAULT_TENANT, current_principal
from meshscope.limits.admission import Admission, current_admission
from meshscope.limits.limiter import Limiter
from meshscope.limits.tenant import TenantError, resolve_tenant
from meshscope.request_headers import first_header

WRITE_ROUTES = frozenset(
    {
        "otlp_traces",
        "otlp_metrics",
        "otlp_logs",
        "zipkin_spans",
        "loki_push",
        "prometheus_remote_write",
    }
)
"""The receivers' route names: every path that writes telemetry."""

_HEADER = b"x-scope-orgid"


class TenantGate:
    def __init__(self, app: ASGIApp, limiter: Limiter, refuse: Refuse) -> None:
        self.app = app
        self.limiter = limiter
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        requested = first_header(scope, _HEADER)
        principal = current_principal.get()
        try:
            tenant = resolve_tenant(principal, requested)
        except TenantError as error:
            reason = "forbidden_tenant" if error.status == 403 else "invalid_tenant"
            counted = principal.first_tenant if principal else DEFAULT_TENANT
            self.limiter.refuse_tenant(counted, reason)
            await self.refuse(error.status, error.message, scope)(scope, receive, send)
            return
        reset = current_admission.set(Admission(self.limiter, tenant))
        try:
            await self.app(scope, receive, send)
        finally:
            current_admission.reset(reset)


def limit_routes(app_name: str, routes: Iterable[BaseRoute], limiter: Limiter) -> None:
    """Put every write route of `app_name` behind a `TenantGate`, in place (before
    `auth.http.guard_routes`, so that authentication runs first)."""
    for route in routes:
        if isinstance(route, Route) and route.name in WRITE_ROUTES:
            route.app = TenantGate(route.app, limiter, refusal_for(app_name, route.path))
