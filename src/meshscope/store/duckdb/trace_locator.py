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

Folded runs of SPILL_ENTRIES or more (and the run read at open, in pieces of that size) are
moved to files with no name in the store's directory (`SpilledRun`), as an LSM tree's sorted
files (LevelDB, RocksDB): in memory stay a Bloom filter of their keys and every BLOCK-th key,
~1.3 bytes per entry instead of 24: the memory the locator holds still grows with the traces
kept (until retention drops them), but ~19x slower (ADR 0019 revision 2; at one entry per
trace, a day of 2,000 new traces a second adds ~220 MB). A lookup reads one 12 KiB block of
a spilled run only when its filter lets the key through (~1% of the keys it does not hold).

Keyed by a 64-bit mix of both id halves (`trace_key`; the spans read checks both halves): ids
that share one half, as 64-bit ids (high half zero) or ids with a time prefix do, still get
keys of their own. Two traces whose keys collide (one pair in ~2^32 among 2^32 traces, or a
client that crafts them) share a range, read a little wider, and for search ranking the
earlier start. 24 bytes per entry (in memory or spilled): one per trace and write until the
store folds them (`fold`, with `trace_index_recent`: ADR 0020), then one per trace and fold. A
folded entry cannot tell where a trace cut by retention starts now; the store looks that up and
passes it to `expire`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

MAX_MERGED = 2_000_000
"""No merge makes a run longer than this: a merge is a linear pass over both runs on the write
path (measured here under load: ~0.15 s for 4M entries, so up to ~0.08 s at this cap), and a
lookup's cost grows only with the number of runs (one more per 2M entries past the cap)."""
SPILL_ENTRIES = 1_000_000
"""A folded run this long or longer is moved to a file (`SpilledRun`, when the locator has a
directory for them): 24 MB in memory becomes ~1.3 MB (its key filter and block index)."""
BLOCK = 512
"""Entries per block of a spilled run: a lookup reads one block (12 KiB) per run that may hold
the key."""
FILTER_BITS = 10
FILTER_HASHES = 5
"""A spilled run's key filter: a Bloom filter of 10 bits per key and 5 hashes, so ~1% of the
keys a run does not hold still read a block of it."""

_RECORD = np.dtype([("key", "<u8"), ("first", "<i8"), ("last", "<i8")])
_MIXES = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # splitmix64's
_MASK64 = (1 << 64) - 1
_FEW = 4
"""Keys a spilled run tests one by one in Python, rather than as arrays."""


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

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.firsts.nbytes + self.lasts.nbytes)

    def found(self, wanted: U64) -> Iterator[tuple[int, int, int]]:
        """Each key of `wanted` (sorted, unique) held here, with the earliest first and the
        latest last of its entries."""
        left = np.searchsorted(self.keys, wanted, side="left")
        right = np.searchsorted(self.keys, wanted, side="right")
        for i in np.flatnonzero(right > left).tolist():
            start, end = int(left[i]), int(right[i])
            first, last = self.firsts[start:end].min(), self.lasts[start:end].max()
            yield int(wanted[i]), int(first), int(last)


class Spill(NamedTuple):
    """Where and from what length a locator moves its folded runs to files."""

    directory: Path
    entries: int = SPILL_ENTRIES
    block: int = BLOCK


class KeyFilter:
    """A Bloom filter over uint64 keys: `may_hold` is true for every key added, and for ~1% of
    the others (`FILTER_BITS` bits per key, `FILTER_HASHES` hashes by double hashing of a
    splitmix64 mix, so crafted keys cost reads, never wrong answers)."""

    def __init__(self, keys: U64) -> None:
        self._bits = max(64, FILTER_BITS * int(keys.size))
        marks = np.zeros(self._bits, dtype=np.bool_)
        for start in range(0, keys.size, 1 << 16):  # bounded scratch memory
            marks[self._positions(keys[start : start + (1 << 16)]).ravel()] = True
        # bytes for `may_hold_one`, and an array over the same memory for `may_hold`
        self._bytes = np.packbits(marks, bitorder="little").tobytes()
        self._packed = np.frombuffer(self._bytes, dtype=np.uint8)

    @property
    def nbytes(self) -> int:
        return len(self._bytes)

    def may_hold(self, keys: U64) -> npt.NDArray[np.bool_]:
        positions = self._positions(keys)
        bits = (self._packed[positions >> np.uint64(3)] >> (positions & np.uint64(7))) & 1
        held: npt.NDArray[np.bool_] = bits.all(axis=0)
        return held

    def may_hold_one(self, key: int) -> bool:
        """`may_hold` of one key, in Python ints (numpy's cost per call is most of the work for
        a key or two: a trace by id)."""
        mixed = (key + _MIXES[0]) & _MASK64
        mixed = ((mixed ^ (mixed >> 30)) * _MIXES[1]) & _MASK64
        mixed = ((mixed ^ (mixed >> 27)) * _MIXES[2]) & _MASK64
        mixed ^= mixed >> 31
        step = (mixed >> 32) | 1
        for i in range(FILTER_HASHES):
            position = ((mixed + i * step) & _MASK64) % self._bits
            if not (self._bytes[position >> 3] >> (position & 7)) & 1:
                return False
        return True

    def _positions(self, keys: U64) -> U64:
        """The positions of `keys` (one row per hash; uint64 arithmetic wraps mod 2^64)."""
        mixed = keys + np.uint64(_MIXES[0])
        mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(_MIXES[1])
        mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(_MIXES[2])
        mixed ^= mixed >> np.uint64(31)
        step = (mixed >> np.uint64(32)) | np.uint64(1)
        hashes = np.arange(FILTER_HASHES, dtype=np.uint64)[:, None]
        positions: U64 = (mixed[None, :] + hashes * step[None, :]) % np.uint64(self._bits)
        return positions


