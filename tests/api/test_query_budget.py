"""The query budget as read routes apply it (api/handlers.threaded + query/budget.py): a
client that goes away cancels its query's work, a deadline stops it, limits refuse it, and
the budget's errors get each API's status; the RE2 module's semantics."""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlparse

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from meshscope.api.handlers import WARNINGS, Notes, status_of, threaded
from meshscope.model import regex
from meshscope.model.metrics import MetricPoint
from meshscope.query import budget
from meshscope.query.budget import (
    Budget,
    QueryLimitError,
    QueryLimits,
    QueryTimeoutError,
    QueryTooComplexError,
    check_depth,
    running,
)
from meshscope.query.promql import functions as fn
from meshscope.query.promql import range_functions
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import PromQLError
from meshscope.store.memory import MemoryStorage
from tests.serving import serving


def _refuse(error: Exception) -> Response:
    return JSONResponse({"error": str(error)}, status_code=status_of(error))


def test_a_client_that_goes_away_stops_its_query() -> None:
    started, stopped = threading.Event(), threading.Event()
    seen: list[BaseException] = []

    def endless(request: Request) -> object:
        started.set()
        try:
            while True:  # a query's loop: checks its budget once per unit of work
                budget.check()
                time.sleep(0.01)
        except QueryTimeoutError as error:
            seen.append(error)
            stopped.set()
            raise

    app = Starlette(routes=[Route("/q", threaded(endless, JSONResponse, _refuse))])
    with serving(app, force_exit=True) as url:
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=5)
        conn.request("GET", "/q")
        assert started.wait(10)
        conn.close()  # the client disconnects mid-query
        assert stopped.wait(10), "the query kept running after its client went away"
    assert "cancelled" in str(seen[0])


def test_deadline_stops_a_query_and_is_a_503() -> None:
    app = Starlette(routes=[Route("/q", threaded(_slow, JSONResponse, _refuse))])
    app.state.query_limits = QueryLimits(timeout_seconds=0.2)
    with serving(app, force_exit=True) as url:
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=10)
        began = time.monotonic()
        conn.request("GET", "/q")
        response = conn.getresponse()
        assert response.status == 503
        assert b"timed out" in response.read()
        assert time.monotonic() - began < 5


def _slow(request: Request) -> object:
    while True:
        budget.check()
        time.sleep(0.01)


def test_status_of_budget_errors() -> None:
    assert status_of(QueryTimeoutError("x")) == 503
    assert status_of(QueryLimitError("x")) == 422
    assert status_of(QueryTooComplexError("x")) == 400
    assert status_of(regex.RegexError("x")) == 400


def test_limits_refuse_series_samples_and_subquery_steps() -> None:
    storage = MemoryStorage()
    t0 = 10**12
    storage.metrics.write_points(
        [MetricPoint("g", (("i", str(i)),), (t0 + s * 1000) * 10**6, value=1.0)
         for i in range(5) for s in range(20)]
    )  # fmt: skip
    engine = Engine(MetricStoreQueryable(storage.metrics))
    with running(Budget(QueryLimits(max_subquery_steps=1000))), pytest.raises(QueryLimitError):
        engine.instant("count_over_time(vector(1)[30d:1ms])", t0)
    with running(Budget(QueryLimits(max_samples=99))), pytest.raises(QueryLimitError):
        engine.instant("count_over_time(g[1m])", t0 + 20_000)  # 5 series x 20 samples
    with running(Budget(QueryLimits(max_series=4))), pytest.raises(QueryLimitError):
        engine.instant("g", t0 + 20_000)
    with running(Budget(QueryLimits(max_samples=100, max_series=5))):
        assert engine.instant("count_over_time(g[1m])", t0 + 20_000) is not None
        assert engine.instant("count_over_time(vector(1)[1h:1m])", t0) is not None


def test_depth_bound_counts_brackets_and_operators_outside_quotes() -> None:
    check_depth('sum by (a) (rate(x{a=~"(((((((("}[5m]))', 5)
    check_depth('{a="b"} |= "((((((("', 3)
    with pytest.raises(QueryTooComplexError):
        check_depth("1" + "+1" * 10, 5)
    with pytest.raises(QueryTooComplexError):
        check_depth("(" * 6 + "1" + ")" * 6, 5)
    with pytest.raises(QueryTooComplexError):
        check_depth("a or b or c and d unless e or f", 4)


def test_engine_refuses_deep_queries_before_parsing() -> None:
    engine = Engine(MetricStoreQueryable(MemoryStorage().metrics))
    with running(Budget(QueryLimits(max_depth=150))), pytest.raises(QueryTooComplexError):
        engine.instant("1" + "+1" * 3000, 10**12)


def test_re2_semantics() -> None:
    assert regex.full_match("a.b", "a\nb")  # Prometheus' (?s)
    assert not regex.full_match("a", "ab")  # anchored
    assert regex.compile_pattern("b", anchored=False).search("abc") is not None
    assert regex.full_match("\\pL+", "héllo")
    assert regex.full_match("[[:alpha:]]+", "abc")
    with pytest.raises(regex.RegexError, match="invalid"):
        regex.check("(a)\\1")  # backreferences: not RE2
    began = time.monotonic()
    assert not regex.full_match("(a+)+$", "a" * 100_000 + "!")
    assert time.monotonic() - began < 5  # linear: Python's re would not finish


def test_logql_non_ascii_digits_are_a_parse_error() -> None:
    # Found by the schemathesis fuzz: `¹`.isdigit() is True, but no number pattern takes it.
    from meshscope.query.logql.lexer import LogQLError
    from meshscope.query.logql.parser import parse

    for query in ("¹~M", "x¹", '{a="b"} |= ¹'):
        with pytest.raises(LogQLError):
            parse(query)


