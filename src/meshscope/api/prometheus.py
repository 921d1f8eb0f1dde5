"""The Prometheus HTTP API (`/api/v1/...`) over the PromQL engine: routes only."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import promql_parser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.api.handlers import WARNINGS, Handler, threaded
from meshscope.api.params import ParamError
from meshscope.api.prometheus_json import matrix_json
from meshscope.query import budget
from meshscope.query.budget import QueryLimitError, QueryTimeoutError
from meshscope.query.durations import duration_ms
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.evaluator import parse, selector_matchers
from meshscope.query.promql.queryable import Queryable, label_names, label_values, series_labels
from meshscope.query.promql.values import (
    BadQueryError,
    Matrix,
    PromQLError,
    Scalar,
    String,
    Value,
    Vector,
    format_time,
    format_value,
    value_type,
)
from meshscope.store.base import LabelMatcher, StoreUnavailableError

MIN_TIME_MS = -9_223_372_036_854_775 // 1000 * 1000
MAX_TIME_MS = 9_223_372_036_854_775 // 1000 * 1000
BUILD_INFO = {
    "version": "2.42.0",
    "revision": "meshscope",
    "branch": "meshscope",
    "buildUser": "meshscope",
    "buildDate": "",
    "goVersion": "",
}


def _ok(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _error(kind: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "errorType": kind, "error": message}, status_code=status
    )


def parse_time(text: str, name: str = "time") -> int:
    """RFC 3339 or float unix seconds -> ms."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ParamError(
                f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp'
            ) from None
        if parsed.tzinfo is not None:
            return round(parsed.timestamp() * 1000)
        seconds = math.nan
    # Beyond int64 milliseconds (`start=1e300`) no sample can be, and the arithmetic on
    # times would overflow: refused rather than clamped.
    if not math.isfinite(seconds) or not MIN_TIME_MS <= seconds * 1000 <= MAX_TIME_MS:
        raise ParamError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
    return round(seconds * 1000)


