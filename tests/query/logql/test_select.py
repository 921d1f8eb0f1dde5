"""Reading entries for log and metric queries over real stores (memory and a DuckDB file):
paging with a limit and pushing filters down never change the answer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from meshscope.ingest.loki import decode_loki_json
from meshscope.query.logql import LogExpr, MetricExpr, parse
from meshscope.query.logql.metrics import Steps, evaluate
from meshscope.query.logql.select import Entry, Scan, entries
from meshscope.store.base import Storage
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, T0, S

END = T0 + 3600 * S


def _entries(storage: Storage, query: str, limit: int = 0, newest: bool = False) -> list[Entry]:
    expr = parse(query)
    assert isinstance(expr, LogExpr)
    return list(entries(storage.logs, expr, T0, END, Scan(), limit, newest))


def test_selector_and_filters_match_the_generated_lines(storage: Storage) -> None:
    got = _entries(storage, '{env="prod"} |= "handled" | logfmt | status >= 500 | __error__=""')
    want = [x for x in LINES if x.labels["env"] == "prod" and "=" in x.body and x.status >= 500]
    assert [e.line for e in got] == [x.body for x in want] and want
    got = _entries(
        storage,
        '{service_name=~"cart|pay", level!="info"} | json | duration > 400ms | __error__=""',
    )
    want = [
        x
        for x in LINES
        if x.service in ("cart", "pay")
        and x.level != "info"
        and x.body.startswith("{")
        and x.duration_ms > 400
    ]
    assert [e.time_ns for e in got] == [x.time_ns for x in want] and want
    assert got[0].labels["user_id"] == str(int(want[0].body.split('"id": ')[1].rstrip("}")))


@pytest.mark.parametrize("newest", [True, False])
def test_limit_keeps_the_newest_or_oldest(storage: Storage, newest: bool) -> None:
    want = [x.time_ns for x in LINES if x.service == "web" and x.level == "error"]
    want = want[::-1] if newest else want
    for limit in (1, 7, 1000):
        got = _entries(storage, '{service_name="web"} | detected_level="error"', limit, newest)
        assert [e.time_ns for e in got] == want[:limit]


def test_paging_over_many_records_at_one_instant(tmp_path: Path) -> None:
    storage = MemoryStorage()
    body = {
        "streams": [
            {
                "stream": {"app": "a"},
                "values": [[str(T0 + (i // 1500) * S), f"l{i}"] for i in range(4000)],
            }
        ]
    }

    storage.logs.write_logs(decode_loki_json(json.dumps(body).encode()).batch.logs)
    for newest in (True, False):
        got = _entries(storage, '{app="a"}', 3900, newest)
        assert len(got) == 3900 and len({e.line for e in got}) == 3900
        times = [e.time_ns for e in got]
        assert times == sorted(times, reverse=newest)


def _matrix(
    storage: Storage, query: str, steps: Steps
) -> dict[tuple[tuple[str, str], ...], dict[int, float]]:
    expr = parse(query)
    assert not isinstance(expr, LogExpr)
    metric: MetricExpr = expr
    return evaluate(storage.logs, metric, steps, Scan())


def test_count_over_time_by_label_matches_counting_by_hand(storage: Storage) -> None:
    steps = Steps(T0 + 300 * S, T0 + 1800 * S, 300 * S)
    got = _matrix(storage, 'sum by (level) (count_over_time({env=~".+"}[5m]))', steps)
    for index in range(steps.count):
        t = steps.time(index)
        want = Counter(x.level for x in LINES if t - 300 * S < x.time_ns <= t)
        have = {dict(k)["level"]: v[index] for k, v in got.items() if index in v}
        assert have == want
    rate = _matrix(storage, 'sum(rate({service_name="pay"} |= "status=500"[10m]))', steps)
    for index, value in rate[()].items():
        t = steps.time(index)
        count = sum(
            1
            for x in LINES
            if x.service == "pay" and "status=500" in x.body and t - 600 * S < x.time_ns <= t
        )
        assert value == pytest.approx(count / 600)
    doubled = _matrix(
        storage,
        'vector(10) - sum(rate({service_name="pay"} |= "status=500"[10m])) * vector(2)',
        steps,
    )
    for index, value in rate[()].items():
        assert doubled[()][index] == pytest.approx(10 - 2 * value)
    nbytes = _matrix(storage, 'sum(bytes_over_time({service_name="pay"}[5m]))', steps)
    (series,) = nbytes.values()
    t = steps.time(2)
    assert series[2] == sum(
        len(x.body) for x in LINES if x.service == "pay" and t - 300 * S < x.time_ns <= t
    )


def test_a_push_stored_twice_is_read_once(storage: Storage) -> None:
    """As Loki's queriers drop duplicates: the same time, labels and line are one entry
    (a retried push); a different line or label at that time is not a duplicate."""
    at = T0 + 100 * S + 7
    push = json.dumps(
        {"streams": [
            {"stream": {"job": "dup", "pod": "a"},
             "values": [[str(at), "same"], [str(at), "other"]]},
            {"stream": {"job": "dup", "pod": "b"}, "values": [[str(at), "same"]]},
        ]}
    ).encode()  # fmt: skip
    records = decode_loki_json(push).batch.logs
    storage.logs.write_logs(records)
    storage.logs.write_logs(records)  # the push again: stored, then retried
    for newest in (False, True):
        got = _entries(storage, '{job="dup"}', newest=newest)
        assert sorted((e.labels["pod"], e.line) for e in got) == [
            ("a", "other"), ("a", "same"), ("b", "same"),
        ]  # fmt: skip
    assert len(_entries(storage, '{job="dup"}', limit=2)) == 2
    steps = Steps(at + S, at + S, S)
    counted = _matrix(storage, 'sum(count_over_time({job="dup"}[1m]))', steps)
    assert counted[()][0] == 3
    # Two stored lines a line_format makes alike are two samples (Loki hashes the stored line).
    alike = _matrix(storage, 'sum(count_over_time({job="dup"} | line_format "x" [1m]))', steps)
    assert alike[()][0] == 3
