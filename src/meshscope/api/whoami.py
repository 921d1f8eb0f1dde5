"""`GET /api/meshscope/whoami`: who the request is and which tenants it may read, for the UI's
tenant picker. Routes only.

    {"data": {"name": "dashboards", "tenancy": true, "tenant": "team-a",
              "tenants": ["team-a", "team-b"]}}

`name` is the token's name (null with authentication off), `tenants` the token's tenants,
its first tenant first (`[]` with authentication off: any tenant may be named),
`tenant` the tenant this request read (null with tenancy off).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.auth.principal import current_principal
from meshscope.tenancy.context import current_tenants


def whoami_routes(tenancy: bool) -> list[Route]:
    async def whoami(request: Request) -> Response:
        principal = current_principal.get()
        tenants: list[str] = []
        if principal is not None:
            rest = sorted(principal.tenants - {principal.first_tenant})
            tenants = [principal.first_tenant, *rest]
        reading = current_tenants.get() if tenancy else None
        data = {
            "name": principal.name if principal is not None else None,
            "tenancy": tenancy,
            "tenant": "|".join(reading) if reading else None,
            "tenants": tenants,
        }
        return JSONResponse({"data": data})

    return [Route("/api/meshscope/whoami", whoami, methods=["GET"])]
