"""Reading a gRPC call's metadata (interceptors of the OTLP/gRPC server)."""

from __future__ import annotations

import grpc


def first_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    """The first value of metadata `key` (lower case, as gRPC sends keys), else None."""
    for name, value in details.invocation_metadata or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None
