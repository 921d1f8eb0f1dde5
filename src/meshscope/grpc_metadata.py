"""Reading a gRPC call's metadata, and the shape of meshscope's OTLP/gRPC interceptors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc

UnaryMethod = Callable[[Any, Any], Awaitable[Any]]
"""A unary-unary method's behaviour: `(request, context) -> response`."""


def first_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    """The first value of metadata `key` (lower case, as gRPC sends keys), else None."""
    for name, value in details.invocation_metadata or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor that replaces each unary-unary method (every OTLP export) with what
    `wrap(details, method)` returns; unknown methods pass (grpcio answers UNIMPLEMENTED)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return handler._replace(unary_unary=self.wrap(details, handler.unary_unary))

    def wrap(self, details: grpc.HandlerCallDetails, method: UnaryMethod) -> UnaryMethod:
        raise NotImplementedError


async def abort(context: Any, status: int, message: str) -> NoReturn:
    """Answer a call refused with an HTTP-like `status` (400 INVALID_ARGUMENT, 403
    PERMISSION_DENIED) and `message`; does not return."""
    code = grpc.StatusCode.PERMISSION_DENIED if status == 403 else grpc.StatusCode.INVALID_ARGUMENT
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover
