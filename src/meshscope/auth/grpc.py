"""Authentication of OTLP/gRPC: a server interceptor reading the `authorization` metadata.

A call without credentials, or with credentials no token matches, is answered
UNAUTHENTICATED; a token without the `write` scope PERMISSION_DENIED (every meshscope gRPC
method is an export). An accepted call's handler runs with the principal in
`current_principal` (the gRPC counterpart of `request.user`), where tenancy takes the
tenant from.
"""

from __future__ import annotations

from typing import Any

import grpc

from meshscope.auth.http import UnauthenticatedError, authenticate
from meshscope.auth.principal import Principal, Scope, current_principal
from meshscope.auth.tokens import TokenStore
from meshscope.grpc_metadata import UnaryInterceptor, UnaryMethod, first_value

WRITE: frozenset[Scope] = frozenset({"write"})


class AuthInterceptor(UnaryInterceptor):
    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    def wrap(self, details: grpc.HandlerCallDetails, method: UnaryMethod) -> UnaryMethod:
        authorization = first_value(details, "authorization")
        try:
            principal = authenticate(self.tokens, authorization)
        except UnauthenticatedError as error:
            self.tokens.refusals["grpc", "unauthenticated"] += 1
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, str(error))
        if not principal.allows(WRITE):
            self.tokens.refusals["grpc", "forbidden"] += 1
            message = f"token {principal.name!r} lacks the scope this method needs: write"
            return _refusal(grpc.StatusCode.PERMISSION_DENIED, message)
        return _as(principal, method)


def _as(principal: Principal, method: UnaryMethod) -> UnaryMethod:
    async def call(request: Any, context: Any) -> Any:
        reset = current_principal.set(principal)
        try:
            return await method(request, context)
        finally:
            current_principal.reset(reset)

    return call


def _refusal(code: grpc.StatusCode, message: str) -> UnaryMethod:
    async def refuse(request: Any, context: Any) -> Any:
        await context.abort(code, message)

    return refuse
