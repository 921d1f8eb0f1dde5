"""The Loki query API (`/loki/api/v1/...`) over the LogStore, for Grafana's Loki data source.

Responses follow Loki's JSON exactly: `{status, data: {resultType, result, stats}}` with
streams as `{stream, values: [["<ns>", "line"]]}` and matrices/vectors in Prometheus shape
(float seconds, string values). Log lines carry Loki 3's three label categories (stream
labels, structured metadata, parsed labels; see query/logql/labels.py): with the request
header `X-Loki-Response-Encoding-Flags: categorize-labels` (Grafana sends it) a stream is its
stream labels and each value is `["<ns>", "line", {"structuredMetadata": {...}, "parsed":
{...}}]` (empty categories left out), with `data.encodingFlags: ["categorize-labels"]`;
without it, all labels are merged into `stream` and streams split by them, as Loki does.
Bad parameters and queries get a plain-text 400, as Loki answers them (the Grafana data
source shows that text).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from meshscope.api.handlers import WARNINGS, Handler, status_of, threaded
from meshscope.api.loki_params import (
    Params,
    one,
    parse_direction,
    parse_duration,
    parse_limit,
    parse_timestamp,
    time_range,
)
from meshscope.api.params import ParamError
from meshscope.api.trace_logs import trace_logs_route
from meshscope.clock import Clock, SystemClock
from meshscope.query.logql import LogExpr, LogQLError, parse
from meshscope.query.logql.labels import label_string
from meshscope.query.logql.metrics import Matrix, Steps, evaluate
from meshscope.query.logql.select import Entry, Scan, entries, label_sets
from meshscope.query.promql.values import format_time, format_value
from meshscope.store.base import LabelMatcher, Storage

HOUR_NS = 3600 * 10**9
LABELS_DEFAULT_NS = 6 * HOUR_NS
DEFAULT_LIMIT = 100
MAX_LIMIT = 5000  # Loki's max_entries_limit_per_query default
MAX_POINTS = 11_000  # Loki's (and Prometheus's) maximum points per series
LABEL_SCAN_RECORDS = 50_000
BUILD_INFO = {"version": "2.9.0", "revision": "meshscope", "branch": "meshscope",
              "buildUser": "meshscope", "buildDate": "", "goVersion": ""}  # fmt: skip
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
ENCODING_FLAGS_HEADER = "X-Loki-Response-Encoding-Flags"
CATEGORIZE_LABELS = "categorize-labels"

Work = Callable[[Params, Request], Any]


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def loki_endpoint(work: Work) -> Handler:
    def refuse(error: Exception) -> Response:
        return PlainTextResponse(str(error), status_of(error))

    return threaded(work, _json, refuse, (ParamError, LogQLError), form=True, notes=WARNINGS)


def _query(params: Params) -> Any:
    text = one(params, "query")
    if not text:
        raise ParamError("query is required (a LogQL query)")
    return parse(text)


def _stats(scan: Scan, started: float, returned: int) -> dict[str, Any]:
    elapsed = max(time.perf_counter() - started, 1e-9)
    return {
        "summary": {
            "bytesProcessedPerSecond": int(scan.bytes / elapsed),
            "linesProcessedPerSecond": int(scan.lines / elapsed),
            "totalBytesProcessed": scan.bytes,
            "totalLinesProcessed": scan.lines,
            "execTime": elapsed,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": returned,
        }
    }


def categorize(request: Request) -> bool:
    """Whether the client asked for labels by category (a comma-separated flag list)."""
    flags = ",".join(request.headers.getlist(ENCODING_FLAGS_HEADER)).split(",")
    return CATEGORIZE_LABELS in (flag.strip() for flag in flags)


def label_categories(entry: Entry) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """An entry's final labels as (stream labels, structured metadata, parsed): a label
    keeps the record's category while it has the record's value; others were parsed."""
    stream: dict[str, str] = {}
    metadata: dict[str, str] = {}
    parsed: dict[str, str] = {}
    for name, value in entry.labels.items():
        if entry.metadata.get(name) == value:
            metadata[name] = value
        elif entry.stream.get(name) == value:
            stream[name] = value
        else:
            parsed[name] = value
    return stream, metadata, parsed


def _categories(entry: Entry) -> tuple[dict[str, str], dict[str, Any]]:
    """An entry's final labels as (stream labels, {"structuredMetadata", "parsed"})."""
    stream, metadata, parsed = label_categories(entry)
    extra: dict[str, Any] = {}
    if metadata:
        extra["structuredMetadata"] = metadata
    if parsed:
        extra["parsed"] = parsed
    return stream, extra


def _streams(
    storage: Storage, expr: LogExpr, start: int, end: int, limit: int, backward: bool,
    categorized: bool,
) -> dict[str, Any]:  # fmt: skip
    started, scan = time.perf_counter(), Scan()
    streams: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    count = 0
    for entry in entries(storage.logs, expr, start, end, scan, limit, backward):
        value: list[Any] = [str(entry.time_ns), entry.line]
        labels = entry.labels
        if categorized:
            labels, extra = _categories(entry)
            value.append(extra)
        key = tuple(sorted(labels.items()))
        stream = streams.setdefault(key, {"stream": dict(key), "values": []})
        stream["values"].append(value)
        count += 1
    # Streams in the order of their label strings, as Loki sorts them (logqlmodel Streams).
    result = [streams[key] for key in sorted(streams, key=label_string)]
    data: dict[str, Any] = {"resultType": "streams", "result": result,
                            "stats": _stats(scan, started, count)}  # fmt: skip
    if categorized:
        data["encodingFlags"] = [CATEGORIZE_LABELS]
    return data


