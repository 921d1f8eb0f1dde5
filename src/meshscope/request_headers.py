"""Reading a request header from an ASGI scope (the route gates of auth, tenancy, limits)."""

from __future__ import annotations

from starlette.types import Scope


def first_header(scope: Scope, key: bytes) -> str | None:
    """The first value of header `key` (lower case bytes, as ASGI gives names), else None."""
    for name, value in scope["headers"]:
        if name == key:
            text: str = value.decode("latin-1")
            return text
    return None