class SpilledRun:
    """A folded run in a file that has no name (created unlinked, or unlinked at once: closing
    it, when no state holds the run any more, frees the space, and a crash leaves nothing
    behind; `trace_index` is the durable copy). In memory: a `KeyFilter` and every `block`-th
    key. A lookup reads the block (`os.pread`, so readers share the file and the kernel's page
    cache holds it, not this process) of each key the filter lets through."""

    def __init__(self, run: Run, spill: Spill) -> None:
        records = np.empty(len(run), dtype=_RECORD)
        records["key"], records["first"], records["last"] = run
        # Open as long as the run lives: closed (and its space freed) when it is collected.
        self._file = tempfile.TemporaryFile(  # noqa: SIM115
            dir=spill.directory, prefix=".trace-locator-"
        )
        records.tofile(self._file)
        self._file.flush()
        self._size = len(run)
        self._block = spill.block
        self._sparse = run.keys[:: spill.block].copy()
        self._key_max = run.keys[-1]
        self._filter = KeyFilter(run.keys)
        self.first_min = int(run.firsts.min())
        self.last_max = int(run.lasts.max())

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (the file's are on disk and in the page cache)."""
        return int(self._sparse.nbytes) + self._filter.nbytes

    @property
    def file_bytes(self) -> int:
        return self._size * _RECORD.itemsize

    def load(self) -> Run:
        """The whole run, read back into memory."""
        records = self._records(0, self._size)
        return Run(*(records[field].copy() for field in _RECORD.names or ()))

    def found(self, wanted: U64) -> Iterator[tuple[int, int, int]]:
        """As `Run.found`."""
        if wanted.size <= _FEW:
            held, first, last = self._filter.may_hold_one, int(self._sparse[0]), int(self._key_max)
            wanted = np.array(
                [key for key in wanted.tolist() if first <= key <= last and held(key)], np.uint64
            )
        else:
            wanted = wanted[(wanted >= self._sparse[0]) & (wanted <= self._key_max)]
            wanted = wanted[self._filter.may_hold(wanted)]
        if not wanted.size:
            return
        # The entries of a key lie after the block whose first key is below it and before the
        # first block whose first key is above it (there is one: the run's first key is not).
        lows = np.searchsorted(self._sparse, wanted, side="left") - 1
        highs = np.searchsorted(self._sparse, wanted, side="right")
        window, keys, records = (-1, -1), np.zeros(0, np.uint64), np.zeros(0, _RECORD)
        for key, low, high in zip(wanted.tolist(), lows.tolist(), highs.tolist(), strict=True):
            span = (max(low, 0) * self._block, min(high * self._block, self._size))
            if span != window:  # wanted is sorted: keys in one block read it once
                window, records = span, self._records(*span)
                keys = records["key"]
            start = int(np.searchsorted(keys, key, side="left"))
            end = int(np.searchsorted(keys, key, side="right"))
            if end > start:
                yield (
                    key,
                    int(records["first"][start:end].min()),
                    int(records["last"][start:end].max()),
                )

    def _records(self, start: int, end: int) -> npt.NDArray[np.void]:
        size = (end - start) * _RECORD.itemsize
        data = bytearray(size)
        view, offset, fd = memoryview(data), start * _RECORD.itemsize, self._file.fileno()
        done = 0
        while done < size:  # one pread returns at most ~2 GiB
            read = os.preadv(fd, [view[done:]], offset + done)
            if not read:
                raise OSError(f"trace locator spill file ended at byte {offset + done}")
            done += read
        return np.frombuffer(data, dtype=_RECORD)


Stretch = Run | SpilledRun
"""A run in memory or in a file."""

S = TypeVar("S", bound=Stretch)

State = tuple[tuple[Stretch, ...], tuple[Run, ...]]
"""A locator's runs: folded (one entry per trace and fold) and recent (one per trace and write)."""


class TraceLocator:
    """Trace key -> the start range of its spans, over every write kept.

    Entries come in one per trace and write (`add`, the recent runs); `fold` turns those into
    one per trace, added to the folded runs, as the store folds `trace_index_recent` into
    `trace_index` (ADR 0020): when each service sends its own spans of a trace, writes hold one
    span of most traces, and folding keeps ~1 entry per trace instead of ~1 per span. With a
    `spill`, folded runs of `spill.entries` or more are moved to files (`SpilledRun`), so the
    memory held grows by ~1.3 bytes per trace instead of 24; they are never merged again."""

    def __init__(
        self, runs: Iterable[Run] = (), recent: Iterable[Run] = (), spill: Spill | None = None
    ) -> None:
        self._spill = spill
        self._state: State = (
            _spilled(tuple(_split((run for run in runs if len(run)), spill)), spill),
            tuple(run for run in recent if len(run)),
        )

    @property
    def state(self) -> State:
        """The current state (immutable): `restore` puts it back."""
        return self._state

    def restore(self, state: State) -> None:
        self._state = state

    @property
    def runs(self) -> tuple[Stretch, ...]:
        folded, recent = self._state
        return folded + recent

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return sum(run.nbytes for run in self.runs)

    @property
    def file_bytes(self) -> int:
        """Bytes of the spilled runs' files (no name: not in any directory listing)."""
        return sum(run.file_bytes for run in self.runs if isinstance(run, SpilledRun))

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
        self._state = (_spilled(_pushed(folded, run), self._spill), ())
        return run

    def ranges(self, keys: Iterable[int]) -> dict[int, tuple[int, int]]:
        """For each key found: the earliest and latest start over all its entries."""
        wanted = np.unique(np.fromiter(keys, dtype=np.uint64))
        found: dict[int, tuple[int, int]] = {}
        if not wanted.size:
            return found
        for run in self.runs:
            for key, first, last in run.found(wanted):
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
            _spilled(_expired(folded, before_ns, starts or {}), self._spill),
            _expired(recent, before_ns, starts or {}),
        )


