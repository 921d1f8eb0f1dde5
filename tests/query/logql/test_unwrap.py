"""LogQL's unwrapped range aggregations (`| unwrap`), `absent_over_time`, and the vector
aggregations `stddev`, `stdvar`, `topk`, `bottomk`, over real stores (memory and a DuckDB
file): every answer is computed again here from the known lines (`tests/loki_data.py`)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from meshscope.go_parsers import parse_bytes
from meshscope.ingest.loki import decode_loki_json
from meshscope.query.logql import LogExpr, LogQLError, parse
from meshscope.query.logql.metrics import Matrix, Steps, evaluate
from meshscope.query.logql.select import Scan
from meshscope.store.base import Storage
from meshscope.store.memory import MemoryStorage
from tests.loki_data import LINES, T0, Line, S

STEPS = Steps(T0 + 600 * S, T0 + 1800 * S, 300 * S)
WINDOW = 600 * S
LOGFMT = [x for x in LINES if not x.body.startswith("{")]


def _matrix(storage: Storage, query: str, steps: Steps = STEPS) -> Matrix:
    expr = parse(query)
    assert not isinstance(expr, LogExpr)
    return evaluate(storage.logs, expr, steps, Scan())


def _by_service(
    lines: list[Line], value: Callable[[Line], float], steps: Steps = STEPS
) -> dict[str, dict[int, list[float]]]:
    """Each service's values in each step's window (oldest first)."""
    out: dict[str, dict[int, list[float]]] = defaultdict(dict)
    for index in range(steps.count):
        t = steps.time(index)
        for line in lines:
            if t - WINDOW < line.time_ns <= t:
                out[line.service].setdefault(index, []).append(value(line))
    return out


def _named(got: Matrix, name: str = "service_name") -> dict[str, dict[int, float]]:
    return {dict(key)[name]: points for key, points in got.items()}


def _status(line: Line) -> float:
    return float(line.status)


def test_unwrapped_functions_match_their_definitions(storage: Storage) -> None:
    windows = _by_service(LOGFMT, _status)
    definitions: dict[str, Callable[[list[float]], float]] = {
        "sum_over_time": sum,
        "avg_over_time": lambda vs: sum(vs) / len(vs),
        "min_over_time": min,
        "max_over_time": max,
        "first_over_time": lambda vs: vs[0],
        "last_over_time": lambda vs: vs[-1],
        "stdvar_over_time": lambda vs: float(np.var(vs)),
        "stddev_over_time": lambda vs: float(np.std(vs)),
        "rate": lambda vs: sum(vs) / 600,
    }
    for func, define in definitions.items():
        query = f'{func}({{env=~".+"}} |= "status=" | logfmt | unwrap status [10m])'
        # Only some functions take `by`; the others' series (each line's labels) are summed.
        query = (
            f"sum by (service_name) ({query})"
            if func in ("sum_over_time", "rate")
            else (f"{query} by (service_name)")
        )
        got = _named(_matrix(storage, query))
        want = {
            service: {index: define(vs) for index, vs in points.items()}
            for service, points in windows.items()
        }
        assert got.keys() == want.keys(), func
        for service, points in want.items():
            assert got[service].keys() == points.keys(), (func, service)
            for index, value in points.items():
                assert got[service][index] == pytest.approx(value), (func, service, index)


def test_quantile_over_time_of_durations(storage: Storage) -> None:
    """`duration()` reads Go durations in seconds; the quantile interpolates as Prometheus'
    (numpy's default method)."""
    windows = _by_service(LOGFMT, lambda x: x.duration_ms / 1000)
    for q in (0.5, 0.9, 0.99, 0.0, 1.0):
        query = (
            f'quantile_over_time({q}, {{env=~".+"}} |= "status=" | logfmt'
            " | unwrap duration(duration) [10m]) by (service_name)"
        )
        got = _named(_matrix(storage, query))
        for service, points in windows.items():
            for index, vs in points.items():
                assert got[service][index] == pytest.approx(float(np.quantile(vs, q)))
    over = _matrix(storage, 'quantile_over_time(1.5, {service_name="pay"} |= "status="'
                   " | logfmt | unwrap duration_seconds(duration) [10m])")  # fmt: skip
    assert all(v == math.inf for points in over.values() for v in points.values()) and over


def test_series_labels_drop_the_unwrapped_label_or_keep_the_grouping(storage: Storage) -> None:
    base = '{service_name="web"} |= "status=" | logfmt | unwrap status [10m]'
    plain = _matrix(storage, f"max_over_time({base})")
    assert plain and all("status" not in dict(key) for key in plain)
    assert all({"service_name", "env", "level", "msg", "duration", "path"} <= dict(key).keys()
               for key in plain)  # fmt: skip
    grouped = _matrix(storage, f"max_over_time({base}) by (level)")
    assert set(grouped) == {(("level", x.level),) for x in LOGFMT
                                        if x.service == "web"}  # fmt: skip
    dropped = "msg, path, duration, trace_id, span_id"
    without = _matrix(storage, f"max_over_time({base}) without ({dropped})")
    assert {(k["env"], k["level"]) for k in map(dict, without)} == {
        (x.labels["env"], x.level) for x in LOGFMT if x.service == "web"
    }
    assert {name for key in without for name, _ in key} == {
        "service_name", "env", "level", "detected_level"
    }  # fmt: skip


def test_conversion_errors_fail_the_query_unless_filtered(storage: Storage) -> None:
    """A value that is not a number is Loki's SampleExtractionErr: the metric query answers
    the pipeline error, unless a filter after the unwrap drops it; a line without the label is
    no sample at all."""
    with pytest.raises(LogQLError, match="SampleExtractionErr"):
        _matrix(storage, 'sum_over_time({service_name="pay"} |= "status=" | logfmt'
                         " | unwrap duration [10m])")  # fmt: skip
    filtered = _matrix(storage, 'sum_over_time({service_name="pay"} |= "status=" | logfmt'
                                ' | unwrap duration | __error__="" [10m])')  # fmt: skip
    assert filtered == {}
    # JSON lines have no `path`: no samples, and no error.
    assert _matrix(storage, 'sum_over_time({service_name="pay"} | json | unwrap path [10m])') == {}
    only_500 = _matrix(storage, 'sum(sum_over_time({env=~".+"} |= "status=" | logfmt'
                                " | unwrap status | status >= 500 [10m]))")  # fmt: skip
    for index, value in only_500[()].items():
        t = STEPS.time(index)
        assert value == sum(x.status for x in LOGFMT
                            if x.status >= 500 and t - WINDOW < x.time_ns <= t)  # fmt: skip


def test_rate_counter_and_bytes(tmp_path: Path) -> None:
    storage = MemoryStorage()
    values = [[str(T0 + k * 10 * S), f"total={100 + 5 * k} size={k}KiB"] for k in range(120)]
    push = {"streams": [{"stream": {"job": "c"}, "values": values}]}
    storage.logs.write_logs(decode_loki_json(json.dumps(push).encode()).batch.logs)
    steps = Steps(T0 + 600 * S, T0 + 1000 * S, 100 * S)
    query = 'rate_counter({job="c"} | logfmt | drop size | unwrap total [5m])'
    rate = _matrix(storage, query, steps)
    (points,) = rate.values()
    assert len(points) == steps.count
    assert all(v == pytest.approx(0.5) for v in points.values())  # 5 every 10 s
    sizes = _matrix(storage, 'max_over_time({job="c"} | logfmt | unwrap bytes(size) [1m]) by (job)',
                    steps)  # fmt: skip
    assert sizes == {(("job", "c"),): {i: 1024.0 * ((600 + 100 * i) // 10) for i in range(5)}}


def test_absent_over_time(storage: Storage) -> None:
    none = _matrix(storage, 'absent_over_time({service_name="nope", env=~".+"}[5m])')
    assert none == {(("service_name", "nope"),): dict.fromkeys(range(STEPS.count), 1.0)}
    late = Steps(T0 + 1500 * S, T0 + 2700 * S, 300 * S)  # the lines end at T0 + 1790 s
    some = _matrix(storage, 'absent_over_time({service_name="pay"}[1m])', late)
    assert some == {(("service_name", "pay"),): {2: 1.0, 3: 1.0, 4: 1.0}}


def test_vector_aggregations_stddev_and_topk(storage: Storage) -> None:
    inner = 'count_over_time({env=~".+"} |= "status=" | logfmt | status >= 400 [10m])'
    counts = _matrix(storage, f"sum by (service_name, level) ({inner})")
    for op, define in (("stddev", np.std), ("stdvar", np.var)):
        got = _matrix(storage, f"{op} by (service_name) (sum by (service_name, level) ({inner}))")
        for key, points in got.items():
            service = dict(key)["service_name"]
            for index, value in points.items():
                members = [p[index] for k, p in counts.items()
                           if dict(k)["service_name"] == service and index in p]  # fmt: skip
                assert value == pytest.approx(float(define(members)))
    for op, k in (("topk", 2), ("bottomk", 1)):
        got = _matrix(storage, f"{op}({k}, sum by (service_name, level) ({inner}))")
        for index in range(STEPS.count):
            ranked = sorted(
                ((p[index], key) for key, p in counts.items() if index in p),
                key=lambda item: (-item[0] if op == "topk" else item[0], item[1]),
            )
            want = {key for _, key in ranked[:k]}
            assert {key for key, p in got.items() if index in p} == want


@pytest.mark.parametrize(
    ("text", "value"),
    [("12kB", 12_000), ("1.5 MiB", 1_572_864), ("2,048", 2048), ("7", 7), ("3 Gi", 3 * 2**30),
     ("1.9b", 1), ("1 EB", 10**18), ("", None), ("kb", None), ("1 zb", None), ("1.2.3", None),
     ("18446744073709551616", None), ("5 k b", None)],
)  # fmt: skip
def test_go_bytes(text: str, value: int | None) -> None:
    assert parse_bytes(text) == value


def test_comparisons_set_operators_and_arithmetic(storage: Storage) -> None:
    """Alerting expressions: a comparison keeps the series where it holds (1/0 with `bool`),
    a number on the left keeps the series' value; `and`/`or`/`unless` per step on label
    sets; `%` and `^` by Prometheus' precedence (`^` right-associative)."""
    counts = _matrix(storage, 'sum by (level) (count_over_time({env=~".+"}[5m]))')
    values = {(key, index): v for key, points in counts.items() for index, v in points.items()}
    assert len(set(values.values())) > 1
    above = _matrix(storage, 'sum by (level) (count_over_time({env=~".+"}[5m])) > 30')
    assert {(k, i): v for k, p in above.items() for i, v in p.items()} == {
        ki: v for ki, v in values.items() if v > 30
    }
    flipped = _matrix(storage, '30 < sum by (level) (count_over_time({env=~".+"}[5m]))')
    assert flipped == above
    as_bool = _matrix(storage, 'sum by (level) (count_over_time({env=~".+"}[5m])) > bool 30')
    assert {(k, i): v for k, p in as_bool.items() for i, v in p.items()} == {
        ki: float(v > 30) for ki, v in values.items()
    }
    inner = 'sum by (level) (count_over_time({env=~".+"}[5m]))'
    both = _matrix(storage, f"{inner} and {inner} > 30")
    assert both == above
    rest = _matrix(storage, f"{inner} unless {inner} > 30")
    assert {(k, i) for k, p in rest.items() for i in p} == {
        ki for ki, v in values.items() if v <= 30
    }
    assert _matrix(storage, f"{inner} > 30 or {inner}") == counts
    arithmetic = _matrix(storage, f"{inner} % 7 + 2 ^ 3 ^ 0.5 * 2")
    for (key, index), value in values.items():
        assert arithmetic[key][index] == pytest.approx(value % 7 + 2 ** (3**0.5) * 2)
    assert _matrix(storage, "vector(2) ^ 2000 > bool vector(1)") == {
        (): dict.fromkeys(range(STEPS.count), 1.0)
    }


def test_offset_and_the_range_before_the_pipeline(storage: Storage) -> None:
    """`offset` moves each step's window back; `{...}[5m] | stages` is the same query as
    `{...} | stages [5m]` (Loki's grammar takes both)."""
    inner = '{env=~".+"} |= "status=" | logfmt | unwrap status'
    now = _matrix(storage, f"sum(sum_over_time({inner} [10m]))")
    later = Steps(STEPS.start_ns + 300 * S, STEPS.end_ns + 300 * S, STEPS.step_ns)
    shifted = _matrix(storage, f"sum(sum_over_time({inner} [10m] offset 5m))", later)
    assert shifted == now and now
    first = _matrix(storage, 'sum(sum_over_time({env=~".+"} [10m] |= "status=" | logfmt'
                             " | unwrap status))")  # fmt: skip
    assert first == now
    early = _matrix(storage, 'sum(count_over_time({env=~".+"}[10m] offset 5m | logfmt))', later)
    assert early == _matrix(storage, 'sum(count_over_time({env=~".+"} | logfmt [10m]))')
    gone = _matrix(storage, 'absent_over_time({service_name="pay"}[1m] offset 1y)')
    assert gone == {(("service_name", "pay"),): dict.fromkeys(range(STEPS.count), 1.0)}


@pytest.mark.parametrize(
    "inner",
    ['count_over_time({env=~".+"}[5m])', 'rate({env=~".+"} |= "status=" [10m] offset 1m)',
     'bytes_over_time({service_name=~"cart|pay"}[1m])',
     'sum_over_time({env=~".+"} |= "status=" | logfmt | unwrap status [5m])'],
)  # fmt: skip
@pytest.mark.parametrize("grouping", ["by (level)", "without (trace_id, span_id)", ""])
def test_a_sum_of_sums_equals_summing_the_series(
    storage: Storage, inner: str, grouping: str
) -> None:
    """`sum by (...) (count_over_time(...))` adds the samples by group at once: the same
    numbers as evaluating every series (one per trace id) and summing them."""
    series = _matrix(storage, inner)
    want: dict[tuple[tuple[str, str], ...], dict[int, float]] = defaultdict(dict)
    names = [n.strip() for n in grouping.split("(")[1].rstrip(")").split(",")] if grouping else []
    for key, points in series.items():
        if grouping.startswith("by"):
            group = tuple((k, v) for k, v in key if k in names)
        elif grouping:
            group = tuple((k, v) for k, v in key if k not in names)
        else:
            group = ()
        for index, value in points.items():
            want[group][index] = want[group].get(index, 0.0) + value
    got = _matrix(storage, f"sum {grouping} ({inner})")
    assert got.keys() == want.keys() and len(series) >= len(got)
    for key, points in want.items():
        assert got[key].keys() == points.keys()
        assert all(got[key][i] == pytest.approx(v) for i, v in points.items())
