"""OTLP/gRPC with tenancy on: an interceptor setting each export's tenant.

After the authentication interceptor (the principal is set when the call runs): a call
naming a tenant it may not use (`x-scope-orgid` metadata) is answered PERMISSION_DENIED
(INVALID_ARGUMENT for a malformed name); otherwise the export runs with `current_tenants`
set to its one tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from meshscope.auth.principal import current_principal
from meshscope.grpc_metadata import first_value
from meshscope.limits.tenant import HEADER, TenantError
from meshscope.tenancy import resolve
from meshscope.tenancy.context import current_tenants


class TenancyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, can_write: Callable[[str], bool]) -> None:
        self.can_write = can_write

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        requested = first_value(details, HEADER)
        return handler._replace(unary_unary=self._as_tenant(requested, handler.unary_unary))

    def _as_tenant(
        self, requested: str | None, method: Callable[[Any, Any], Awaitable[Any]]
    ) -> Any:
        can_write = self.can_write

        async def call(request: Any, context: Any) -> Any:
            try:
                tenants = resolve.write_tenants(current_principal.get(), requested)
                if not can_write(tenants[0]):
                    raise TenantError(
                        403,
                        f"tenant {tenants[0]!r} is new and meshscope already holds"
                        " tenancy.max_tenants tenants",
                    )
            except TenantError as error:
                code = grpc.StatusCode.INVALID_ARGUMENT
                if error.status == 403:
                    code = grpc.StatusCode.PERMISSION_DENIED
                await context.abort(code, error.message)
                raise AssertionError("context.abort returned") from None  # pragma: no cover
            reset = current_tenants.set(tenants)
            try:
                return await method(request, context)
            finally:
                current_tenants.reset(reset)

        return call
