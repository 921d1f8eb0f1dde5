"""The one way read routes run: parse and answer off the event loop, refusals in the API's
own error envelope.

Each API (Jaeger, Zipkin, Prometheus, Loki, Tempo, meshscope's) differs only in how a
success and a refusal look; `threaded` takes those two and does the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from meshscope.api.params import FormParams, ParamError, read_params

Handler = Callable[[Request], Awaitable[Response]]


def threaded(
    work: Callable[..., Any],
    ok: Callable[[Any], Response],
    refuse: Callable[[Exception], Response],
    refused: tuple[type[Exception], ...] = (ParamError,),
    form: bool = False,
) -> Handler:
    """A handler running `work(request)` (with `form`: `work(params, request)`, the query
    string plus a form-encoded POST body) in a worker thread. A Response it returns is sent
    as it is, anything else as `ok(result)`; an exception of `refused` becomes
    `refuse(error)`, the API's 4xx answer."""

    async def handle(request: Request) -> Response:
        try:
            if form:
                params: FormParams = await read_params(request)
                result = await run_in_threadpool(work, params, request)
            else:
                result = await run_in_threadpool(work, request)
        except refused as error:
            return refuse(error)
        return result if isinstance(result, Response) else ok(result)

    return handle