def _series_json(matrix: Matrix, steps: Steps, instant: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in sorted(matrix):
        points = matrix[key]
        pairs = [
            [format_time(steps.time(i) // 10**6), format_value(points[i])] for i in sorted(points)
        ]
        if instant:
            out.append({"metric": dict(key), "value": pairs[0]})
        else:
            out.append({"metric": dict(key), "values": pairs})
    return out


def _metric(storage: Storage, expr: Any, steps: Steps, instant: bool) -> dict[str, Any]:
    if steps.count > MAX_POINTS:
        raise ParamError(
            f"exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try "
            "increasing the value of the step parameter"
        )
    started, scan = time.perf_counter(), Scan()
    matrix = evaluate(storage.logs, expr, steps, scan)
    result = _series_json(matrix, steps, instant)
    returned = sum(len(points) for points in matrix.values())
    return {"resultType": "vector" if instant else "matrix", "result": result,
            "stats": _stats(scan, started, returned)}  # fmt: skip


def stream_selectors(params: Params, names: tuple[str, ...]) -> list[tuple[LabelMatcher, ...]]:
    out: list[tuple[LabelMatcher, ...]] = []
    for name in names:
        for text in params.get(name, []):
            if not text.strip():
                continue
            expr = parse(text)
            if not isinstance(expr, LogExpr) or expr.stages:
                raise ParamError(f"invalid {name}: {text!r} is not a stream selector")
            out.append(expr.matchers)
    return out or [()]


def loki_query_routes(storage: Storage, clock: Clock | None = None) -> list[Route]:
    """Loki's query API plus meshscope's logs-of-a-trace route, for the UI/API app."""
    clock = clock or SystemClock()

    def query_range(params: Params, request: Request) -> Any:
        expr = _query(params)
        start, end = time_range(params, clock.now_ns(), HOUR_NS)
        limit = parse_limit(one(params, "limit"), DEFAULT_LIMIT, MAX_LIMIT)
        backward = parse_direction(one(params, "direction"))
        if isinstance(expr, LogExpr):
            return {
                "status": "success",
                "data": _streams(storage, expr, start, end, limit, backward, categorize(request)),
            }
        step_text = one(params, "step")
        # Loki's defaultQueryRangeStep: max(floor(range / 250 s), 1) seconds.
        default_step = max(1, (end - start) // (250 * 10**9)) * 10**9
        step = parse_duration(step_text, "step") if step_text else default_step
        return {"status": "success", "data": _metric(storage, expr, Steps(start, end, step), False)}

    def query(params: Params, request: Request) -> Any:
        expr = _query(params)
        at_text = one(params, "time")
        at = parse_timestamp(at_text, "time") if at_text else clock.now_ns()
        limit = parse_limit(one(params, "limit"), DEFAULT_LIMIT, MAX_LIMIT)
        backward = parse_direction(one(params, "direction"))
        if isinstance(expr, LogExpr):
            start = max(at - HOUR_NS, 0)
            return {
                "status": "success",
                "data": _streams(storage, expr, start, at, limit, backward, categorize(request)),
            }
        return {"status": "success", "data": _metric(storage, expr, Steps(at, at, 1), True)}

    def _sets(params: Params) -> list[dict[str, str]]:
        start, end = time_range(params, clock.now_ns(), LABELS_DEFAULT_NS)
        found: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for matchers in stream_selectors(params, ("query", "match[]", "match")):
            for labels in label_sets(storage.logs, matchers, start, end, LABEL_SCAN_RECORDS):
                found.setdefault(tuple(sorted(labels.items())), labels)
        return list(found.values())

    def labels(params: Params, _: Request) -> Any:
        names = {name for labels in _sets(params) for name in labels}
        return {"status": "success", "data": sorted(names)}

    def label_values(params: Params, request: Request) -> Any:
        name = request.path_params["name"]
        if not _LABEL_NAME.fullmatch(name):
            raise ParamError(f"invalid label name: {name!r}")
        values = {labels[name] for labels in _sets(params) if name in labels}
        return {"status": "success", "data": sorted(values)}

    def series(params: Params, _: Request) -> Any:
        return {"status": "success", "data": _sets(params)}

    def buildinfo(params: Params, _: Request) -> Any:
        return BUILD_INFO

    both = ["GET", "POST"]
    return [
        Route("/loki/api/v1/query_range", loki_endpoint(query_range), methods=both),
        Route("/loki/api/v1/query", loki_endpoint(query), methods=both),
        Route("/loki/api/v1/labels", loki_endpoint(labels), methods=both),
        Route("/loki/api/v1/label/{name}/values", loki_endpoint(label_values), methods=both),
        Route("/loki/api/v1/series", loki_endpoint(series), methods=both),
        Route("/loki/api/v1/status/buildinfo", loki_endpoint(buildinfo), methods=["GET"]),
        trace_logs_route(storage),
    ]
