"""Whose a write is: one rule for every receiver, used by the limits and by tenancy.

With authentication on, the tenant is one of the token's: the one the request names in
`X-Scope-OrgID` (HTTP) or `x-scope-orgid` (gRPC metadata), else the token's first; naming a
tenant the token lacks is forbidden (403 / PERMISSION_DENIED). With authentication off, the
header names it, else `default` (Loki, Tempo and Mimir use a fixed tenant when multitenancy
is off). A name that is not letters, digits, `_`, `.`, `-` (1-150) is a 400.
"""

from __future__ import annotations

from meshscope.auth.principal import DEFAULT_TENANT, Principal
from meshscope.limits.config import TENANT_NAME

HEADER = "x-scope-orgid"
"""The HTTP header (case-insensitive) and gRPC metadata key (lower case) naming a tenant."""


class TenantError(Exception):
    """The request names a tenant it may not use: `status` 400 (malformed) or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def resolve_tenant(principal: Principal | None, requested: str | None) -> str:
    """The tenant of a write by `principal` (None: auth off) naming `requested` (or None)."""
    if requested is not None:
        requested = requested.strip() or None  # an empty header names no tenant
    if requested is not None and not TENANT_NAME.match(requested):
        raise TenantError(
            400, "X-Scope-OrgID must be one tenant name of letters, digits, _ . - (1-150)"
        )
    if principal is None:
        return requested or DEFAULT_TENANT
    if requested is None:
        return principal.first_tenant
    if requested not in principal.tenants:
        raise TenantError(403, f"token {principal.name!r} may not write for tenant {requested!r}")
    return requested
