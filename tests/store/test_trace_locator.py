"""The trace locator (store/duckdb/trace_locator.py) answers as a plain list of its entries
would, through any sequence of writes, merges, rollbacks and expiries, with its folded runs in
memory or spilled to files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.store.duckdb import trace_locator
from meshscope.store.duckdb.trace_locator import (
    TRACE_KEY_SQL,
    KeyFilter,
    Run,
    Spill,
    SpilledRun,
    TraceLocator,
    trace_key,
    trace_keys,
)

Entry = tuple[int, int, int]  # low id half, earliest start, latest start

# Spilled from 3 entries on, 2 entries a block: the runs the steps below make spill and their
# keys straddle blocks. The files have no names, so the temp dir keeps nothing.
TINY_SPILL = Spill(Path(tempfile.gettempdir()), entries=3, block=2)

# Few distinct ids (so traces are written more than once, in different writes) and extremes.
lows = st.sampled_from([0, 1, 2, 7, 2**63, 2**64 - 1, 12345678901234567890])
entries = st.tuples(lows, st.integers(-(2**62), 2**62), st.integers(0, 10**6)).map(
    lambda e: (e[0], e[1], e[1] + e[2])
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(entries, max_size=12)),
        st.tuples(st.just("rollback"), st.lists(entries, min_size=1, max_size=5)),
        st.tuples(st.just("expire"), st.integers(-(2**62), 2**62)),
        st.tuples(st.just("fold"), st.none()),
    ),
    max_size=30,
)


def arrays(batch: list[Entry]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([e[0] for e in batch], dtype=np.uint64),
        np.array([e[1] for e in batch], dtype=np.int64),
        np.array([e[2] for e in batch], dtype=np.int64),
    )


def expected(kept: list[Entry], wanted: list[int]) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for low, first, last in kept:
        if low in wanted:
            seen = out.get(low, (first, last))
            out[low] = (min(first, seen[0]), max(last, seen[1]))
    return out


@pytest.mark.parametrize("spill", [None, TINY_SPILL], ids=["in-memory", "spilled"])
@settings(max_examples=300, deadline=None)
@given(steps, st.lists(lows, max_size=5))
def test_agrees_with_a_list_of_its_entries(
    spill: Spill | None, todo: list[tuple[str, object]], wanted: list[int]
) -> None:
    """Answers as a list of its entries would: one per key and write until a fold, which
    makes the entries added since the last one a single entry per key (spanning them); an
    expiry drops the entries it ends and starts the others at its cutoff (the spans before it
    are gone)."""
    locator = TraceLocator(spill=spill)
    folded: list[Entry] = []
    recent: list[Entry] = []
    for kind, arg in todo:
        if kind == "add":
            assert isinstance(arg, list)
            locator.add(*arrays(arg))
            recent += arg
        elif kind == "rollback":  # as the store does when a transaction fails after `add`
            assert isinstance(arg, list)
            before = locator.state
            locator.add(*arrays(arg))
            locator.fold()
            locator.restore(before)
        elif kind == "fold":
            run = locator.fold()
            spans = expected(recent, sorted({e[0] for e in recent}))
            assert sorted(zip(*(a.tolist() for a in run), strict=True)) == sorted(
                (key, first, last) for key, (first, last) in spans.items()
            )
            folded += [(key, first, last) for key, (first, last) in spans.items()]
            recent = []
        else:
            assert isinstance(arg, int)
            locator.expire(arg)
            folded, recent = (
                [(key, max(first, arg), last) for key, first, last in entries if last >= arg]
                for entries in (folded, recent)
            )
        kept = folded + recent
        assert len(locator) == len(kept) and locator.recent_entries == len(recent)
        assert locator.ranges(wanted) == expected(kept, wanted)
    everything = sorted({e[0] for e in folded + recent})
    assert locator.ranges(everything) == expected(folded + recent, everything)


def test_ranges_of_ids_are_those_of_their_keys() -> None:
    ids = [(1, 7), (2, 7), (7, 1), (0, 0)]
    locator = TraceLocator()
    locator.add(*arrays([(trace_key(*ids[0]), 10, 20), (trace_key(*ids[1]), 30, 40)]))
    locator.add(*arrays([(trace_key(*ids[0]), 5, 6), (trace_key(*ids[2]), 1, 2)]))
    assert locator.ranges_of(ids) == {ids[0]: (5, 20), ids[1]: (30, 40), ids[2]: (1, 2)}


def test_runs_stay_few_and_merges_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """A binary counter: 1,000 writes of 10 traces leave O(log n) runs, each sorted; runs at
    the cap are left alone."""
    rng = np.random.default_rng(3)
    locator = TraceLocator()
    for _ in range(1000):
        lows = rng.integers(0, 2**63, 10).astype(np.uint64)
        firsts = rng.integers(0, 10**12, 10)
        locator.add(lows, firsts, firsts + 5)
    assert len(locator) == 10_000
    assert len(locator.runs) <= 2 * int(np.log2(1000)) + 1
    for run in locator.runs:
        assert isinstance(run, Run) and (np.diff(run.keys.astype(np.float64)) >= 0).all()
    monkeypatch.setattr(trace_locator, "MAX_MERGED", 40)
    capped = TraceLocator()
    for _ in range(20):
        capped.add(*arrays([(int(x), 1, 2) for x in rng.integers(0, 2**63, 10)]))
    assert all(len(run) <= 40 for run in capped.runs)
    assert len(capped) == 200


def test_a_run_of_stored_rows_is_sorted_by_id() -> None:
    run = Run.of(*arrays([(5, 1, 2), (3, 4, 6), (5, 0, 9)]))
    assert run.keys.tolist() == [3, 5, 5]
    assert TraceLocator([run]).ranges([5, 3, 4]) == {3: (4, 6), 5: (0, 9)}


halves = st.integers(0, 2**64 - 1)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(halves, halves), min_size=1, max_size=20))
def test_trace_key_is_the_same_in_python_numpy_and_sql(ids: list[tuple[int, int]]) -> None:
    highs = np.array([h for h, _ in ids], dtype=np.uint64)
    lows = np.array([low for _, low in ids], dtype=np.uint64)
    expected = [trace_key(h, low) for h, low in ids]
    assert all(0 <= key < 2**64 for key in expected)
    assert trace_keys(highs, lows).tolist() == expected
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, trace_hi UBIGINT, trace_lo UBIGINT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, h, lo) for i, (h, lo) in enumerate(ids)])
    rows = con.execute(f"SELECT {TRACE_KEY_SQL} FROM t ORDER BY i").fetchall()
    assert [row[0] for row in rows] == expected


def test_ids_sharing_a_half_get_keys_of_their_own() -> None:
    ids = [(h, 7) for h in range(1000)] + [(7, low) for low in range(1000)]
    ids += [(x, x) for x in range(1000)]  # a pattern a plain XOR would send to one key
    assert len({trace_key(h, low) for h, low in set(ids)}) == len(set(ids))


def test_spilled_runs_answer_as_in_memory_ones_and_hold_under_1_3_bytes_an_entry() -> None:
    """Runs read at open are cut into spilled runs of `entries` each, folded runs that reach
    `entries` are spilled and never merged again; the answers are those of the same locator
    in memory, for keys held (in several runs) and not, and the memory held per entry is
    that of the key filter and the block index, not 24 bytes."""
    rng = np.random.default_rng(5)
    spill = Spill(Path(tempfile.gettempdir()), entries=20_000, block=512)
    keys = rng.integers(0, 2**64, 100_000, dtype=np.uint64)
    firsts = rng.integers(0, 10**15, keys.size)
    stored = Run.of(keys, firsts, firsts + rng.integers(0, 10**9, keys.size))
    spilled, plain = TraceLocator([stored], spill=spill), TraceLocator([stored])
    assert [len(run) for run in spilled.runs] == [20_000] * 5
    for _ in range(30):  # folds of 2,000 traces: half of them traces held already
        again = rng.choice(keys, 1000)
        batch = np.concatenate([again, rng.integers(0, 2**64, 1000, dtype=np.uint64)])
        starts = rng.integers(0, 10**15, batch.size)
        for locator in (spilled, plain):
            locator.add(batch, starts, starts + 7)
            locator.fold()
    assert len(spilled) == len(plain) > 155_000  # choice() repeats a few keys in a batch
    assert sum(isinstance(run, SpilledRun) for run in spilled.runs) >= 7
    assert not any(isinstance(run, SpilledRun) for run in plain.runs)
    wanted = np.concatenate([rng.choice(keys, 3000), rng.integers(0, 2**64, 3000, np.uint64)])
    assert spilled.ranges(wanted.tolist()) == plain.ranges(wanted.tolist())
    assert plain.nbytes == 24 * len(plain)
    on_file = [run for run in spilled.runs if isinstance(run, SpilledRun)]
    in_memory = len(spilled) - sum(map(len, on_file))
    assert in_memory < 2 * spill.entries  # the binary counter below the spill size
    assert sum(run.nbytes for run in on_file) < 1.3 * sum(map(len, on_file))  # bytes/entry
    assert spilled.nbytes == sum(run.nbytes for run in on_file) + 24 * in_memory
    assert spilled.file_bytes == 24 * sum(map(len, on_file)) and plain.file_bytes == 0


def test_a_spilled_run_has_no_name_and_is_read_back_whole() -> None:
    directory = Path(tempfile.mkdtemp())
    run = Run.of(*arrays([(9, 1, 2), (3, 4, 6), (5, 0, 9), (5, 3, 3), (2**64 - 1, -5, 8)]))
    spilled = SpilledRun(run, Spill(directory, entries=1, block=2))
    assert os.listdir(directory) == []
    assert [a.tolist() for a in spilled.load()] == [a.tolist() for a in run]
    assert list(spilled.found(np.array([0, 3, 5, 2**64 - 1], dtype=np.uint64))) == [
        (3, 4, 6),
        (5, 0, 9),
        (2**64 - 1, -5, 8),
    ]
    os.rmdir(directory)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300))
def test_the_key_filter_holds_every_key_added(keys: list[int]) -> None:
    added = np.array(keys, dtype=np.uint64)
    assert KeyFilter(added).may_hold(added).all()
    assert all(map(KeyFilter(added).may_hold_one, keys))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=200),
)
def test_the_key_filter_answers_alike_in_python_and_numpy(
    added: list[int], asked: list[int]
) -> None:
    """`may_hold_one` (Python ints, for a few keys) is `may_hold` (uint64 arrays that wrap):
    a small filter (10 bits a key) lets many other keys through, so both answers occur."""
    keys = KeyFilter(np.array(added, dtype=np.uint64))
    asked = asked + WRAPPING  # and keys whose hash positions wrap past 2^64
    assert [keys.may_hold_one(key) for key in asked] == keys.may_hold(
        np.array(asked, dtype=np.uint64)
    ).tolist()


def _unmixed(mixed: int) -> int:
    """The key whose splitmix64 mix (the filter's) is `mixed`: each step inverted."""
    mask = 2**64 - 1
    z = mixed ^ (mixed >> 31) ^ (mixed >> 62)
    z = (z * pow(0x94D049BB133111EB, -1, 2**64)) & mask
    z = z ^ (z >> 27) ^ (z >> 54)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 2**64)) & mask
    z = z ^ (z >> 30) ^ (z >> 60)
    return (z - 0x9E3779B97F4A7C15) & mask


WRAPPING = [_unmixed(2**64 - 1 - j * 2**31) for j in range(64)]


def test_the_key_filter_lets_through_about_one_percent_of_other_keys() -> None:
    """10 bits and 5 hashes a key: ~0.9% false positives in theory, for random keys and for
    keys that differ in a few low bits only (64-bit trace ids, sequential ids)."""
    rng = np.random.default_rng(8)
    for added, others in (
        (rng.integers(0, 2**64, 100_000, np.uint64), rng.integers(0, 2**64, 100_000, np.uint64)),
        (np.arange(100_000, dtype=np.uint64), np.arange(100_000, 200_000, dtype=np.uint64)),
    ):
        rate = KeyFilter(added).may_hold(others).mean()
        assert 0.003 < rate < 0.02
