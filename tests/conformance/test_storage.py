"""The storage conformance suite: every backend passes the same tests (see conftest.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from meshscope.model.logs import LogRecord, Severity
from meshscope.model.metrics import Histogram, MetricPoint, MetricType, labels_of
from meshscope.model.spans import Span, SpanEvent, SpanKind, SpanLink, StatusCode
from meshscope.query.increase import latest_of
from meshscope.store.base import (
    LabelMatcher,
    LogQuery,
    MatchOp,
    MetricFamily,
    Operation,
    Storage,
    TraceQuery,
)
from tests.conformance.backends import REOPEN, Backend, need

S = 1_000_000_000  # one second in ns
T0 = 1_700_000_000 * S


def tid(n: int) -> str:
    return f"{0xABCDEF00 + n:032x}"


def sid(n: int) -> str:
    return f"{0x1000 + n:016x}"


def span(trace: int, n: int, start_s: float, **kw: object) -> Span:
    """A span of trace `trace`, starting `start_s` seconds after T0, lasting 1 s by default."""
    start = T0 + int(start_s * S)
    fields: dict[str, object] = {
        "trace_id": tid(trace),
        "span_id": sid(trace * 100 + n),
        "name": "GET /",
        "service": "web",
        "start_ns": start,
        "end_ns": start + S,
    }
    fields.update(kw)
    return Span(**fields)  # type: ignore[arg-type]


def rich_span() -> Span:
    return Span(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id="00f067aa0ba902b7",
        name="POST /cart",
        service="cart",
        start_ns=T0 + 5,
        end_ns=T0 + 5 + 12_345_678,
        kind=SpanKind.SERVER,
        status_code=StatusCode.ERROR,
        status_message="boom",
        attributes={
            "http.method": "POST",
            "http.status_code": 500,
            "ratio": 0.25,
            "retry": True,
            "payload": b"\x00\xff",
            "tags": ["a", "b", 3],
            "nested": {"k": [1, 2], "s": "v"},
            "nothing": None,
            "": "empty key",
            "unicode": "héllo ✓",
        },
        events=(
            SpanEvent(T0 + 6, "exception", {"exception.type": "ValueError", "line": 12}),
            SpanEvent(T0 + 7, "retry"),
        ),
        links=(SpanLink("1af7651916cd43dd8448eb211c80319c", "c7ad6b7169203331", {"w": 1.5}),),
        resource={"service.name": "cart", "k8s.pod.name": "cart-1", "replicas": 3},
        scope_name="io.opentelemetry.flask",
        scope_version="1.2.3",
        trace_state="vendor=1",
        flags=1,
    )


# --- traces --------------------------------------------------------------------------------


def test_trace_round_trip_keeps_every_field_and_type(storage: Storage) -> None:
    original = rich_span()
    storage.traces.write_spans([original])
    assert storage.traces.get_trace(original.trace_id) == [original]


def test_get_trace_orders_by_start_across_writes(storage: Storage) -> None:
    late, early, middle = span(1, 1, 3.0), span(1, 2, 1.0), span(1, 3, 2.0)
    other = span(2, 1, 2.5)
    storage.traces.write_spans([late, other])
    storage.traces.write_spans([early])
    storage.traces.write_spans([middle])
    assert storage.traces.get_trace(tid(1)) == [early, middle, late]
    assert storage.traces.get_trace(tid(2)) == [other]


def test_get_trace_orders_equal_starts_by_span_id(storage: Storage) -> None:
    """Ties on start go by span id, whatever the order and the writes they came in (so every
    backend, and every node of a cluster, gives one order)."""
    c, a, d, b = span(1, 30, 1.0), span(1, 10, 1.0), span(1, 40, 0.5), span(1, 20, 1.0)
    storage.traces.write_spans([c, a])
    storage.traces.write_spans([d, b])
    assert storage.traces.get_trace(tid(1)) == [d, a, b, c]
    assert storage.traces.get_traces([tid(1)]) == {tid(1): [d, a, b, c]}


def test_get_trace_unknown_or_malformed_id_is_empty(storage: Storage) -> None:
    storage.traces.write_spans([span(1, 1, 0)])
    assert storage.traces.get_trace(tid(9)) == []
    assert storage.traces.get_trace("not-a-trace-id") == []
    assert storage.traces.get_trace("") == []


def _search_fixture(storage: Storage) -> None:
    storage.traces.write_spans(
        [
            span(1, 1, 10, service="web", name="GET /", resource={"env": "prod"}),
            span(1, 2, 11, service="db", name="SELECT", attributes={"db.rows": 10}),
            span(2, 1, 20, service="web", name="POST /", status_code=StatusCode.ERROR),
            span(3, 1, 30, service="web", name="GET /", end_ns=T0 + 35 * S),
            span(4, 1, 40, service="api", attributes={"http.status_code": 500, "ok": False}),
            span(5, 1, 50, service="api", attributes={"env": "dev"}, resource={"env": "prod"}),
        ]
    )


def _find(storage: Storage, **kw: object) -> list[str]:
    return storage.traces.find_trace_ids(TraceQuery(**kw))  # type: ignore[arg-type]


def test_find_traces_most_recent_first(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage) == [tid(5), tid(4), tid(3), tid(2), tid(1)]


def test_find_traces_by_service_and_operation(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, service="db") == [tid(1)]
    assert _find(storage, service="web") == [tid(3), tid(2), tid(1)]
    assert _find(storage, service="web", operation="GET /") == [tid(3), tid(1)]
    assert _find(storage, operation="SELECT") == [tid(1)]
    assert _find(storage, service="db", operation="GET /") == []  # same span must match
    assert _find(storage, service="nope") == []


def test_find_traces_by_attributes_text_form(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, attributes={"db.rows": "10"}) == [tid(1)]
    assert _find(storage, attributes={"http.status_code": "500"}) == [tid(4)]
    assert _find(storage, attributes={"ok": "false"}) == [tid(4)]
    assert _find(storage, attributes={"http.status_code": "500", "ok": "true"}) == []
    assert _find(storage, attributes={"missing": "x"}) == []


def test_find_traces_by_resource_attributes(storage: Storage) -> None:
    _search_fixture(storage)
    # Trace 5's span has its own `env` (dev) and its resource another (prod): either
    # matches, as Jaeger matches a span's or its process's tags.
    assert sorted(_find(storage, attributes={"env": "prod"})) == sorted([tid(1), tid(5)])
    assert _find(storage, attributes={"env": "dev"}) == [tid(5)]
    assert _find(storage, attributes={"env": "prod"}, service="db") == []


def test_find_traces_by_attribute_types(storage: Storage) -> None:
    storage.traces.write_spans([rich_span()])
    trace_id = rich_span().trace_id
    for key, text in [
        ("http.status_code", "500"),
        ("ratio", "0.25"),
        ("retry", "true"),
        ("payload", "00ff"),
        ("k8s.pod.name", "cart-1"),
        ("replicas", "3"),
    ]:
        assert _find(storage, attributes={key: text}) == [trace_id], key
    assert _find(storage, attributes={"nothing": ""}) == []
    assert _find(storage, attributes={"nothing": "None"}) == []


def test_find_traces_by_duration(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, min_duration_ns=2 * S) == [tid(3)]
    assert _find(storage, min_duration_ns=S, max_duration_ns=S) == [
        tid(5),
        tid(4),
        tid(2),
        tid(1),
    ]
    assert _find(storage, max_duration_ns=S - 1) == []
    assert _find(storage, min_duration_ns=5 * S) == [tid(3)]  # bounds are inclusive


def test_find_traces_errors_only(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, errors_only=True) == [tid(2)]
    assert _find(storage, errors_only=True, service="api") == []


def test_find_traces_time_range_is_half_open_on_span_start(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, start_ns=T0 + 20 * S, end_ns=T0 + 40 * S) == [tid(3), tid(2)]
    assert _find(storage, start_ns=T0 + 11 * S, end_ns=T0 + 12 * S) == [tid(1)]
    assert _find(storage, start_ns=T0 + 51 * S) == []


def test_find_traces_order_uses_the_trace_start(storage: Storage) -> None:
    # Trace 7 started first, but its matching span is the latest one.
    storage.traces.write_spans([span(7, 1, 1), span(8, 1, 5)])
    storage.traces.write_spans([span(7, 2, 9, service="db")])
    assert _find(storage) == [tid(8), tid(7)]
    assert _find(storage, start_ns=T0 + 8 * S) == [tid(7)]


def test_find_traces_limit(storage: Storage) -> None:
    _search_fixture(storage)
    assert _find(storage, limit=2) == [tid(5), tid(4)]
    assert _find(storage, service="web", limit=1) == [tid(3)]


def test_find_traces_ranking_agrees_with_a_model(storage: Storage) -> None:
    """Search against a model: traces whose first span (any service) starts long before
    their matching spans, many of them, several limits and windows. A store that takes
    traces by their newest matching span and looks up their first spans in rounds (ClickHouse)
    must still give the exact ranking by first span."""
    rng = random.Random(3)
    spans: list[Span] = []
    firsts = rng.sample(range(4000), 120)  # distinct first starts (deciseconds)
    for trace, first in enumerate(firsts, start=1):
        spans.append(span(trace, 0, first / 10, service="edge"))
        for n in range(1, rng.randrange(1, 4)):  # matching spans, up to 300 s later
            spans.append(span(trace, n, first / 10 + rng.uniform(0, 300), service="web"))
    rng.shuffle(spans)
    for chunk in range(0, len(spans), 50):
        storage.traces.write_spans(spans[chunk : chunk + 50])

    def model(start: int, end: int, limit: int) -> list[str]:
        first: dict[str, int] = {}
        for one in spans:
            first[one.trace_id] = min(first.get(one.trace_id, one.start_ns), one.start_ns)
        hits = {
            one.trace_id for one in spans if one.service == "web" and start <= one.start_ns < end
        }
        return sorted(hits, key=lambda trace_id: (first[trace_id], trace_id), reverse=True)[:limit]

    for start_s, end_s in ((0, 10_000), (100, 250), (390, 420)):
        start, end = T0 + start_s * S, T0 + end_s * S
        for limit in (1, 3, 20, 200):
            found = _find(storage, service="web", start_ns=start, end_ns=end, limit=limit)
            assert found == model(start, end, limit), (start_s, end_s, limit)


def test_span_counts_per_service_in_half_open_range(storage: Storage) -> None:
    _search_fixture(storage)
    assert storage.traces.span_counts() == {"web": 3, "db": 1, "api": 2}
    assert storage.traces.span_counts(T0 + 11 * S, T0 + 40 * S) == {"db": 1, "web": 2}
    assert storage.traces.span_counts(T0 + 100 * S) == {}


# --- logs ----------------------------------------------------------------------------------


def log(
    t: float, service: str = "web", trace: int = 0, **kw: object
) -> LogRecord:  # t in seconds after T0
    fields: dict[str, object] = {
        "time_ns": T0 + int(t * S),
        "body": f"line at {t}",
        "service": service,
        "trace_id": tid(trace) if trace else "",
        "span_id": sid(trace) if trace else "",
    }
    fields.update(kw)
    return LogRecord(**fields)  # type: ignore[arg-type]


def _logs_fixture(storage: Storage) -> list[LogRecord]:
    records = [
        log(1, trace=1, severity=Severity.INFO, severity_text="info"),
        log(2, "db", trace=1, attributes={"rows": 3}, resource={"zone": "a"}),
        log(3, attributes={"log.type": "access", "status": 503}),
        log(4, "db", severity=Severity.ERROR, attributes={"zone": "b"}, resource={"zone": "a"}),
        log(5, trace=2, attributes={"log.type": "access", "status": 200}),
    ]
    storage.logs.write_logs(records[:3])
    storage.logs.write_logs(records[3:])
    return records


def _logs(storage: Storage, **kw: object) -> list[LogRecord]:
    return storage.logs.find_logs(LogQuery(**kw))  # type: ignore[arg-type]


def test_log_round_trip_oldest_first(storage: Storage) -> None:
    records = _logs_fixture(storage)
    full = LogRecord(
        time_ns=T0,
        body="payment failed: ✗",
        service="pay",
        severity=22,  # FATAL2: every backend keeps the number as sent
        severity_text="CRITICAL",
        trace_id=rich_span().trace_id,
        span_id=rich_span().span_id,
        attributes={"n": 1, "f": 2.5, "b": False, "l": [1, "x"], "s": "t", "z": None},
        resource={"service.name": "pay", "cores": 4},
    )
    storage.logs.write_logs([full])
    assert _logs(storage) == [full, *records]


def test_logs_out_of_order_writes_come_back_by_time_then_write_order(storage: Storage) -> None:
    a, b, c, d = log(5, body="a"), log(1, body="b"), log(5, body="c"), log(3, body="d")
    storage.logs.write_logs([a, b])
    storage.logs.write_logs([c, d])
    assert _logs(storage) == [b, d, a, c]
    assert _logs(storage, limit=3) == [b, d, a]


def test_find_logs_by_trace_service_time_limit(storage: Storage) -> None:
    r = _logs_fixture(storage)
    assert _logs(storage, trace_id=tid(1)) == [r[0], r[1]]
    assert _logs(storage, trace_id=tid(9)) == []
    assert _logs(storage, trace_id="junk") == []
    assert _logs(storage, service="db") == [r[1], r[3]]
    assert _logs(storage, trace_id=tid(1), service="web") == [r[0]]
    assert _logs(storage, start_ns=T0 + 2 * S, end_ns=T0 + 4 * S) == [r[1], r[2]]
    assert _logs(storage, limit=2) == [r[0], r[1]]
    assert _logs(storage, service="db", limit=1) == [r[1]]


def test_find_logs_by_span_id(storage: Storage) -> None:
    r = _logs_fixture(storage)
    assert _logs(storage, span_id=sid(1)) == [r[0], r[1]]
    assert _logs(storage, span_id=sid(2), access=True) == [r[4]]
    assert _logs(storage, span_id=sid(1), service="db") == [r[1]]
    assert _logs(storage, span_id=sid(9)) == []
    assert _logs(storage, span_id="junk") == []
    assert _logs(storage, span_id="f" * 20) == []  # wider than 64 bits
    assert _logs(storage, span_id="0" * 16) == []  # not the records without a span


def test_find_logs_by_attributes_and_resource(storage: Storage) -> None:
    r = _logs_fixture(storage)
    assert _logs(storage, attributes={"status": "503"}) == [r[2]]
    assert _logs(storage, attributes={"rows": "3"}) == [r[1]]
    assert _logs(storage, attributes={"zone": "a"}) == [r[1]]  # r[3]'s own zone hides it
    assert _logs(storage, attributes={"zone": "b"}) == [r[3]]
    assert _logs(storage, attributes={"status": "None"}) == []


def test_find_logs_access_filter(storage: Storage) -> None:
    r = _logs_fixture(storage)
    assert _logs(storage, access=True) == [r[2], r[4]]
    assert _logs(storage, access=False) == [r[0], r[1], r[3]]
    assert _logs(storage, access=None) == r


def test_find_logs_newest_first_keeps_the_newest(storage: Storage) -> None:
    a, b, c, d = log(5, body="a"), log(1, body="b"), log(5, body="c"), log(3, body="d")
    storage.logs.write_logs([a, b])
    storage.logs.write_logs([c, d])
    assert _logs(storage, newest_first=True) == [c, a, d, b]
    assert _logs(storage, newest_first=True, limit=3) == [c, a, d]
    assert _logs(storage, newest_first=True, end_ns=T0 + 5 * S, limit=1) == [d]


def test_find_logs_body_contains_every_text(storage: Storage) -> None:
    records = [
        log(1, body="GET /cart 200"),
        log(2, body="GET /cart 500 error"),
        log(3, body="POST /pay 500 Error"),
        log(4, body="100% done_ok"),
    ]
    storage.logs.write_logs(records)
    assert _logs(storage, body_contains=("500",)) == records[1:3]
    assert _logs(storage, body_contains=("500", "error")) == [records[1]]
    assert _logs(storage, body_contains=("cart", "pay")) == []
    assert _logs(storage, body_contains=("%", "_")) == [records[3]]  # no LIKE wildcards
    assert _logs(storage, body_contains=("500",), newest_first=True, limit=1) == [records[2]]


def test_log_counts_per_service_in_half_open_range(storage: Storage) -> None:
    _logs_fixture(storage)
    assert storage.logs.log_counts() == {"web": 3, "db": 2}
    assert storage.logs.log_counts(T0 + 2 * S, T0 + 4 * S) == {"db": 1, "web": 1}
    assert storage.logs.log_counts(T0 + 9 * S) == {}


# --- metrics -------------------------------------------------------------------------------


def point(name: str, t: int, value: float = 1.0, **labels: str) -> MetricPoint:
    return MetricPoint(name, labels_of(labels), T0 + t * S, MetricType.COUNTER, value)


def _metrics_fixture(storage: Storage) -> None:
    storage.metrics.write_points(
        [
            point("calls_total", 1, 1, service="web", code="200"),
            point("calls_total", 1, 2, service="db"),
            point("other", 1, 9, service="web"),
            point("calls_total", 1, 3, service="api", code="500"),
        ]
    )
    storage.metrics.write_points(
        [point("calls_total", 2, 4, service="web", code="200"), point("calls_total", 2, 5)]
    )


def _select(storage: Storage, *matchers: tuple[str, str, str]) -> list[tuple[str, ...]]:
    """The `service` label of each selected series, in the order returned."""
    found = storage.metrics.select(
        "calls_total", [LabelMatcher(n, MatchOp(op), v) for n, op, v in matchers], 0, T0 * 2
    )
    return [tuple(dict(s.labels).get("service", "-") for _ in [0]) for s in found]


def test_select_series_in_first_write_order(storage: Storage) -> None:
    _metrics_fixture(storage)
    assert _select(storage) == [("web",), ("db",), ("api",), ("-",)]


def test_select_matchers(storage: Storage) -> None:
    _metrics_fixture(storage)
    assert _select(storage, ("service", "=", "db")) == [("db",)]
    assert _select(storage, ("service", "!=", "db")) == [("web",), ("api",), ("-",)]
    assert _select(storage, ("service", "=~", "w.*|api")) == [("web",), ("api",)]
    assert _select(storage, ("service", "=~", "e")) == []  # fully anchored
    assert _select(storage, ("service", "!~", "w.*")) == [("db",), ("api",), ("-",)]
    assert _select(storage, ("service", "!~", "e")) == [("web",), ("db",), ("api",), ("-",)]
    # A missing label matches "" as in Prometheus.
    assert _select(storage, ("code", "=", "")) == [("db",), ("-",)]
    assert _select(storage, ("code", "!=", "")) == [("web",), ("api",)]
    assert _select(storage, ("code", "=~", "5..|")) == [("db",), ("api",), ("-",)]
    assert _select(storage, ("service", "=", "web"), ("code", "=", "200")) == [("web",)]
    assert _select(storage, ("service", "=", "web"), ("code", "=", "500")) == []


def test_select_samples_in_time_order_inside_closed_window(storage: Storage) -> None:
    storage.metrics.write_points([point("m", 5, 5), point("m", 1, 1)])
    storage.metrics.write_points([point("m", 3, 3), point("m", 7, 7), point("n", 2)])
    [series] = storage.metrics.select("m", [], T0 + 1 * S, T0 + 5 * S)
    assert series.name == "m"
    assert series.labels == ()
    assert [p.value for p in series.samples] == [1, 3, 5]
    assert series.samples[0] == point("m", 1, 1)
    assert storage.metrics.select("m", [], T0 + 8 * S, T0 + 9 * S) == []
    assert storage.metrics.select("absent", [], 0, T0 * 2) == []


def test_select_leaves_out_series_without_samples_in_window(storage: Storage) -> None:
    _metrics_fixture(storage)
    found = storage.metrics.select("calls_total", [], T0 + 2 * S, T0 + 2 * S)
    assert [dict(s.labels).get("service") for s in found] == ["web", None]


def test_latest_is_the_last_sample_at_or_before_the_time_within_lookback(
    storage: Storage,
) -> None:
    _metrics_fixture(storage)
    storage.metrics.write_points([point("calls_total", 5, 7, service="db")])

    def latest(at: int, lookback: int, *matchers: LabelMatcher) -> list[tuple[str, float]]:
        found = storage.metrics.latest("calls_total", list(matchers), T0 + at * S, lookback * S)
        assert all(len(series.samples) == 1 for series in found)
        return [(dict(s.labels).get("service", "-"), s.samples[0].value) for s in found]

    assert latest(9, 100) == [("web", 4), ("db", 7), ("api", 3), ("-", 5)]
    assert latest(4, 100) == [("web", 4), ("db", 2), ("api", 3), ("-", 5)]
    assert latest(9, 7) == [("web", 4), ("db", 7), ("-", 5)]  # api's last sample is older
    assert latest(1, 0) == [("web", 1), ("db", 2), ("api", 3)]
    assert latest(0, 100) == []
    assert latest(9, 100, LabelMatcher("service", MatchOp.RE, "d.")) == [("db", 7)]
    assert storage.metrics.latest("absent", [], T0 * 2, T0) == []


def test_latest_picks_the_last_written_of_equal_times(storage: Storage) -> None:
    storage.metrics.write_points([point("m", 1, 1)])
    storage.metrics.write_points([point("m", 1, 2)])
    [series] = storage.metrics.latest("m", [], T0 + 1 * S, S)
    assert series.samples[0].value == 2


def test_latest_finds_samples_far_apart(storage: Storage) -> None:
    """Stores search backwards in growing windows: a series whose newest sample is hours
    before the lookup time is still found (and one born after it is not)."""
    hour = 3600
    storage.metrics.write_points([point("m", 0, 1, s="old"), point("m", 2 * hour, 2, s="new")])
    storage.metrics.write_points([point("m", 30 * hour, 3, s="later")])

    def latest(at: int, lookback: int) -> list[tuple[str, float]]:
        found = storage.metrics.latest("m", [], T0 + at * S, lookback * S)
        return [(dict(s.labels)["s"], s.samples[-1].value) for s in found]

    assert latest(2 * hour, 3 * hour) == [("old", 1), ("new", 2)]
    assert latest(2 * hour, hour) == [("new", 2)]
    assert latest(20 * hour, 20 * hour) == [("old", 1), ("new", 2)]
    assert latest(40 * hour, 40 * hour) == [("old", 1), ("new", 2), ("later", 3)]
    assert latest(hour, T0 // S + hour) == [("old", 1)]


def test_latest_of_several_names_equals_latest_of_each(storage: Storage) -> None:
    """`query.increase.latest_of` (one store call where the store offers `latest_of`)."""
    _metrics_fixture(storage)
    storage.metrics.write_points([point("other", 2, 9, service="db"), point("m", 8, 8)])
    names = ["calls_total", "other", "m", "absent"]
    matchers = [LabelMatcher("service", MatchOp.NE, "api")]
    for at, lookback in ((T0 + 9 * S, 100 * S), (T0 + 2 * S, 1 * S), (T0 + 9 * S, 0)):
        assert latest_of(storage.metrics, names, matchers, at, lookback) == {
            name: storage.metrics.latest(name, matchers, at, lookback) for name in names
        }
    found = latest_of(storage.metrics, names, matchers, T0 + 9 * S, 100 * S)
    assert {name: [s.samples[-1].value for s in found[name]] for name in names} == {
        "calls_total": [4, 2, 5],  # web, db, the unlabelled one; api is matched out
        "other": [9, 9],  # web (the fixture's), db
        "m": [8],
        "absent": [],
    }


def test_latest_through_reopen_late_writes_and_expiry(backend: Backend, tmp_path: Path) -> None:
    """The newest sample of a series, whichever way it became the newest: a store that keeps
    it aside (DuckDB) must agree with its own rows after a reopen, a late (older) write,
    a rewrite of the same time and retention."""
    need(backend, REOPEN)
    first = backend.open(tmp_path)
    first.metrics.write_points([point("m", 5, 5, s="a"), point("m", 3, 3, s="b")])
    first.metrics.write_points([point("m", 4, 4, s="a")])  # late: 5 stays the newest
    first.close()
    second = backend.open(tmp_path)

    def latest(at: int, lookback: int = 100) -> list[tuple[str, float]]:
        found = second.metrics.latest("m", [], T0 + at * S, lookback * S)
        return [(dict(s.labels)["s"], s.samples[-1].value) for s in found]

    try:
        assert latest(9) == [("a", 5), ("b", 3)]
        assert latest(4) == [("a", 4), ("b", 3)]
        second.metrics.write_points([point("m", 2, 2, s="a"), point("m", 6, 6, s="b")])
        assert latest(9) == [("a", 5), ("b", 6)]  # a's late write at 2 does not hide 5
        assert latest(5, 0) == [("a", 5)]
        second.metrics.write_points([point("m", 5, 50, s="a")])  # same time, written later
        assert latest(9) == [("a", 50), ("b", 6)]
        second.metrics.write_points([point("m", 7, 7, s="c")])  # a series born now
        assert latest(9) == [("a", 50), ("b", 6), ("c", 7)]
        assert latest(6) == [("a", 50), ("b", 6)]  # c has no sample that old
        second.metrics.write_points([point("m", 1, 1, s="c")])  # late: c's oldest now 1
        assert latest(6) == [("a", 50), ("b", 6), ("c", 1)]
        second.expire(T0 + 6 * S)  # a's samples are all older
        assert latest(9) == [("b", 6), ("c", 7)]
        assert latest(5) == []
    finally:
        second.close()


def test_latest_agrees_with_the_written_samples_across_days(storage: Storage) -> None:
    """`latest` against a model of the writes: series with samples over several UTC days
    (on both sides of midnight, rewrites of a time, late writes into earlier days, times
    before 1970), looked up at many times and lookbacks. A store that keeps each day's
    newest sample aside (ClickHouse's samples_latest) must still find a sample that is
    older than its day's newest."""
    rng = random.Random(11)
    day = 86_400 * S
    midnight = T0 - T0 % day
    times = [midnight + d * day + off for d in (-1, 0, 1, 2) for off in (-1, 0, 1, 3600 * S)]
    times += [-5 * S, -1, 0]
    written: list[tuple[int, int, float, str]] = []  # (time, write, value, series)
    for write in range(12):
        batch = []
        for _ in range(6):
            name = rng.choice("abc")
            batch.append((rng.choice(times), write, float(rng.randrange(1000)), name))
        written += batch
        storage.metrics.write_points(
            [MetricPoint("m", labels_of({"s": n}), t, MetricType.GAUGE, v) for t, _, v, n in batch]
        )

    def model(at: int, lookback: int) -> list[tuple[str, int, float]]:
        newest: dict[str, tuple[int, int, float]] = {}
        for t, w, v, n in written:  # later in the list = written later
            if at - lookback <= t <= at and (n not in newest or (t, w) >= newest[n][:2]):
                newest[n] = (t, w, v)
        return sorted((n, t, v) for n, (t, _, v) in newest.items())

    lookups = [(at + d, lb) for at in times for d in (-1, 0, 1) for lb in (0, 1, day, 3 * day)]
    for at, lookback in [*lookups, (midnight + 5 * day, 10 * day), (2**62, 2**62)]:
        found = storage.metrics.latest("m", [], at, lookback)
        got = sorted((dict(x.labels)["s"], x.samples[0].time_ns, x.samples[0].value) for x in found)
        assert got == model(at, lookback), (at - midnight, lookback)


def test_families_in_first_write_order_with_first_metadata(storage: Storage) -> None:
    storage.metrics.write_points(
        [
            MetricPoint("b_total", (), T0, MetricType.COUNTER, 1, help="B things.", unit="1"),
            MetricPoint("a", (), T0, MetricType.GAUGE, 1),
            MetricPoint("b_total", (("x", "y"),), T0, MetricType.COUNTER, 1, help="other"),
        ]
    )
    storage.metrics.write_points([MetricPoint("c", (), T0, MetricType.HISTOGRAM, 0)])
    storage.expire(T0 + 1)
    assert storage.metrics.families() == [
        MetricFamily("b_total", MetricType.COUNTER, "B things.", "1"),
        MetricFamily("a", MetricType.GAUGE),
        MetricFamily("c", MetricType.HISTOGRAM),
    ]


def test_histogram_and_metadata_round_trip(storage: Storage) -> None:
    hist = MetricPoint(
        name="duration_seconds",
        labels=labels_of({"service": "web", "span_kind": "SPAN_KIND_SERVER"}),
        time_ns=T0,
        type=MetricType.HISTOGRAM,
        histogram=Histogram((0.005, 0.1, 1.0), (3, 0, 7, 1), 4.25, 11),
        help="Span durations",
        unit="seconds",
    )
    gauge = MetricPoint("up", labels_of({"job": "x"}), T0 + 1, MetricType.GAUGE, 1.5, unit="1")
    empty = MetricPoint("duration_seconds", (), T0, MetricType.HISTOGRAM)
    empty_hist = Histogram((), (0,), 0.0, 0)
    zero = MetricPoint(
        "duration_seconds", (("z", "1"),), T0, MetricType.HISTOGRAM, histogram=empty_hist
    )
    storage.metrics.write_points([hist, gauge, empty, zero])
    found = storage.metrics.select("duration_seconds", [], T0, T0)
    assert [s.samples for s in found] == [[hist], [empty], [zero]]
    assert storage.metrics.select("up", [], 0, T0 * 2)[0].samples == [gauge]


def test_points_keep_their_own_metadata_bounds_and_large_counts(storage: Storage) -> None:
    """A point whose type, help or unit differ from its family's reads back with its own;
    bounds may change within a series; counts keep every bit."""
    first = MetricPoint(
        "rpc_seconds",
        (),
        T0,
        MetricType.HISTOGRAM,
        0,
        Histogram((0.5,), (1, 2), 1.5, 3),
        help="RPC latency",
        unit="seconds",
    )
    other = MetricPoint(
        "rpc_seconds",
        (),
        T0 + 1,
        MetricType.HISTOGRAM,
        0,
        Histogram((0.1, 1.0), (2**33, 0, 2**64 - 1), 2.0, 7),
        help="changed",
        unit="ms",
    )
    again = MetricPoint(
        "rpc_seconds", (), T0 + 2, MetricType.GAUGE, 4, help="RPC latency", unit="seconds"
    )
    storage.metrics.write_points([first])
    storage.metrics.write_points([other, again])
    [series] = storage.metrics.select("rpc_seconds", [], T0, T0 + 2)
    assert series.samples == [first, other, again]
    found = storage.metrics.select_histograms("rpc_seconds", [], T0, T0 + 2)
    assert [(h.bounds, h.counts.tolist()) for h in found] == [
        ((0.5,), [[1, 2]]),
        ((0.1, 1.0), [[2**33, 0, 2**64 - 1]]),
    ]
    assert storage.metrics.families() == [
        MetricFamily("rpc_seconds", MetricType.HISTOGRAM, "RPC latency", "seconds")
    ]


# --- catalog -------------------------------------------------------------------------------


def test_catalog_keeps_first_appearance_order(storage: Storage) -> None:
    get = Operation("web", "GET /", SpanKind.SERVER)
    post = Operation("web", "POST /", SpanKind.SERVER)
    call = Operation("web", "GET /", SpanKind.CLIENT)
    storage.catalog.note([Operation("db", "", SpanKind.INTERNAL), get])
    storage.catalog.note([post, get, Operation("api", "list", SpanKind.SERVER), call])
    storage.catalog.note([Operation("db", "", SpanKind.INTERNAL)])
    assert storage.catalog.services() == ["db", "web", "api"]
    assert storage.catalog.operations("web") == [get, post, call]
    assert storage.catalog.operations("db") == []
    assert storage.catalog.operations("nope") == []


# --- batches, retention, persistence -------------------------------------------------------


def test_write_batch_writes_every_pillar(storage: Storage) -> None:
    storage.write_batch(
        spans=[span(1, 1, 0)],
        logs=[log(0, trace=1)],
        points=[point("calls_total", 0, service="web")],
        operations=[Operation("web", "GET /", SpanKind.INTERNAL)],
    )
    storage.write_batch()
    assert storage.traces.get_trace(tid(1)) == [span(1, 1, 0)]
    assert _logs(storage, trace_id=tid(1)) == [log(0, trace=1)]
    assert _select(storage) == [("web",)]
    assert storage.catalog.services() == ["web"]


def test_expire_deletes_older_rows_only(storage: Storage) -> None:
    _search_fixture(storage)
    _logs_fixture(storage)
    _metrics_fixture(storage)
    storage.catalog.note([Operation("web", "GET /", SpanKind.INTERNAL)])
    # Logs and samples at 1-5 s; spans from 10 s, so only trace 1's first span is old.
    assert storage.expire(T0 + 2 * S) == 0 + 1 + 4
    assert storage.logs.log_counts() == {"db": 2, "web": 2}
    assert _select(storage) == [("web",), ("-",)]
    assert storage.expire(T0 + 11 * S) == 1 + 4 + 2
    survivor = span(1, 2, 11, service="db", name="SELECT", attributes={"db.rows": 10})
    assert storage.traces.get_trace(tid(1)) == [survivor]
    assert _find(storage, service="web") == [tid(3), tid(2)]
    assert storage.traces.span_counts() == {"web": 2, "db": 1, "api": 2}
    assert storage.logs.log_counts() == {}
    assert _select(storage) == []
    assert storage.catalog.services() == ["web"]
    assert storage.expire(T0 + 11 * S) == 0
    # A series that lost all its samples keeps its place in the order.
    storage.metrics.write_points([point("calls_total", 9, service="db")])
    storage.metrics.write_points([point("calls_total", 9, service="web", code="200")])
    assert _select(storage) == [("web",), ("db",)]


def test_trace_lookups_follow_retention_and_reopen(backend: Backend, tmp_path: Path) -> None:
    """Trace by id and the ranking by trace start agree with the spans left after retention,
    and again after a reopen (DuckDB: the trace locator, rebuilt from `trace_index`)."""
    need(backend, REOPEN)
    first = backend.open(tmp_path)
    first.traces.write_spans([span(1, 1, 10, service="web")])  # two writes of trace 1
    first.traces.write_spans([span(2, 1, 20, service="web")])
    first.traces.write_spans([span(1, 2, 30, service="web")])
    assert _find(first) == [tid(2), tid(1)]  # trace 1 starts at 10 s
    first.expire(T0 + 15 * S)
    assert first.traces.get_trace(tid(1)) == [span(1, 2, 30, service="web")]
    assert _find(first) == [tid(1), tid(2)]  # now at 30 s
    first.close()
    second = backend.open(tmp_path)
    try:
        assert second.traces.get_traces([tid(1), tid(2), tid(3)]) == {
            tid(1): [span(1, 2, 30, service="web")],
            tid(2): [span(2, 1, 20, service="web")],
        }
        assert _find(second) == [tid(1), tid(2)]
        second.expire(T0 + 25 * S)
        assert second.traces.get_trace(tid(2)) == []
        assert _find(second) == [tid(1)]
    finally:
        second.close()


def test_traces_sharing_half_of_their_id_stay_apart(storage: Storage) -> None:
    """Ids equal in one half (64-bit ids have a zero high half; some generators put a time
    or a counter in one half) are still different traces, to trace by id and to search."""
    a, b, c = (f"{high:016x}{0x77:016x}" for high in (1, 2, 3))
    d = f"{3:016x}{0x78:016x}"
    storage.traces.write_spans([replace(span(1, 1, 10), trace_id=a)])
    storage.traces.write_spans([replace(span(1, 2, 40), trace_id=b)])
    storage.traces.write_spans([replace(span(1, 3, 20), trace_id=c)])
    storage.traces.write_spans([replace(span(1, 4, 30), trace_id=d)])
    assert [s.start_ns for s in storage.traces.get_trace(a)] == [T0 + 10 * S]
    assert storage.traces.get_traces([b, c]) == {
        b: [replace(span(1, 2, 40), trace_id=b)],
        c: [replace(span(1, 3, 20), trace_id=c)],
    }
    assert _find(storage) == [b, d, c, a]


def test_data_survives_close_and_reopen(backend: Backend, tmp_path: Path) -> None:
    need(backend, REOPEN)
    first = backend.open(tmp_path)
    _search_fixture(first)
    records = _logs_fixture(first)
    _metrics_fixture(first)
    first.write_batch(spans=[rich_span()], operations=[Operation("web", "GET /", SpanKind.SERVER)])
    first.close()
    second = backend.open(tmp_path)
    try:
        assert second.traces.get_trace(rich_span().trace_id) == [rich_span()]
        assert _find(second) == [tid(5), tid(4), tid(3), tid(2), tid(1), rich_span().trace_id]
        assert _logs(second) == records
        assert _select(second) == [("web",), ("db",), ("api",), ("-",)]
        assert [f.name for f in second.metrics.families()] == ["calls_total", "other"]
        second.metrics.write_points([point("calls_total", 3, service="new")])
        assert _select(second) == [("web",), ("db",), ("api",), ("-",), ("new",)]
        second.catalog.note([Operation("db", "q", SpanKind.CLIENT)])
        assert second.catalog.services() == ["web", "db"]
        assert second.catalog.operations("web") == [Operation("web", "GET /", SpanKind.SERVER)]
    finally:
        second.close()
