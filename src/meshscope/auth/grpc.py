"""Authentication of OTLP/gRPC: a server interceptor reading the `authorization` metadata.

A call without credentials, or with credentials no token matches, is answered
UNAUTHENTICATED; a token without the `write` scope PERMISSION_DENIED (every meshscope gRPC
method is an export). An accepted call's handler runs with the principal in
`current_principal` (the gRPC counterpart of `request.user`), where the tenancy step will
take the tenant from.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from meshscope.auth.http import UnauthenticatedError, authenticate
from meshscope.auth.principal import Principal, Scope, current_principal
from meshscope.auth.tokens import TokenStore
from meshscope.grpc_metadata import first_value

WRITE: frozenset[Scope] = frozenset({"write"})


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown method: grpcio answers UNIMPLEMENTED
        authorization = first_value(details, "authorization")
        try:
            principal = authenticate(self.tokens, authorization)
        except UnauthenticatedError as error:
            self.tokens.refusals["grpc", "unauthenticated"] += 1
            return _refusal(handler, grpc.StatusCode.UNAUTHENTICATED, str(error))
        if not principal.allows(WRITE):
            self.tokens.refusals["grpc", "forbidden"] += 1
            message = f"token {principal.name!r} lacks the scope this method needs: write"
            return _refusal(handler, grpc.StatusCode.PERMISSION_DENIED, message)
        return handler._replace(unary_unary=_as(principal, handler.unary_unary))


def _as(principal: Principal, method: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    async def call(request: Any, context: Any) -> Any:
        reset = current_principal.set(principal)
        try:
            return await method(request, context)
        finally:
            current_principal.reset(reset)

    return call


def _refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> Any:
    async def refuse(request: Any, context: Any) -> Any:
        await context.abort(code, message)

    return handler._replace(unary_unary=refuse)
