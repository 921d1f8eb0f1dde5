"""A group's values summed per slot with numpy (`deltas.py`), checked against plain Python."""

from __future__ import annotations

import math
import random
from bisect import bisect_left

import numpy as np

from meshscope.model.exphistogram import MAX_SCALE, index_factor
from meshscope.pipeline.derive.deltas import Deltas, Slots, one_value

BOUNDS = (2.0, 4.0, 10.0)


def test_values_on_a_bound_fall_in_its_bucket_as_prometheus_le() -> None:
    deltas = Deltas(BOUNDS)
    deltas.add(np.array([0, 0, 0, 0, 0, 0]), np.array([0.0, 2.0, 2.5, 4.0, 10.0, 10.5]))
    ((slot, count, total, buckets, exp),) = deltas.take()
    assert (slot, count, total, buckets, exp) == (0, 6, 29.0, [2, 2, 1, 1], [])


def test_sums_per_slot_equal_plain_python_and_take_starts_again() -> None:
    rng = random.Random(5)
    deltas = Deltas(BOUNDS, exponential=True)
    for _ in range(3):
        slots = [rng.randrange(600) for _ in range(2_000)]  # past the first 256 slots
        values = [0.0 if rng.random() < 0.05 else 10 ** rng.uniform(-4, 4) for _ in slots]
        deltas.add(np.array(slots), np.array(values))
        want: dict[int, tuple[int, float, list[int], list[float]]] = {}
        for slot, value in zip(slots, values, strict=True):
            count, total, buckets, exp = want.get(slot, (0, 0.0, [0] * 4, [0, math.inf, -math.inf]))
            buckets[bisect_left(BOUNDS, value)] += 1
            exp = [exp[0] + (value <= 0), min(exp[1], value), max(exp[2], value), *exp[3:]]
            if value > 0:
                index = math.ceil(math.log(value) * index_factor(MAX_SCALE)) - 1
                pairs = dict(zip(exp[3::2], exp[4::2], strict=True))
                pairs[index] = pairs.get(index, 0) + 1
                exp[3:] = [x for i in sorted(pairs) for x in (i, pairs[i])]
            want[slot] = (count + 1, total + value, buckets, exp)
        got = {
            slot: (count, total, buckets, exp) for slot, count, total, buckets, exp in deltas.take()
        }
        assert got.keys() == want.keys()
        for slot, (count, total, buckets, exp) in want.items():
            assert got[slot][0] == count and math.isclose(got[slot][1], total)
            assert got[slot][2:] == (buckets, exp)
    assert deltas.take() == []


def test_counts_only_and_slots_numbered_in_order_of_arrival() -> None:
    slots: Slots[str] = Slots()
    assert slots.of(["b", "a", "b"]).tolist() == [0, 1, 0]
    assert slots.of(["c", "a"]).tolist() == [2, 1] and slots.keys == ["b", "a", "c"]
    deltas = Deltas()
    assert deltas.add(slots.of(["a", "a", "c"])).tolist() == [1, 2]  # seen the first time
    assert [(slot, count) for slot, count, *_ in deltas.take()] == [(1, 2), (2, 1)]
    handed: list[int] = []
    slots.renumber_when_full(4, lambda: handed.append(1), [deltas])
    assert handed == [] and slots.of(["c"]).tolist() == [2]  # 3 keys: not full
    slots.renumber_when_full(3, lambda: handed.append(1), [deltas])
    assert handed == [1] and slots.of(["c"]).tolist() == [0]
    assert deltas.add(np.array([0])).tolist() == [0]  # new again after the renumbering


def test_one_value_in_python_is_what_numpy_makes_of_it() -> None:
    """Derivers count groups of up to SMALL values one by one (`one_value`, in Python) and
    larger ones with numpy: the same buckets and exponential index for any value."""
    rng = random.Random(11)
    values = [0.0, *BOUNDS, *(10 ** rng.uniform(-6, 9) for _ in range(2_000))]
    deltas = Deltas(BOUNDS, exponential=True)
    deltas.add(np.arange(len(values)), np.array(values))
    for (_, count, total, buckets, exp), value in zip(deltas.take(), values, strict=True):
        assert (count, total, (buckets, exp)) == (1, value, one_value(value, BOUNDS, True))
    assert one_value(3.0, BOUNDS) == ([0, 1, 0, 0], [])
