"""Running a LogQL pipeline over one entry: line filters, parsers, label filters, formatting.

`run(stages, labels, line, time_ns)` returns the entry's final labels and line, or None when a stage
drops it. Parser failures do not drop an entry: they set `__error__` (`JSONParserErr`,
`LogfmtParserErr`) as Loki does, and so do failed numeric/duration conversions in label
filters (`LabelFilterErr`), which then keep the entry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import orjson

from meshscope.query.logql.ast import (
    BoolFilter,
    Comparison,
    LabelFilter,
    LabelFilterStage,
    LabelFormat,
    LabelsStage,
    LineFilter,
    LineFormat,
    Parser,
    Stage,
)
from meshscope.query.logql.labels import label_name
from meshscope.query.logql.lexer import duration_ns

ERROR_LABEL = "__error__"
ERROR_DETAILS_LABEL = "__error_details__"
_LOGFMT = re.compile(r'([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?')


def run(
    stages: Sequence[Stage], labels: dict[str, str], line: str, time_ns: int = 0
) -> tuple[dict[str, str], str] | None:
    for stage in stages:
        if isinstance(stage, LineFilter):
            if not stage.keeps(line):
                return None
        elif isinstance(stage, Parser):
            labels = dict(labels)
            if stage.kind == "json":
                _parse_json(line, labels)
            else:
                _parse_logfmt(line, labels)
        elif isinstance(stage, LabelFilterStage):
            verdict = _holds(stage.expr, labels)
            if verdict is None:
                labels = {**labels, ERROR_LABEL: "LabelFilterErr"}
            elif not verdict:
                return None
        elif isinstance(stage, LineFormat):
            line = stage.template.render(labels, line, time_ns)
        elif isinstance(stage, LabelFormat):
            labels = _label_format(stage, labels, line, time_ns)
        elif isinstance(stage, LabelsStage):
            names = set(stage.names)
            labels = {k: v for k, v in labels.items() if (k in names) == stage.keep}
    return labels, line


def _label_format(
    stage: LabelFormat, labels: dict[str, str], line: str, time_ns: int
) -> dict[str, str]:
    out = dict(labels)
    for item in stage.assignments:
        if item.template is not None:
            value = item.template.render(labels, line, time_ns)
        else:
            value = labels.get(item.source, "")
            out.pop(item.source, None)
        if value:
            out[item.name] = value
        else:
            out.pop(item.name, None)
    return out


def _add(labels: dict[str, str], key: str, value: str) -> None:
    """An extracted label; one clashing with an existing label gets `_extracted` appended."""
    name = label_name(key)
    if name in labels:
        name += "_extracted"
    if value != "":
        labels[name] = value


def _parse_json(line: str, labels: dict[str, str]) -> None:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        labels[ERROR_LABEL] = "JSONParserErr"
        labels[ERROR_DETAILS_LABEL] = str(error)
        return
    if not isinstance(document, dict):
        labels[ERROR_LABEL] = "JSONParserErr"
        labels[ERROR_DETAILS_LABEL] = "the line is not a JSON object"
        return
    _flatten(document, "", labels)


def _flatten(document: dict[str, Any], prefix: str, labels: dict[str, str]) -> None:
    # Depth first in document order, with an explicit stack: orjson accepts objects nested
    # 1,024 deep, deeper than Python's recursion allows.
    stack = [(prefix, iter(document.items()))]
    while stack:
        prefix, items = stack[-1]
        entry = next(items, None)
        if entry is None:
            stack.pop()
            continue
        key, value = entry
        name = f"{prefix}_{key}" if prefix else key
        if isinstance(value, dict):
            stack.append((name, iter(value.items())))
        elif isinstance(value, list):
            continue  # Loki skips arrays
        elif isinstance(value, bool):
            _add(labels, name, "true" if value else "false")
        elif value is None:
            continue
        elif isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            _add(labels, name, str(int(value)))
        else:
            _add(labels, name, str(value))


def _parse_logfmt(line: str, labels: dict[str, str]) -> None:
    for match in _LOGFMT.finditer(line):
        key, raw = match.group(1), match.group(2) or ""
        if raw.startswith('"'):
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError:
                labels[ERROR_LABEL] = "LogfmtParserErr"
                labels[ERROR_DETAILS_LABEL] = f"invalid quoted value for {key}"
                return
        _add(labels, key, raw)


def _holds(expr: LabelFilter, labels: dict[str, str]) -> bool | None:
    """True/False, or None when a value could not be converted (Loki's LabelFilterErr)."""
    if isinstance(expr, BoolFilter):
        left = _holds(expr.left, labels)
        if expr.op == "and" and left is False:
            return False
        if expr.op == "or" and left is True:
            return True
        right = _holds(expr.right, labels)
        if left is None or right is None:
            return None
        return right
    return _compare(expr, labels.get(expr.name, ""))


def _compare(expr: Comparison, value: str) -> bool | None:
    op = expr.op
    if expr.kind == "string":
        if expr.regex is not None:
            hit = expr.regex.match(value) is not None
            return hit if op == "=~" else not hit
        return (value == expr.value) == (op in ("=", "=="))
    if expr.kind == "duration":
        number = duration_ns(value)
        if number is None:
            return None
        actual = float(number)
    else:
        try:
            actual = float(value)
        except ValueError:
            return None
        if math.isnan(actual):
            return None
    wanted = float(expr.value)
    if op in ("=", "=="):
        return actual == wanted
    if op == "!=":
        return actual != wanted
    if op == ">":
        return actual > wanted
    if op == ">=":
        return actual >= wanted
    if op == "<":
        return actual < wanted
    return actual <= wanted
