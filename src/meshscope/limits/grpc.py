"""OTLP/gRPC with limits on: an interceptor resolving each call's tenant.

Installed after the authentication interceptor (so the principal is set when the call runs):
a call naming a tenant it may not use (`x-scope-orgid` metadata) is answered
PERMISSION_DENIED (INVALID_ARGUMENT for a malformed name); otherwise the export runs with
`current_admission` set, and the receiver charges the message's bytes and items.
"""

from __future__ import annotations

from typing import Any

import grpc

from meshscope.auth.principal import DEFAULT_TENANT, current_principal
from meshscope.grpc_metadata import UnaryInterceptor, UnaryMethod, abort, first_value
from meshscope.limits.admission import Admission, current_admission
from meshscope.limits.limiter import Limiter
from meshscope.limits.tenant import HEADER, TenantError, resolve_tenant


class TenantInterceptor(UnaryInterceptor):
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def wrap(self, details: grpc.HandlerCallDetails, method: UnaryMethod) -> UnaryMethod:
        limiter = self.limiter
        requested = first_value(details, HEADER)

        async def call(request: Any, context: Any) -> Any:
            principal = current_principal.get()  # set by the auth interceptor's wrapper
            try:
                tenant = resolve_tenant(principal, requested)
            except TenantError as error:
                limiter.refuse_tenant(
                    principal.first_tenant if principal else DEFAULT_TENANT,
                    "forbidden_tenant" if error.status == 403 else "invalid_tenant",
                )
                await abort(context, error.status, error.message)
            reset = current_admission.set(Admission(limiter, tenant))
            try:
                return await method(request, context)
            finally:
                current_admission.reset(reset)

        return call