def _loaded(run: Stretch) -> Run:
    return run.load() if isinstance(run, SpilledRun) else run


def _split(runs: Iterable[Run], spill: Spill | None) -> Iterator[Run]:
    """`runs`, each cut into runs of `spill.entries` (whole key ranges, so a lookup's keys
    pass the key filter of one of them): the filter's scratch memory stays bounded."""
    for run in runs:
        if spill is None or len(run) < 2 * spill.entries:
            yield run
            continue
        for start in range(0, len(run), spill.entries):
            end = start + spill.entries
            yield Run(run.keys[start:end], run.firsts[start:end], run.lasts[start:end])


def _spilled(runs: tuple[Stretch, ...], spill: Spill | None) -> tuple[Stretch, ...]:
    """`runs` with those in memory of `spill.entries` or more moved to files."""
    if spill is None:
        return runs
    return tuple(
        SpilledRun(run, spill) if isinstance(run, Run) and len(run) >= spill.entries else run
        for run in runs
    )


def _expired(runs: tuple[S, ...], before_ns: int, starts: Mapping[int, int]) -> tuple[S | Run, ...]:
    out: list[S | Run] = []
    for stretch in runs:
        if isinstance(stretch, SpilledRun):
            if stretch.last_max < before_ns:
                continue
            if stretch.first_min >= before_ns:
                out.append(stretch)
                continue
        run = _loaded(stretch)
        keep = run.lasts >= before_ns
        if keep.all() and run.firsts.min() >= before_ns:
            out.append(run)
            continue
        keys, firsts, lasts = run.keys[keep], run.firsts[keep].copy(), run.lasts[keep]
        for i in np.flatnonzero(firsts < before_ns).tolist():
            firsts[i] = starts.get(int(keys[i]), before_ns)
        out.append(Run(keys, firsts, lasts))
    return tuple(run for run in out if len(run))


def _pushed(runs: tuple[S, ...], run: Run) -> tuple[S | Run, ...]:
    """`runs` and `run` after it, merged like a binary counter: a run in memory absorbs the
    one after it while that is at least half its size (up to MAX_MERGED entries)."""
    out: list[S | Run] = [*runs, run]
    while len(out) > 1:
        older, newer = out[-2], out[-1]
        if not (isinstance(older, Run) and isinstance(newer, Run)):
            break  # a spilled run is never merged again
        if len(older) > 2 * len(newer) or len(older) + len(newer) > MAX_MERGED:
            break
        del out[-2:]
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