def parse_duration(text: str, name: str) -> int:
    """A duration (`15s`, `1m30s`) or float seconds -> ms."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            return duration_ms(text)
        except ValueError:
            raise ParamError(
                f'invalid parameter "{name}": cannot parse "{text}" to a valid duration'
            ) from None
    if not math.isfinite(seconds) or seconds * 1000 > 2**63 - 1:
        raise ParamError(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration')
    return round(seconds * 1000)


def _honour_timeout(params: dict[str, list[str]]) -> None:
    """Prometheus' `timeout` parameter narrows the query's deadline (never past the
    query.timeout_seconds setting)."""
    text = _one(params, "timeout")
    running = budget.current()
    if text and running is not None:
        ms = parse_duration(text, "timeout")
        if ms <= 0:
            raise ParamError(f'invalid parameter "timeout": {text} is not a positive duration')
        running.narrow(ms / 1000)


def _number(params: dict[str, list[str]], name: str) -> int:
    """An integer parameter of the metadata API (-1 when absent or empty)."""
    text = _one(params, name)
    if not text:
        return -1
    try:
        return int(text)
    except ValueError:
        raise ParamError(f"{name} must be a number") from None


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _selectors(params: dict[str, list[str]], required: bool) -> list[list[LabelMatcher]]:
    texts = params.get("match[]", [])
    if required and not texts:
        raise ParamError("no match[] parameter provided")
    out: list[list[LabelMatcher]] = []
    for text in texts:
        try:
            node: Any = parse(text)
        except BadQueryError as exc:
            raise ParamError(str(exc)) from exc
        if not isinstance(node, promql_parser.VectorSelector):
            raise ParamError(f'invalid parameter "match[]": {text} is not a series selector')
        out.append(selector_matchers(node))
    return out


def _range(params: dict[str, list[str]]) -> tuple[int, int]:
    start = _one(params, "start")
    end = _one(params, "end")
    return (
        parse_time(start, "start") if start else MIN_TIME_MS,
        parse_time(end, "end") if end else MAX_TIME_MS,
    )


def _limited(params: dict[str, list[str]], found: list[Any]) -> Any:
    """At most `limit` results (Prometheus 2.49's parameter) and never more than the
    query.max_label_values setting; a cut answer carries Prometheus' warning."""
    text = _one(params, "limit")
    cap = budget.limits().max_label_values
    if text:
        try:
            wanted = int(text)
        except ValueError:
            raise ParamError(f'invalid parameter "limit": cannot parse "{text}"') from None
        if wanted < 0:
            raise ParamError('invalid parameter "limit": must be non-negative')
        cap = min(cap, wanted) if wanted else cap
    if len(found) <= cap:
        return found
    body = {
        "status": "success",
        "data": found[:cap],
        "warnings": [budget.TRUNCATED],
    }
    return JSONResponse(body)


def _labels_json(labels: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(labels)


def result_json(value: Value) -> dict[str, Any]:
    """`{resultType, result}` exactly as Prometheus writes it."""
    result: Any
    if isinstance(value, Scalar | String):
        shown = format_value(value.v) if isinstance(value, Scalar) else value.v
        result = [format_time(value.t), shown]
    elif isinstance(value, Vector):
        result = [
            {"metric": _labels_json(s.labels), "value": [format_time(s.t), format_value(s.v)]}
            for s in value.samples
        ]
    else:
        assert isinstance(value, Matrix)
        result = [
            {
                "metric": _labels_json(s.labels),
                "values": [[format_time(t), format_value(v)] for t, v in s.points],
            }
            for s in value.series
        ]
    return {"resultType": value_type(value), "result": result}


def refusal(error: Exception) -> Response:
    """A 400 `bad_data` for bad parameters and unparsable queries, 422 for evaluation errors,
    503 when the query timed out or the store is unavailable, in Prometheus's error envelope."""
    if isinstance(error, QueryTimeoutError):
        return _error("timeout", str(error), 503)
    if isinstance(error, StoreUnavailableError):
        return _error("unavailable", str(error), 503)
    if isinstance(error, QueryLimitError):
        return _error("execution", str(error), 422)
    if isinstance(error, PromQLError) and not isinstance(error, BadQueryError):
        return _error(error.kind, str(error), 422)
    return _error("bad_data", str(error), 400)


def _answer(data: Any) -> Response:
    """The `data` of a success envelope, or a whole body already written as bytes."""
    if isinstance(data, bytes):
        return Response(data, media_type="application/json")
    return _ok(data)


def _endpoint(work: Callable[[dict[str, list[str]], Request], Any]) -> Handler:
    return threaded(work, _answer, refusal, (ParamError, PromQLError), form=True, notes=WARNINGS)


def prometheus_routes(queryable: Queryable) -> list[Route]:
    engine = Engine(queryable)

    def query(params: dict[str, list[str]], _: Request) -> Any:
        text = _one(params, "query")
        if not text:
            raise ParamError('invalid parameter "query": query must not be empty')
        _honour_timeout(params)
        at = _one(params, "time")
        t_ms = parse_time(at) if at else round(datetime.now().timestamp() * 1000)
        return result_json(engine.instant(text, t_ms))

    def query_range(params: dict[str, list[str]], _: Request) -> Any:
        text = _one(params, "query")
        _honour_timeout(params)
        start, end, step = (_one(params, n) for n in ("start", "end", "step"))
        if not start or not end:
            raise ParamError(f'invalid parameter "{"start" if not start else "end"}": missing')
        if not step:
            raise ParamError('invalid parameter "step": cannot parse "" to a valid duration')
        start_ms, end_ms = parse_time(start, "start"), parse_time(end, "end")
        if end_ms < start_ms:
            raise ParamError('invalid parameter "end": end timestamp must not be before start time')
        step_ms = parse_duration(step, "step")
        if step_ms <= 0:
            raise ParamError(
                'invalid parameter "step": zero or negative query resolution step widths are '
                "not accepted. Try a positive integer"
            )
        if not text:
            raise ParamError('invalid parameter "query": query must not be empty')
        return matrix_json(engine.range_arrays(text, start_ms, end_ms, step_ms))

    def series(params: dict[str, list[str]], _: Request) -> Any:
        start, end = _range(params)
        found = series_labels(queryable, _selectors(params, True), start, end)
        return _limited(params, [_labels_json(labels) for labels in found])

    def labels(params: dict[str, list[str]], _: Request) -> Any:
        start, end = _range(params)
        return _limited(params, label_names(queryable, _selectors(params, False), start, end))

    def values(params: dict[str, list[str]], request: Request) -> Any:
        name = request.path_params["name"]
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise ParamError(f"invalid label name: {name!r}")
        start, end = _range(params)
        return _limited(
            params, label_values(queryable, name, _selectors(params, False), start, end)
        )

    def metadata(params: dict[str, list[str]], _: Request) -> Any:
        wanted = _one(params, "metric")
        # As Prometheus: at most `limit` metrics (negative: all); each has one entry here,
        # so `limit_per_metric` cuts nothing, but must be a number too.
        limit = _number(params, "limit")
        _number(params, "limit_per_metric")
        out: dict[str, list[dict[str, str]]] = {}
        for name, info in sorted(queryable.metadata().items()):
            if 0 <= limit <= len(out):
                break
            if wanted is None or wanted == name:
                out[name] = [{"type": info.type, "help": info.help, "unit": info.unit}]
        return out

    def buildinfo(params: dict[str, list[str]], _: Request) -> Any:
        return BUILD_INFO

    def format_query(params: dict[str, list[str]], _: Request) -> Any:
        """The query pretty-printed, as Prometheus' `/api/v1/format_query` (Grafana's
        "Format query" in the code editor); a query that does not parse is a 400."""
        text = _one(params, "query")
        if not text:
            raise ParamError('invalid parameter "query": query must not be empty')
        return parse(text).prettify()

    both = ["GET", "POST"]
    return [
        Route("/api/v1/query", _endpoint(query), methods=both),
        Route("/api/v1/query_range", _endpoint(query_range), methods=both),
        Route("/api/v1/series", _endpoint(series), methods=both),
        Route("/api/v1/labels", _endpoint(labels), methods=both),
        Route("/api/v1/label/{name}/values", _endpoint(values), methods=["GET"]),
        Route("/api/v1/metadata", _endpoint(metadata), methods=["GET"]),
        Route("/api/v1/status/buildinfo", _endpoint(buildinfo), methods=["GET"]),
        Route("/api/v1/format_query", _endpoint(format_query), methods=both),
    ]
