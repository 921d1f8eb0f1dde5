"""A range query's matrix as Prometheus's JSON, written from arrays.

A day at one-minute steps for a thousand series is 1.4M points; building a Python object per
point and encoding it costs seconds. Here orjson writes each row's values at once (shortest
round-trip digits, like Go's FormatFloat(v, 'f', -1, 64) in the usual range), and the text is
spliced with the step times: `[t,"v"]` per point. Values orjson writes otherwise (NaN, Inf,
exponents) are formatted one by one with `values.format_value`.
"""

from __future__ import annotations

import numpy as np
import orjson

from meshscope.query.promql.engine import RangeResult
from meshscope.query.promql.values import format_time, format_value


def value_texts(values: np.ndarray) -> list[str]:
    """Each value as Prometheus writes it in JSON (without the quotes)."""
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1]
    parts = text.split(",") if text else []
    if "e" in text or "n" in text:  # exponents, null (NaN, Inf)
        for index, part in enumerate(parts):
            if "e" in part or "n" in part:
                parts[index] = format_value(float(values[index]))
    return [p[:-2] if p.endswith(".0") else p for p in parts]


def _row(labels: bytes, prefixes: list[str], values: np.ndarray, template: str) -> str:
    """One series: `template` is its points' text with `%s` for the values."""
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1]
    if "e" in text or "n" in text:
        body = '"],'.join(map(str.__add__, prefixes, value_texts(values))) + '"]'
    else:
        body = (template % tuple(text.split(","))).replace('.0"', '"')
    return f'{{"metric":{labels.decode()},"values":[{body}]}}'


def matrix_json(result: RangeResult) -> bytes:
    """`{"status":"success","data":{"resultType":"matrix","result":[...]}}`."""
    prefixes = np.array(
        [f'[{orjson.dumps(format_time(t)).decode()},"' for t in result.steps.tolist()], object
    )
    # Series usually share the steps they are present at: one text template per pattern.
    templates: dict[bytes, tuple[list[str], str]] = {}
    rows: list[str] = []
    for labels, values, present in zip(result.labels, result.values, result.present, strict=True):
        pattern = present.tobytes()
        found = templates.get(pattern)
        if found is None:
            chosen = prefixes[present].tolist()
            template = '"],'.join(prefix + "%s" for prefix in chosen) + '"]' if chosen else ""
            found = templates[pattern] = (chosen, template)
        rows.append(_row(orjson.dumps(dict(labels)), found[0], values[present], found[1]))
    body = ",".join(rows)
    return f'{{"status":"success","data":{{"resultType":"matrix","result":[{body}]}}}}'.encode()
