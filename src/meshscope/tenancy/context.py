"""Whose data a request reads or writes: the `current_tenants` context variable.

The tenancy gates set it for the whole run of a request's handler (asyncio tasks and
`run_in_threadpool` copy it into threads). A write has exactly one tenant; a read one, or
several on the Loki and Prometheus query APIs (`X-Scope-OrgID: a|b`). Writes made by
meshscope itself (the scraper) run without it and go to the default tenant; a read without
it is a wiring bug and fails (`NoTenantError`) rather than read some tenant's data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from meshscope.auth.principal import DEFAULT_TENANT

current_tenants: ContextVar[tuple[str, ...] | None] = ContextVar("current_tenants", default=None)


class NoTenantError(RuntimeError):
    """A read ran with tenancy on but no tenant set: a route or task the gates missed."""


def write_tenant() -> str:
    """The tenant of the write being handled (the default one for meshscope's own)."""
    tenants = current_tenants.get()
    if tenants is None:
        return DEFAULT_TENANT
    if len(tenants) != 1:
        raise NoTenantError(f"a write must have one tenant, has {len(tenants)}")
    return tenants[0]


def read_tenants() -> tuple[str, ...]:
    """The tenants the read being handled may see."""
    tenants = current_tenants.get()
    if not tenants:
        raise NoTenantError("a read ran without a tenant (tenancy is on)")
    return tenants


def visible_tenants() -> tuple[str, ...]:
    """The tenants whose configuration (SLOs) a request sees: its own, or the default
    tenant's when no tenant is set (tenancy off: everything is the default tenant's)."""
    return current_tenants.get() or (DEFAULT_TENANT,)


@contextmanager
def as_tenants(*tenants: str) -> Iterator[None]:
    """Run a block as `tenants` (meshscope's own reads, e.g. the SLO notifier)."""
    reset = current_tenants.set(tenants)
    try:
        yield
    finally:
        current_tenants.reset(reset)
