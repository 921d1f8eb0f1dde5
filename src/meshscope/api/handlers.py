"""The one way read routes run: parse and answer off the event loop, under a query budget,
refusals in the API's own error envelope.

Each API (Jaeger, Zipkin, Prometheus, Loki, Tempo, meshscope's) differs only in how a
success and a refusal look; `threaded` takes those two and does the rest: it opens the
request's Budget (deadline and limits, query/budget.py), cancels it when the client goes
away, and hands the guard's refusals (timeout, limit, too complex, bad regex) to `refuse`
along with the API's own, `status_of` telling which status each deserves. An answer the
store could only give in part (`budget.warn`: a ClickHouse shard down) carries its warnings
in a `Warning` header (RFC 9110's `199` miscellaneous warning) and, where the API has a place
for them in its JSON object (`Notes`), there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from meshscope.api.params import FormParams, ParamError, read_params
from meshscope.model.regex import RegexError
from meshscope.query.budget import (
    Budget,
    QueryLimitError,
    QueryLimits,
    QueryTimeoutError,
    QueryTooComplexError,
    running,
)
from meshscope.store.base import QueryTooLargeError, StoreUnavailableError

Handler = Callable[[Request], Awaitable[Response]]

# Always refused, whatever the API: the guard's answers, bad regexes and a store whose
# server is down or hung.
GUARD_ERRORS: tuple[type[Exception], ...] = (
    QueryTimeoutError,
    StoreUnavailableError,
    QueryTooLargeError,
    QueryLimitError,
    QueryTooComplexError,
    RegexError,
)
_DISCONNECT_POLL_S = 0.25
JSON = "application/json"
_DEFAULT_LIMITS = QueryLimits()


def status_of(error: Exception, default: int = 400) -> int:
    """503 for a timed-out query or an unavailable store (retrying later may work), 422 for
    one over a limit (the request is well-formed but too expensive, as Prometheus'
    `execution` errors), else `default`."""
    if isinstance(error, QueryTimeoutError | StoreUnavailableError):
        return 503
    if isinstance(error, QueryLimitError):
        return 422
    return default


def query_limits(request: Request) -> QueryLimits:
    """The `query:` settings the app was built with (app.py keeps them in app.state), with
    the request's tenant's overrides when per-tenant limits are set (`tenant_query_limits`)."""
    state = request.app.state
    limits = getattr(state, "query_limits", None)
    base = limits if isinstance(limits, QueryLimits) else _DEFAULT_LIMITS
    per_tenant = getattr(state, "tenant_query_limits", None)
    return per_tenant(base) if callable(per_tenant) else base


@dataclass(frozen=True, slots=True)
class Notes:
    """Where an API's success object carries warnings: `field` (a list) and each warning as
    `item` makes it (Prometheus' and Loki's `warnings` are strings, Jaeger's `errors`
    objects)."""

    field: str
    item: Callable[[str], Any] = str


WARNINGS = Notes("warnings")
"""Prometheus', Loki's and meshscope's own `warnings`."""


def with_warnings(response: Response, warnings: list[str], notes: Notes | None) -> Response:
    """`response` with `warnings` in a `Warning` header and, for a JSON object body and
    `notes`, in its field (added to what is there)."""
    text = ", ".join(
        '199 meshscope "{}"'.format(w.replace("\\", "\\\\").replace('"', '\\"')) for w in warnings
    )
    written = getattr(response, "body", None)  # not a streamed one's
    if notes is not None and isinstance(written, bytes) and response.media_type == JSON:
        try:
            body = orjson.loads(written)
        except orjson.JSONDecodeError:  # beyond orjson (integers over 64 bits): header only
            body = None
        if isinstance(body, dict):
            given = body.get(notes.field) or []
            body[notes.field] = [*given, *(i for i in map(notes.item, warnings) if i not in given)]
            rewritten = Response(orjson.dumps(body), response.status_code, media_type=JSON)
            for name, value in response.headers.items():
                if name not in ("content-length", "content-type"):
                    rewritten.headers.append(name, value)
            response = rewritten
    response.headers["Warning"] = text.encode("ascii", "replace").decode("ascii")
    return response


def _run_budgeted(budget: Budget, work: Callable[..., Any], *args: Any) -> Any:
    with running(budget):
        try:
            return work(*args)
        except RecursionError:
            # A backstop behind check_depth: the frames are dropped here, not kept alive by
            # a traceback on the response path.
            raise QueryTooComplexError("query is nested too deeply to evaluate") from None
        except Exception as error:
            # A store statement stopped at the deadline (DuckDB's interrupt, ClickHouse's
            # max_execution_time: meshscope.stopping) raises its own error: a timeout.
            if not isinstance(error, GUARD_ERRORS) and budget.spent():
                budget.check()  # raises QueryTimeoutError
            raise


async def _watch(request: Request, budget: Budget, worker: asyncio.Future[Any]) -> Any:
    """Wait for the worker; cancel its budget when the client disconnects meanwhile (the
    thread stops at its next budget check)."""
    while True:
        done, _ = await asyncio.wait({worker}, timeout=_DISCONNECT_POLL_S)
        if done:
            return worker.result()
        if not budget.cancelled and await request.is_disconnected():
            budget.cancel()


def threaded(
    work: Callable[..., Any],
    ok: Callable[[Any], Response],
    refuse: Callable[[Exception], Response],
    refused: tuple[type[Exception], ...] = (ParamError,),
    form: bool = False,
    notes: Notes | None = None,
) -> Handler:
    """A handler running `work(request)` (with `form`: `work(params, request)`, the query
    string plus a form-encoded POST body) in a worker thread. A Response it returns is sent
    as it is, anything else as `ok(result)`; an exception of `refused` or GUARD_ERRORS
    becomes `refuse(error)`, the API's 4xx/5xx answer (see `status_of`). Warnings of the
    answer (`budget.warn`) go with it (`with_warnings`: a header, and `notes`)."""
    catch = (*refused, *GUARD_ERRORS)

    async def handle(request: Request) -> Response:
        budget = Budget(query_limits(request))
        try:
            args: tuple[Any, ...] = (request,)
            if form:
                params: FormParams = await read_params(request)
                args = (params, request)
            worker = asyncio.ensure_future(run_in_threadpool(_run_budgeted, budget, work, *args))
            result = await _watch(request, budget, worker)
        except catch as error:
            return refuse(error)
        response = result if isinstance(result, Response) else ok(result)
        if budget.warnings:
            response = with_warnings(response, budget.warnings, notes)
        return response

    return handle
