"""A reader of Prometheus's PromQL `.test` files (promql/promqltest) over our engine.

Supported commands: `load <interval>` with series lines (`a+bxN`, `a-bxN`, `axN`, `_`,
`_xN`, `stale`, `NaN`, `Inf`), `clear`, `eval[_ordered|_fail] instant at <dur> <expr>` with
expected lines (`{labels} value` or a bare scalar), and
`eval[_fail] range from <dur> to <dur> step <dur> <expr>` with expected `{labels} v1 v2 ...`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser

from meshscope.model.metrics import Labels, MetricPoint
from meshscope.query.promql.engine import Engine
from meshscope.query.promql.queryable import MetricStoreQueryable
from meshscope.query.promql.values import (
    NAME,
    STALE_NAN,
    Matrix,
    PromQLError,
    Scalar,
    Vector,
    make_labels,
)
from meshscope.store.base import MetricStore
from meshscope.store.memory import MemoryMetricStore

_EVAL = re.compile(r"^eval(_ordered|_fail)?\s+instant\s+at\s+(\S+)\s+(.+)$")
_RANGE = re.compile(r"^eval(_fail)?\s+range\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.+)$")
_ITEM = re.compile(r"^([-+]?[\w.]+|_)(?:([-+])([\w.]+))?x(\d+)$")


def duration_ms(text: str) -> int:
    if re.fullmatch(r"\d+", text):
        return int(text) * 1000
    if re.fullmatch(r"0[a-z]+", text):
        return 0
    return round(promql_parser.parse_duration(text).total_seconds() * 1000)


def number(text: str) -> float:
    if text == "stale":
        return STALE_NAN
    return float(text)


def expand_values(text: str) -> list[float | None]:
    """`0+10x3 _ 5 stale` -> [0, 10, 20, 30, None, 5, STALE]."""
    out: list[float | None] = []
    for item in text.split():
        match = _ITEM.match(item)
        if match is None:
            out.append(None if item == "_" else number(item))
            continue
        start, sign, delta, times = match.groups()
        if start == "_":
            out.extend([None] * int(times))
            continue
        step = float(delta or 0) * (-1 if sign == "-" else 1)
        out.extend(number(start) + step * i for i in range(int(times) + 1))
    return out


def split_series(line: str) -> tuple[Labels, str]:
    """A series descriptor and the rest of the line."""
    depth, end = 0, len(line)
    quoted = False
    for index, char in enumerate(line):
        if char == '"' and (index == 0 or line[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "{":
            depth += 1
        elif not quoted and char == "}":
            depth -= 1
            if depth == 0:
                end = index + 1
                break
        elif not quoted and depth == 0 and char.isspace():
            end = index
            break
    descriptor, rest = line[:end].strip(), line[end:]
    if descriptor == "{}":
        return (), rest
    node = promql_parser.parse(descriptor)
    assert isinstance(node, promql_parser.VectorSelector), descriptor
    pairs = [(m.name, m.value) for m in node.matchers.matchers]
    if node.name:
        pairs.append((NAME, node.name))
    return make_labels(pairs), rest


@dataclass
class Case:
    """One eval command: where it is, what to run, what to expect."""

    file: str
    line: int
    expr: str
    points: list[MetricPoint]
    start: int
    end: int = 0
    step: int = 0
    is_range: bool = False
    fail: bool = False
    ordered: bool = False
    expected: list[tuple[Labels, list[float | None]]] = field(default_factory=list)
    scalar: float | None = None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def load_cases(path: Path) -> list[Case]:
    lines = path.read_text().splitlines()
    cases: list[Case] = []
    points: list[MetricPoint] = []
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line == "clear":
            points = []
        elif line.startswith("load "):
            interval = duration_ms(line.split()[1])
            while index < len(lines) and lines[index].startswith((" ", "\t")):
                points += _series_points(lines[index].strip(), interval)
                index += 1
        elif line.startswith("eval"):
            case = _eval_case(path.name, index, line, list(points))
            while index < len(lines) and lines[index].startswith((" ", "\t")):
                _expect(case, lines[index].strip())
                index += 1
            cases.append(case)
        else:
            raise ValueError(f"{path.name}:{index}: cannot read {line!r}")
    return cases


def _series_points(line: str, interval: int) -> list[MetricPoint]:
    labels, rest = split_series(line)
    name = dict(labels).get(NAME, "")
    others = tuple(p for p in labels if p[0] != NAME)
    out = []
    for i, value in enumerate(expand_values(rest)):
        if value is not None:
            out.append(MetricPoint(name, others, i * interval * 1_000_000, value=value))
    return out


def _eval_case(file: str, line_no: int, line: str, points: list[MetricPoint]) -> Case:
    match = _RANGE.match(line)
    if match:
        flag, start, end, step, expr = match.groups()
        return Case(
            file, line_no, expr, points, duration_ms(start), duration_ms(end),
            duration_ms(step), is_range=True, fail=flag == "_fail",
        )  # fmt: skip
    match = _EVAL.match(line)
    if match is None:
        raise ValueError(f"{file}:{line_no}: cannot read {line!r}")
    flag, at, expr = match.groups()
    return Case(
        file, line_no, expr, points, duration_ms(at), fail=flag == "_fail",
        ordered=flag == "_ordered",
    )  # fmt: skip


def _expect(case: Case, line: str) -> None:
    if re.fullmatch(r"[-+]?(\d|\.|Inf|NaN)[\w.+-]*", line):
        case.scalar = number(line)
        return
    labels, rest = split_series(line)
    case.expected.append((labels, expand_values(rest)))


def run(case: Case, store: MetricStore | None = None) -> int:
    """Evaluate a case with both evaluators and raise AssertionError on any difference:
    range cases run on the vectorised and the per-step evaluator (each must give the expected
    result), instant cases on the per-step one and, as a one-step range query, on the
    vectorised one, which must agree. Returns the number of nodes the vectorised evaluator
    handed to the per-step one. `store` is an empty store to load the case into (a fresh
    in-memory one when None)."""
    store = MemoryMetricStore() if store is None else store
    store.write_points(case.points)
    queryable = MetricStoreQueryable(store)
    if case.is_range:
        _check(case, Engine(queryable, vectorised=False))
        engine = Engine(queryable)
        _check(case, engine)
        return engine.last_fallbacks
    _check(case, Engine(queryable, vectorised=False))
    return _agree_at_one_step(case, queryable) + agree_over_range(case, queryable)


def agree_over_range(case: Case, queryable: MetricStoreQueryable) -> int:
    """The vectorised and the per-step evaluator give the same range query result (or both
    fail) over the whole loaded data, on a grid not aligned with the samples."""
    last = max([p.time_ns // 1_000_000 for p in case.points] + [case.start])
    start, step = 7_000, max(1_000, (last + 120_000) // 40 // 1000 * 1000 + 3_000)
    end = last + 120_000
    outcomes: list[Matrix | str] = []
    vectorised = Engine(queryable)
    for engine in (Engine(queryable, vectorised=False), vectorised):
        try:
            outcomes.append(engine.range(case.expr, start, end, step))
        except PromQLError as exc:
            outcomes.append(type(exc).__name__)
    per_step, got = outcomes
    if isinstance(per_step, str) or isinstance(got, str):
        assert type(per_step) is type(got), f"{case.id}: {case.expr}: {per_step} vs {got}"
        return vectorised.last_fallbacks
    assert isinstance(per_step, Matrix) and isinstance(got, Matrix)
    want = {s.labels: s.points for s in per_step.series}
    found = {s.labels: s.points for s in got.series}
    assert set(found) == set(want), f"{case.id}: {case.expr}: {sorted(found)} != {sorted(want)}"
    for labels, points in want.items():
        other = found[labels]
        same = [t for t, _ in points] == [t for t, _ in other] and all(
            close(a, b) for (_, a), (_, b) in zip(points, other, strict=True)
        )
        assert same, f"{case.id}: {case.expr} {labels}: vectorised {other} != per-step {points}"
    return vectorised.last_fallbacks


def _agree_at_one_step(case: Case, queryable: MetricStoreQueryable) -> int:
    per_step = Engine(queryable)
    vectorised = Engine(queryable)
    try:
        want: object = per_step.instant(case.expr, case.start)
    except PromQLError:
        want = None
    if not isinstance(want, Vector | Scalar | type(None)):
        return 0  # a range vector or string: not a range query's result
    try:
        got = vectorised.range(case.expr, case.start, case.start, 1)
    except PromQLError as exc:
        failed = f"{case.id}: {case.expr}: vectorised failed: {exc}"
        assert want is None, failed
        return vectorised.last_fallbacks
    assert want is not None, f"{case.id}: {case.expr}: vectorised did not fail: {got}"
    expected: dict[Labels, list[float]]
    if isinstance(want, Scalar):
        expected = {(): [want.v]}
    else:
        expected = {s.labels: [s.v] for s in want.samples}
    found = {s.labels: [v for _, v in s.points] for s in got.series}
    assert set(found) == set(expected), f"{case.id}: {case.expr}: {found} != {expected}"
    for labels, values in expected.items():
        assert close(values[0], found[labels][0]), f"{case.id}: {labels}: {found} != {expected}"
    return vectorised.last_fallbacks


def _check(case: Case, engine: Engine) -> None:
    try:
        if case.is_range:
            result: object = engine.range(case.expr, case.start, case.end, case.step)
        else:
            result = engine.instant(case.expr, case.start)
    except PromQLError as exc:
        if not case.fail:
            raise AssertionError(f"{case.id}: {case.expr}: unexpected error {exc}") from exc
        return
    assert not case.fail, f"{case.id}: {case.expr}: expected an error, got {result}"
    if case.scalar is not None:
        assert isinstance(result, Scalar), f"{case.id}: expected a scalar, got {result}"
        assert close(result.v, case.scalar), f"{case.id}: {result.v} != {case.scalar}"
        return
    got = _got(case, result)
    want = dict(case.expected)
    assert set(got) == set(want), f"{case.id}: {case.expr}\n got {sorted(got)}\nwant {sorted(want)}"
    for labels, values in want.items():
        same = len(values) == len(got[labels]) and all(
            (a is None and b is None) or (a is not None and b is not None and close(a, b))
            for a, b in zip(values, got[labels], strict=True)
        )
        assert same, f"{case.id}: {case.expr} {labels}: got {got[labels]}, want {values}"
    if case.ordered:
        order = [labels for labels, _ in case.expected]
        assert list(got) == order, f"{case.id}: order {list(got)} != {order}"


def _got(case: Case, result: object) -> dict[Labels, list[float | None]]:
    if isinstance(result, Vector):
        return {s.labels: [s.v] for s in result.samples}
    assert isinstance(result, Matrix), f"{case.id}: unexpected result {result}"
    if not case.is_range:
        return {s.labels: [v for _, v in s.points] for s in result.series}
    steps = list(range(case.start, case.end + 1, case.step))
    out: dict[Labels, list[float | None]] = {}
    for series in result.series:
        by_time = dict(series.points)
        out[series.labels] = [by_time.get(t) for t in steps]
    return out


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))
