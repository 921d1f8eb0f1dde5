"""OTLP/gRPC with limits on: an interceptor resolving each call's tenant.

Installed after the authentication interceptor (so the principal is set when the call runs):
a call naming a tenant it may not use (`x-scope-orgid` metadata) is answered
PERMISSION_DENIED (INVALID_ARGUMENT for a malformed name); otherwise the export runs with
`current_admission` set, and the receiver charges the message's bytes and items.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from meshscope.auth.principal import DEFAULT_TENANT, current_principal
from meshscope.grpc_metadata import first_value
from meshscope.limits.admission import Admission, current_admission
from meshscope.limits.limiter import Limiter
from meshscope.limits.tenant import HEADER, TenantError, resolve_tenant


class TenantInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        requested = first_value(details, HEADER)
        return handler._replace(unary_unary=self._limited(requested, handler.unary_unary))

    def _limited(self, requested: str | None, method: Callable[[Any, Any], Awaitable[Any]]) -> Any:
        limiter = self.limiter

        async def call(request: Any, context: Any) -> Any:
            principal = current_principal.get()  # set by the auth interceptor's wrapper
            try:
                tenant = resolve_tenant(principal, requested)
            except TenantError as error:
                forbidden = error.status == 403
                limiter.refuse_tenant(
                    principal.first_tenant if principal else DEFAULT_TENANT,
                    "forbidden_tenant" if forbidden else "invalid_tenant",
                )
                code = grpc.StatusCode.INVALID_ARGUMENT
                if forbidden:
                    code = grpc.StatusCode.PERMISSION_DENIED
                await context.abort(code, error.message)
                raise AssertionError("context.abort returned") from None  # pragma: no cover
            reset = current_admission.set(Admission(limiter, tenant))
            try:
                return await method(request, context)
            finally:
                current_admission.reset(reset)

        return call