def _warned_app() -> Starlette:
    """Routes whose work warns twice (once repeated) and answers in different shapes."""

    def work(shape: str) -> object:
        budget.warn('shard 2 "b" unreachable')
        budget.warn("shard 3 unreachable")
        budget.warn('shard 2 "b" unreachable')
        if shape == "text":
            return Response("plain", media_type="text/plain")
        if shape == "list":
            return JSONResponse([1, 2])
        return JSONResponse(
            {"status": "success", "data": [1], "warnings": ["truncated"]},
            headers={"Cache-Control": "no-store"},
        )

    def route(path: str, shape: str, notes: Notes | None) -> Route:
        return Route(path, threaded(lambda _: work(shape), JSONResponse, _refuse, notes=notes))

    jaeger = Notes("errors", lambda message: {"code": 503, "msg": message})
    return Starlette(
        routes=[
            route("/prom", "object", WARNINGS),
            route("/jaeger", "object", jaeger),
            route("/header-only", "object", None),
            route("/text", "text", WARNINGS),
            route("/list", "list", WARNINGS),
        ]
    )


def test_warnings_of_a_partial_answer_go_where_each_api_puts_them() -> None:
    header = '199 meshscope "shard 2 \\"b\\" unreachable", 199 meshscope "shard 3 unreachable"'
    with TestClient(_warned_app()) as client:
        prom = client.get("/prom")
        assert prom.status_code == 200 and prom.headers["warning"] == header
        assert prom.headers["cache-control"] == "no-store"  # the answer's own headers kept
        assert prom.json() == {
            "status": "success",
            "data": [1],
            "warnings": ["truncated", 'shard 2 "b" unreachable', "shard 3 unreachable"],
        }
        jaeger = client.get("/jaeger").json()
        assert jaeger["errors"] == [
            {"code": 503, "msg": 'shard 2 "b" unreachable'},
            {"code": 503, "msg": "shard 3 unreachable"},
        ]
        assert jaeger["warnings"] == ["truncated"]
        for path, body in (("/header-only", None), ("/text", "plain"), ("/list", [1, 2])):
            response = client.get(path)
            assert response.headers["warning"] == header
            if body == "plain":
                assert response.text == "plain"
            elif body is not None:
                assert response.json() == body
            else:
                assert response.json()["warnings"] == ["truncated"]


def test_an_answer_without_warnings_is_left_as_it_is() -> None:
    app = Starlette(routes=[Route("/q", threaded(lambda _: {"a": 1}, JSONResponse, _refuse,
                                                   notes=WARNINGS))])  # fmt: skip
    with TestClient(app) as client:
        response = client.get("/q")
        assert response.json() == {"a": 1} and "warning" not in response.headers
    budget.warn("outside a query: logged, not raised")


def _engine_over(series: int, samples: int) -> tuple[Engine, int]:
    """An engine over `series` gauges `g{i}` of `samples` samples 1 s apart, and the time of
    the last sample (ms)."""
    storage = MemoryStorage()
    t0 = 10**12
    storage.metrics.write_points(
        [MetricPoint("g", (("i", str(i)),), (t0 + s * 1000) * 10**6, value=float(s % 7))
         for i in range(series) for s in range(samples)]
    )  # fmt: skip
    return Engine(MetricStoreQueryable(storage.metrics)), t0 + (samples - 1) * 1000


def test_a_window_by_window_function_stops_when_its_query_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, end = _engine_over(4, 600)
    query = Budget(QueryLimits())
    calls = [0]
    quantile = fn.RANGE_FUNCTIONS["quantile_over_time"]

    def counted(ts: list[int], vs: list[float], w: fn.Window) -> float | None:
        calls[0] += 1
        if calls[0] == 10:
            query.cancel()  # as the handler does when the client goes away
        return quantile(ts, vs, w)

    monkeypatch.setitem(fn.RANGE_FUNCTIONS, "quantile_over_time", counted)
    with running(query), pytest.raises(QueryTimeoutError):
        # 4 series x 600 steps = 2,400 windows, each computed in Python
        engine.range("quantile_over_time(0.5, g[1m])", end - 599_000, end, 1000)
    assert calls[0] <= 10 + range_functions._CHECK_EVERY  # not every window


def test_clashing_labels_are_refused_before_the_windows_are_computed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage()
    t0 = 10**12
    storage.metrics.write_points(
        [MetricPoint(name, (("job", "a"),), (t0 + s * 1000) * 10**6, value=1.0)
         for name, first in (("x", 0), ("y", 200)) for s in range(first, first + 100)]
    )  # fmt: skip
    engine = Engine(MetricStoreQueryable(storage.metrics))
    calls = [0]
    quantile = fn.RANGE_FUNCTIONS["quantile_over_time"]

    def counted(ts: list[int], vs: list[float], w: fn.Window) -> float | None:
        calls[0] += 1
        return quantile(ts, vs, w)

    monkeypatch.setitem(fn.RANGE_FUNCTIONS, "quantile_over_time", counted)
    clash = 'quantile_over_time(0.5, {__name__=~"x|y"}[2m])'
    with pytest.raises(PromQLError, match="same labelset"):
        engine.range(clash, t0, t0 + 300_000, 1000)  # x's last windows meet y's first
    assert calls[0] == 0
    # Series that never have a value at the same step do not clash (as in Prometheus).
    apart = 'quantile_over_time(0.5, {__name__=~"x|y"}[10s])'
    found = engine.range(apart, t0, t0 + 300_000, 1000)
    assert [s.labels for s in found.series] == [(("job", "a"),)]
    assert calls[0] == len(found.series[0].points) > 0  # each window computed once
