"""Jaeger's Service Performance Monitoring API (Jaeger UI's "Monitor" tab), from span metrics.

`GET /api/metrics/latencies|calls|errors` answer with Jaeger's `MetricFamily` in protobuf
JSON form: `{name, type: "GAUGE", help, metrics: [{labels: [{name, value}], metricPoints:
[{gaugeValue: {doubleValue}, timestamp}]}]}`, labels `service_name` and, grouped by
operation, `operation`. The series are what Jaeger's Prometheus metrics reader computes from
the OpenTelemetry spanmetrics connector's series, run through our own PromQL engine over the
span metrics meshscope derives (same names, labels and buckets): the `quantile` of
`duration_milliseconds` (ms), calls per second, and errors per call (0 where a series has
calls but no errors). Parameters as Jaeger's: repeated `service` (required), `quantile`
(latencies), `groupByOperation`, `endTs` (ms, default now), `lookback` (ms, default 1 h),
`step` (ms, default 5 s), `ratePer` (the rate window, ms, default 10 min), repeated
`spanKind` (default `server`). Bad ones are 400s in the Jaeger envelope.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meshscope.api.envelope import FastJSONResponse, jaeger_error
from meshscope.api.handlers import Handler, status_of, threaded
from meshscope.api.params import ParamError, integer, rfc3339
from meshscope.model.spans import SpanKind
from meshscope.pipeline.derive.spanmetrics import CALLS, DURATION
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import PromQLError
from meshscope.store.base import MetricStore

NowNs = Callable[[], int]
DEFAULT_LOOKBACK_MS = 3_600_000
DEFAULT_STEP_MS = 5_000
DEFAULT_RATE_PER_MS = 600_000
MAX_POINTS = 11_000  # per series, as Prometheus allows
_KINDS = {kind.name.lower(): kind.otel_name for kind in SpanKind}
_TRUE, _FALSE = ("true", "1", "t"), ("false", "0", "f", "")


def jaeger_metrics_routes(metrics: MetricStore, now_ns: NowNs = time.time_ns) -> list[Route]:
    engine = Engine(MetricStoreQueryable(metrics))

    def answer(request: Request, kind: str) -> Response:
        params = request.query_params
        services = params.getlist("service")
        if not services or not all(services):
            raise ParamError("unable to parse param 'service': please provide at least one")
        grouped = _bool(params.get("groupByOperation", ""), "groupByOperation")
        kinds = [_kind(k) for k in params.getlist("spanKind")] or [SpanKind.SERVER.otel_name]
        end_ms = _ms(params.get("endTs"), "endTs", now_ns() // 10**6)
        lookback = _ms(params.get("lookback"), "lookback", DEFAULT_LOOKBACK_MS, minimum=1)
        step = _ms(params.get("step"), "step", DEFAULT_STEP_MS, minimum=1)
        rate_per = _ms(params.get("ratePer"), "ratePer", DEFAULT_RATE_PER_MS, minimum=1)
        if lookback // step > MAX_POINTS:
            raise ParamError(f"lookback / step must be at most {MAX_POINTS} points")
        matchers = f'service_name=~"{_alternatives(services)}",span_kind=~"{_alternatives(kinds)}"'
        by = "service_name, span_name" if grouped else "service_name"
        scope = "service_operation" if grouped else "service"
        group = "service & operation" if grouped else "service"
        window = f"[{rate_per}ms]"

        def calls_rate(extra: str = "") -> str:
            return f"sum by ({by}) (rate({CALLS}{{{matchers}{extra}}}{window}))"

        calls = calls_rate()
        if kind == "latencies":
            quantile = _quantile(params.get("quantile"))
            query = (f"histogram_quantile({quantile!r}, sum by ({by}, le) "
                     f"(rate({DURATION}_bucket{{{matchers}}}{window})))")  # fmt: skip
            name, help_text = (
                f"{scope}_latencies",
                f"{quantile}th quantile latency, grouped by {group}",
            )
        elif kind == "calls":
            query = calls
            name, help_text = f"{scope}_call_rate", f"calls/sec, grouped by {group}"
        else:
            errors = calls_rate(',status_code="STATUS_CODE_ERROR"')
            query = f"({errors} or 0 * {calls}) / {calls}"
            name = f"{scope}_error_rate"
            help_text = "error rate, computed as a fraction of errors/sec over calls/sec, "
            help_text += f"grouped by {group}"
        try:
            matrix = engine.range(query, end_ms - lookback, end_ms, step)
        except PromQLError as error:  # not expected: the query is ours; say so clearly
            raise ParamError(f"cannot evaluate {kind}: {error}") from error
        family = {
            "name": name,
            "type": "GAUGE",
            "help": help_text,
            "metrics": [_metric(series.labels, series.points) for series in matrix.series],
        }
        return FastJSONResponse(family)

    def endpoint(kind: str) -> Handler:
        return threaded(
            lambda request: answer(request, kind),
            JSONResponse,
            lambda error: jaeger_error(status_of(error), str(error)),
        )

    return [
        Route(f"/api/metrics/{kind}", endpoint(kind), methods=["GET"])
        for kind in ("latencies", "calls", "errors")
    ]


def _metric(labels: Any, points: list[tuple[int, float]]) -> dict[str, Any]:
    names = {"service_name": "service_name", "span_name": "operation"}
    return {
        "labels": [{"name": names[k], "value": v} for k, v in labels if k in names],
        "metricPoints": [
            {"gaugeValue": {"doubleValue": value}, "timestamp": rfc3339(t_ms * 10**6)}
            for t_ms, value in points
            if math.isfinite(value)
        ],
    }


def _alternatives(values: list[str]) -> str:
    """A regex matching exactly these values, as a PromQL string body."""
    return "|".join(re.escape(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)


def _ms(text: str | None, name: str, default: int, minimum: int = 0) -> int:
    if text is None or text == "":
        return default
    try:
        return integer(text, name, minimum)
    except ParamError as error:
        raise ParamError(f"unable to parse param '{name}': {error}") from None


def _bool(text: str, name: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ParamError(f"unable to parse param '{name}': {text!r} is not true or false")


def _kind(text: str) -> str:
    kind = _KINDS.get(text.lower())
    if kind is None:
        raise ParamError(f"unable to parse param 'spanKind': unsupported span kind: '{text}'")
    return kind


def _quantile(text: str | None) -> float:
    try:
        value = float(text or "")
    except ValueError:
        why = f"strconv.ParseFloat: parsing {text or ''!r}: invalid syntax"
        raise ParamError(f"unable to parse param 'quantile': {why}") from None
    if not 0 < value < 1:
        raise ParamError("unable to parse param 'quantile': it must be between 0 and 1")
    return value
