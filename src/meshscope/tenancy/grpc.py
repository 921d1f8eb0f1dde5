"""OTLP/gRPC with tenancy on: an interceptor setting each export's tenant.

After the authentication interceptor (the principal is set when the call runs): a call
naming a tenant it may not use (`x-scope-orgid` metadata) is answered PERMISSION_DENIED
(INVALID_ARGUMENT for a malformed name); otherwise the export runs with `current_tenants`
set to its one tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from meshscope.auth.principal import current_principal
from meshscope.grpc_metadata import UnaryInterceptor, UnaryMethod, abort, first_value
from meshscope.limits.tenant import HEADER, TenantError
from meshscope.tenancy import resolve
from meshscope.tenancy.context import current_tenants


class TenancyInterceptor(UnaryInterceptor):
    def __init__(self, can_write: Callable[[str], bool]) -> None:
        self.can_write = can_write

    def wrap(self, details: grpc.HandlerCallDetails, method: UnaryMethod) -> UnaryMethod:
        can_write = self.can_write
        requested = first_value(details, HEADER)

        async def call(request: Any, context: Any) -> Any:
            try:
                tenants = resolve.write_tenants(current_principal.get(), requested)
                if not can_write(tenants[0]):
                    raise TenantError(403, resolve.too_many(tenants[0]))
            except TenantError as error:
                await abort(context, error.status, error.message)
            reset = current_tenants.set(tenants)
            try:
                return await method(request, context)
            finally:
                current_tenants.reset(reset)

        return call
