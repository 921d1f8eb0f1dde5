"""Who a request is: the principal a valid token names, and where handlers find it.

A principal carries the token's name, tenants and scopes. HTTP routes find it on the ASGI
scope (`request.user`, `request.auth.scopes`, Starlette's convention) and every handler,
HTTP or gRPC, in the `current_principal` context variable, which is where tenancy takes
the tenant of a write or the tenants a read may see (ADR 0017).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from starlette.authentication import BaseUser

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
DEFAULT_TENANT = "default"
"""The tenant of a token that names none, and of all data written before tenancy exists."""


@dataclass(frozen=True, slots=True)
class Principal(BaseUser):
    """A token's identity: `name` (never the secret), its tenants and scopes; `first_tenant`
    is the first of its tenants in the tokens file (a write that names none goes there)."""

    name: str
    tenants: frozenset[str]
    scopes: frozenset[Scope]
    first_tenant: str = DEFAULT_TENANT

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.name

    def allows(self, scopes: frozenset[Scope]) -> bool:
        """True when the principal holds any of `scopes` (a route may accept several)."""
        return not self.scopes.isdisjoint(scopes)


current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""The principal of the request being handled (None with authentication off)."""
