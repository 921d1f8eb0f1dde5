"""Checks of the ClickHouse access logs (typed `access_logs` rows rendered in SQL) that run on
both profiles: the 18.16 server (test_clickhouse_store.py) and chdb 26.9
(test_clickhouse_modern.py). `t0`: a time within the storage's retention (the modern
profile's TTL drops older parts by itself)."""

from __future__ import annotations

import random

from meshscope.model.access_logs import access_log
from meshscope.model.calls import Call
from meshscope.model.logs import LogRecord
from meshscope.store.base import LogQuery
from meshscope.store.clickhouse import ClickHouseStorage
from meshscope.store.clickhouse.access_logs import RANGE_NS

S = 1_000_000_000
T0 = 19_700 * 86_400 * S + 3600 * S


def durations() -> list[int]:
    """Durations whose texts are hard to get right: every one below 2,000 ns (scientific
    notation below 100 ns, the first ties), ties of `.3f` (`% 1000 == 500`: the double is
    above or below the decimal, or equal to it: 62,500 ns = 0.0625 ms), whole milliseconds
    (repr's ".0"), and random ones up to the typed range's end."""
    rng = random.Random(7)
    ties = [q * 1000 + 500 for q in range(3000)]
    ties += [rng.randrange(RANGE_NS // 1000) * 1000 + 500 for _ in range(500)]
    exact = [62_500 * (2 * k + 1) for k in range(200)]  # 0.0625 ms * odd: the double is exact
    whole = [k * 1_000_000 for k in range(50)] + [10**15, 7 * 10**15]
    spread = [rng.randrange(10 ** rng.randrange(1, 16)) for _ in range(2000)]
    edges = [RANGE_NS - 1, RANGE_NS - 500, 999_999, 1_000_001, 99, 100, 101]
    return list(range(2000)) + ties + exact + whole + spread + edges


def check_rendering(storage: ClickHouseStorage, t0: int = T0) -> None:
    """Every call reads back as the record `access_log` renders, its duration_ms attribute
    and body text included; calls out of the typed range (negative, too long) too."""
    values = [*durations(), -1, -1_500_500, RANGE_NS, 2**62]
    calls = [
        Call("web", "db", t0 + i, i % 3 == 0, d if i % 2 else 0, d, "tcp" if i % 5 else "",
             [0, 200, 503][i % 3], ["", "GET"][i % 2], ["", "/q"][i % 7 == 0],
             f"{i + 1:032x}", f"{i + 1:016x}")
        for i, d in enumerate(values)
    ]  # fmt: skip
    storage.write_encoded([], calls=calls)
    found = storage.logs.find_logs(LogQuery(limit=0))
    expected = [access_log(call) for call in calls]
    wrong = [(e, f) for e, f in zip(expected, found, strict=True) if e != f]
    assert not wrong, (len(wrong), wrong[:3])
    assert len(found) == len(expected)


def check_filters(storage: ClickHouseStorage, t0: int = T0) -> None:
    """Every LogQuery filter finds access logs as it found the generic rows before, and
    plain records and access logs interleave by (time, write order)."""
    trace = f"{0xABC:032x}"
    calls = [
        Call("cart", "db", t0 + 1, False, 2_000_500, 0, "", 200, "GET", "/items", trace, "1" * 16),
        Call("web", "cart", t0 + 2, True, 0, 1_000, "http", 500, "POST", "/pay", trace,
             "2" * 16),
        Call("cart", "pay", t0 + 2, False, 62_500, 0, "", 0, "", "", "", ""),
        Call("web", "db", t0 + 5, True, 10, 0, "", 0, "", "", f"{0xDEF:032x}", "3" * 16),
    ]  # fmt: skip
    lines = [
        LogRecord(t0 + 2, "plain cart", "cart", trace_id=trace, span_id="2" * 16,
                  attributes={"source.service": "cart", "n": 1},
                  resource={"service.name": "cart", "k8s.pod": "p1"}),
        LogRecord(t0 + 3, "plain db", "db", attributes={"http.response.status_code": 500}),
    ]  # fmt: skip
    storage.write_encoded([], logs=lines, calls=calls)
    a = [access_log(call) for call in calls]
    everything = [a[0], lines[0], a[1], a[2], lines[1], a[3]]

    def find(**kw: object) -> list[LogRecord]:
        return storage.logs.find_logs(LogQuery(**kw))  # type: ignore[arg-type]

    assert find() == everything
    assert find(newest_first=True) == everything[::-1]
    assert find(limit=3) == everything[:3]
    assert find(limit=2, newest_first=True) == [a[3], lines[1]]
    assert find(access=True) == a
    assert find(access=False) == lines
    assert find(access=True, limit=1, newest_first=True) == [a[3]]
    assert find(start_ns=t0 + 2, end_ns=t0 + 3) == [lines[0], a[1], a[2]]
    # Service (= the call's target), trace and span ids.
    assert find(service="cart") == [lines[0], a[1]]
    assert find(service="db") == [a[0], lines[1], a[3]]
    assert find(trace_id=trace) == [a[0], lines[0], a[1]]
    assert find(trace_id=trace, access=True) == [a[0], a[1]]
    assert find(trace_id=f"{0xDEF:032x}") == [a[3]]
    assert find(span_id="2" * 16) == [lines[0], a[1]]
    assert find(trace_id="zz") == []
    # Body text, `.3f` durations included.
    assert find(body_contains=("cart -> ",)) == [a[0], a[2]]
    assert find(body_contains=("2.001ms",)) == [a[0]]  # 2.0005 ms: the double is above
    assert find(body_contains=("0.062ms",)) == [a[2]]  # 0.0625 exactly: half to even
    assert find(body_contains=("POST /pay 500",)) == [a[1]]
    assert find(body_contains=("-> db - error 0.000ms",)) == [a[3]]
    assert find(body_contains=("plain", "db")) == [lines[1]]
    # Attributes, typed as `access_log` types them; the resource fallback of plain records.
    assert find(attributes={"source.service": "cart"}) == [a[0], lines[0], a[2]]
    assert find(attributes={"destination.service": "db"}) == [a[0], a[3]]
    assert find(attributes={"http.response.status_code": "500"}) == [a[1], lines[1]]
    assert find(attributes={"http.request.method": "GET", "url.path": "/items"}) == [a[0]]
    assert find(attributes={"error": "true"}) == [a[1], a[3]]
    assert find(attributes={"duration_ms": "0.0625"}) == [a[2]]
    assert find(attributes={"duration_ms": "1e-05"}) == [a[3]]
    assert find(attributes={"duration_ms": "2.0005", "log.type": "access"}) == [a[0]]
    assert find(attributes={"connection_type": "http"}) == [a[1]]
    assert find(attributes={"k8s.pod": "p1"}) == [lines[0]]
    assert find(attributes={"log.type": "access"}, service="pay") == [a[2]]
    assert find(attributes={"url.path": "/none"}) == []
    assert storage.logs.log_counts() == {"db": 3, "cart": 2, "pay": 1}
    assert storage.logs.log_counts(t0 + 2, t0 + 3) == {"cart": 2, "pay": 1}
