"""Where each trace's spans lie in time, kept in memory: the DuckDB store's way to a trace by id.

Trace ids are random, so no order of `spans` (appended in arrival order, which its `start_ns`
zonemaps prune) brings one trace's rows together. `trace_index` (persisted, one row per trace
and write: the trace's key, the write's earliest and latest span start) says which
start range to read, and this locator answers "which ranges?" for any number of ids without
asking DuckDB: numpy arrays sorted by key, searched by bisection.

It replaces an ART index on `trace_index` (ADR 0019): DuckDB re-serializes a whole ART at every
checkpoint and inserts random keys into it at a cost that grows with it (duckdb/duckdb#24848).
Here a write adds one small sorted run; runs are merged like a binary counter (a run absorbs
the one after it while that is at least half its size, up to MAX_MERGED entries in all), so
below that cap there are O(log n) runs and each entry is copied O(log n) times. The arrays are
built once at open from `trace_index` and are never changed in place: a writer (one at a time,
under the store's write lock) installs a new tuple of runs, and readers search whichever tuple
they picked up.

Keyed by a 64-bit mix of both id halves (`trace_key`; the spans read checks both halves): ids
that share one half, as 64-bit ids (high half zero) or ids with a time prefix do, still get
keys of their own. Two traces whose keys collide (one pair in ~2^32 among 2^32 traces, or a
client that crafts them) share a range, read a little wider, and for search ranking the
earlier start. 24 bytes per entry in memory: one per trace and write until the store folds
them (`fold`, with `trace_index_recent`: ADR 0020), then one per trace and fold. A folded
entry cannot tell where a trace cut by retention starts now; the store looks that up and
passes it to `expire`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

MAX_MERGED = 2_000_000
"""No merge makes a run longer than this: a merge is a linear pass over both runs on the write
path (measured here under load: ~0.15 s for 4M entries, so up to ~0.08 s at this cap), and a
lookup's cost grows only with the number of runs (one more per 2M entries past the cap)."""

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: the multiplier of Fibonacci hashing


def trace_key(high: int, low: int) -> int:
    """The locator's key of a trace id: `low` XOR `high` times an odd constant (mod 2^64)."""
    return low ^ ((high * _MIX) & 0xFFFFFFFFFFFFFFFF)


def trace_keys(highs: U64, lows: U64) -> U64:
    """`trace_key` of arrays of id halves (numpy's uint64 product wraps mod 2^64)."""
    keys: U64 = np.bitwise_xor(lows, highs * np.uint64(_MIX))
    return keys


TRACE_KEY_SQL = f"xor(trace_lo, ((trace_hi::UHUGEINT * {_MIX}) % 18446744073709551616)::UBIGINT)"
"""`trace_key` in DuckDB's SQL (its UBIGINT product would raise on overflow, not wrap)."""


class Run(NamedTuple):
    """Entries sorted by `keys` (duplicates allowed: a trace written more than once)."""

    keys: U64
    firsts: I64
    lasts: I64

    @classmethod
    def of(cls, keys: U64, firsts: I64, lasts: I64) -> Run:
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], firsts[order], lasts[order])

    def __len__(self) -> int:
        return int(self.keys.size)


State = tuple[tuple[Run, ...], tuple[Run, ...]]
"""A locator's runs: folded (one entry per trace and fold) and recent (one per trace and write)."""


