"""Which tenants a request may use: its token's, or the ones `X-Scope-OrgID` names.

Writes follow `limits.tenant.resolve_tenant` (one tenant). Reads take the same header, which
on the Loki and Prometheus query APIs may name several tenants as `a|b` (Loki's multi-tenant
queries, Mimir's tenant federation); with authentication on every one of them must be the
token's (else 403), and without a header a read sees the token's first tenant, like a
write. With authentication off the header is trusted, as Loki, Tempo and Mimir trust it
behind their gateway.
"""

from __future__ import annotations

from meshscope.auth.principal import DEFAULT_TENANT, Principal
from meshscope.limits.config import TENANT_NAME
from meshscope.limits.tenant import TenantError, resolve_tenant

SEPARATOR = "|"


def write_tenants(principal: Principal | None, requested: str | None) -> tuple[str, ...]:
    return (resolve_tenant(principal, requested),)


def read_tenants(
    principal: Principal | None, requested: str | None, *, several: bool
) -> tuple[str, ...]:
    """The tenants a read by `principal` (None: auth off) naming `requested` may see;
    `several`: the route reads several tenants at once (`a|b`)."""
    names = [name.strip() for name in (requested or "").split(SEPARATOR)]
    if names == [""]:
        return (principal.first_tenant if principal is not None else DEFAULT_TENANT,)
    if len(names) > 1 and not several:
        raise TenantError(
            400,
            "X-Scope-OrgID names several tenants: only the Loki query API and Prometheus"
            " queries, series, labels and metadata read several",
        )
    tenants: list[str] = []
    for name in names:
        if not TENANT_NAME.match(name):
            raise TenantError(
                400,
                "X-Scope-OrgID must be tenant names of letters, digits, _ . - (1-150)"
                " separated by |",
            )
        if principal is not None and name not in principal.tenants:
            raise TenantError(403, f"token {principal.name!r} may not read tenant {name!r}")
        if name not in tenants:
            tenants.append(name)
    return tuple(tenants)


def too_many(tenant: str) -> str:
    """Why a write for a new tenant past `tenancy.max_tenants` is refused (403)."""
    return f"tenant {tenant!r} is new and meshscope already holds tenancy.max_tenants tenants"
