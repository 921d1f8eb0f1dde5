"""The array JSON writer gives what Prometheus's formatting rules (values.format_value,
result_json) give, for every kind of value and for rows with gaps."""

from __future__ import annotations

import json
import math
import random
import struct

import numpy as np

from meshscope.api.prometheus import result_json
from meshscope.api.prometheus_json import matrix_json, value_texts
from meshscope.query.promql.engine import RangeResult
from meshscope.query.promql.values import format_value

EDGES = [
    0.0, -0.0, 1.0, -1.0, 100.0, 0.1 + 0.2, 1e-7, 1e-6, 9.99e-6, 1e-5, 1e-4, 123.456,
    1e15, 1e16, 1.5e17, 1e20, 9.99e20, 1e21, 1e22, 5e-324, 1.7976931348623157e308,
    math.nan, math.inf, -math.inf, 2.0**53, 0.000123456789, 12345678901234567.0,
]  # fmt: skip


def test_value_texts_match_format_value() -> None:
    rng = random.Random(3)
    values = EDGES + [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    values += [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(2000)]
    values += [float(rng.randint(-(10**6), 10**6)) for _ in range(200)]
    values += [rng.random() * 10.0 ** rng.randint(-12, 25) for _ in range(2000)]
    got = value_texts(np.array(values))
    assert got == [format_value(v) for v in values]


def test_matrix_json_matches_result_json() -> None:
    rng = np.random.default_rng(5)
    steps = np.arange(1_700_000_000_000, 1_700_000_000_000 + 50 * 15_500, 15_500)
    values = rng.normal(0, 1e3, (4, len(steps)))
    values[1, 3] = math.nan
    values[2, :] = np.round(values[2, :])
    values[3, 7] = math.inf
    present = np.ones(values.shape, bool)
    present[1, ::3] = False
    present[3, 10:] = False
    labels = [(("a", "1"),), (("a", "2"), ("b", 'q"uote')), (), (("__name__", "x"),)]
    result = RangeResult(labels, steps, values, present)
    got = json.loads(matrix_json(result))
    assert got == {"status": "success", "data": result_json(result.matrix())}
    empty = RangeResult([], steps, np.zeros((0, len(steps))), np.zeros((0, len(steps)), bool))
    assert json.loads(matrix_json(empty))["data"] == {"resultType": "matrix", "result": []}
