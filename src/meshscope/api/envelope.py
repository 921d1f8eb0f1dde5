"""The Jaeger query API envelope: {data, total, limit, offset, errors}."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


def jaeger_ok(data: Any, total: int | None = None) -> JSONResponse:
    if total is None:
        total = len(data) if isinstance(data, list) else 0
    return JSONResponse({"data": data, "total": total, "limit": 0, "offset": 0, "errors": None})


def jaeger_error(status: int, message: str) -> JSONResponse:
    body = {"data": None, "total": 0, "limit": 0, "offset": 0,
            "errors": [{"code": status, "msg": message}]}  # fmt: skip
    return JSONResponse(body, status_code=status)