class TraceLocator:
    """Trace key -> the start range of its spans, over every write kept.

    Entries come in one per trace and write (`add`, the recent runs); `fold` turns those into
    one per trace, added to the folded runs, as the store folds `trace_index_recent` into
    `trace_index` (ADR 0020): when each service sends its own spans of a trace, writes hold one
    span of most traces, and folding keeps ~1 entry per trace instead of ~1 per span."""

    def __init__(self, runs: Iterable[Run] = (), recent: Iterable[Run] = ()) -> None:
        self._state: State = (
            tuple(run for run in runs if len(run)),
            tuple(run for run in recent if len(run)),
        )

    @property
    def state(self) -> State:
        """The current state (immutable): `restore` puts it back."""
        return self._state

    def restore(self, state: State) -> None:
        self._state = state

    @property
    def runs(self) -> tuple[Run, ...]:
        folded, recent = self._state
        return folded + recent

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    @property
    def recent_entries(self) -> int:
        """Entries added since the last fold."""
        return sum(len(run) for run in self._state[1])

    def add(self, keys: U64, firsts: I64, lasts: I64) -> None:
        """One write's traces: their keys and earliest and latest span starts."""
        if keys.size:
            folded, recent = self._state
            self._state = (folded, _pushed(recent, Run.of(keys, firsts, lasts)))

    def fold(self) -> Run:
        """Turn the entries added since the last fold into one per key (spanning them) among
        the folded runs; returns those."""
        folded, recent = self._state
        if not recent:
            return _EMPTY
        run = collapsed(
            Run.of(*(np.concatenate([getattr(r, f) for r in recent]) for f in Run._fields))
        )
        self._state = (_pushed(folded, run), ())
        return run

    def ranges(self, keys: Iterable[int]) -> dict[int, tuple[int, int]]:
        """For each key found: the earliest and latest start over all its entries."""
        wanted = np.unique(np.fromiter(keys, dtype=np.uint64))
        found: dict[int, tuple[int, int]] = {}
        if not wanted.size:
            return found
        for run in self.runs:
            left = np.searchsorted(run.keys, wanted, side="left")
            right = np.searchsorted(run.keys, wanted, side="right")
            for i in np.flatnonzero(right > left).tolist():
                start, end = int(left[i]), int(right[i])
                first = int(run.firsts[start:end].min())
                last = int(run.lasts[start:end].max())
                key = int(wanted[i])
                seen = found.get(key)
                if seen is not None:
                    first, last = min(first, seen[0]), max(last, seen[1])
                found[key] = (first, last)
        return found

    def ranges_of(self, ids: Iterable[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
        """`ranges` by trace id, given and answered as (high, low) halves."""
        keys = {trace_id: trace_key(*trace_id) for trace_id in ids}
        found = self.ranges(keys.values())
        return {trace_id: found[key] for trace_id, key in keys.items() if key in found}

    def expire(self, before_ns: int, starts: Mapping[int, int] | None = None) -> None:
        """Forget the entries whose latest start is before `before_ns` (their spans are gone:
        retention deletes spans by start). Those kept that started before it start at
        `starts[key]` (their trace's oldest span left, as the store finds it), else at
        `before_ns`."""
        folded, recent = self._state
        self._state = (
            _expired(folded, before_ns, starts or {}),
            _expired(recent, before_ns, starts or {}),
        )


def _expired(runs: tuple[Run, ...], before_ns: int, starts: Mapping[int, int]) -> tuple[Run, ...]:
    out = []
    for run in runs:
        keep = run.lasts >= before_ns
        if keep.all() and run.firsts.min() >= before_ns:
            out.append(run)
            continue
        keys, firsts, lasts = run.keys[keep], run.firsts[keep].copy(), run.lasts[keep]
        for i in np.flatnonzero(firsts < before_ns).tolist():
            firsts[i] = starts.get(int(keys[i]), before_ns)
        out.append(Run(keys, firsts, lasts))
    return tuple(run for run in out if len(run))


def _pushed(runs: tuple[Run, ...], run: Run) -> tuple[Run, ...]:
    """`runs` and `run` after it, merged like a binary counter: a run absorbs the one after
    it while that is at least half its size (up to MAX_MERGED entries)."""
    out = [*runs, run]
    while len(out) > 1 and len(out[-2]) <= 2 * len(out[-1]) and (
        len(out[-2]) + len(out[-1]) <= MAX_MERGED
    ):  # fmt: skip
        newer = out.pop()
        older = out.pop()
        out.append(_merged(older, newer))
    return tuple(out)


def collapsed(run: Run) -> Run:
    """`run` (sorted) with one entry per key, from its earliest first to its latest last (a
    write's index rows are its spans' starts collapsed by trace key)."""
    keys = run.keys
    if keys.size < 2:
        return run
    heads = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    if heads.size == keys.size:
        return run
    return Run(
        keys[heads], np.minimum.reduceat(run.firsts, heads), np.maximum.reduceat(run.lasts, heads)
    )


_EMPTY = Run(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _merged(older: Run, newer: Run) -> Run:
    """Two sorted runs as one (a stable sort of two sorted runs is a linear merge)."""
    return Run.of(
        np.concatenate((older.keys, newer.keys)),
        np.concatenate((older.firsts, newer.firsts)),
        np.concatenate((older.lasts, newer.lasts)),
    )
