"""The DuckDB metric store's sample cache: reads through it always equal what DuckDB holds
(`select`, an ORDER BY query that never touches the cache), whatever the writes, rollbacks,
restarts, expiry and memory bound did to it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meshscope.model.metrics import Histogram, MetricPoint, MetricType, labels_of
from meshscope.store.duckdb import DuckDBStorage, sample_loader
from meshscope.store.duckdb.database import Database
from meshscope.store.duckdb.metrics import DuckDBMetricStore
from meshscope.store.duckdb.sample_cache import MIN_TIME, SampleCache

S = 1_000_000_000
T0 = 1_700_000_000 * S
BOUNDS = ((0.1, 1.0), (0.5,))


@contextmanager
def opened(path: Path, cache_bytes: int) -> Iterator[DuckDBMetricStore]:
    db = Database(path)
    try:
        yield DuckDBMetricStore(db, cache_bytes)
    finally:
        db.close()


def value(t: int, v: float, series: int) -> MetricPoint:
    return MetricPoint("m", labels_of({"s": str(series)}), T0 + t * S, MetricType.GAUGE, v)


def hist(t: int, n: int, series: int, bounds: tuple[float, ...] = BOUNDS[0]) -> MetricPoint:
    counts = tuple(n + i for i in range(len(bounds) + 1))
    h = Histogram(bounds, counts, n / 2, sum(counts))
    return MetricPoint("m", labels_of({"s": str(series)}), T0 + t * S, MetricType.HISTOGRAM,
                       histogram=h)  # fmt: skip


def truth_values(store: DuckDBMetricStore, start: int, end: int) -> list[object]:
    out: list[object] = []
    for s in store.select("m", [], start, end):
        plain = [p for p in s.samples if p.histogram is None]
        if plain:
            out.append((s.labels, [p.time_ns for p in plain], [p.value for p in plain]))
    return out


def truth_histograms(store: DuckDBMetricStore, start: int, end: int) -> list[object]:
    out: list[object] = []
    for s in store.select("m", [], start, end):
        groups: dict[tuple[float, ...], list[MetricPoint]] = {}
        for p in s.samples:
            if p.histogram is not None:
                groups.setdefault(p.histogram.bounds, []).append(p)
        for bounds, points in groups.items():
            hists = [p.histogram for p in points if p.histogram]
            counts = [list(h.counts) for h in hists]
            out.append((s.labels, bounds, [p.time_ns for p in points], counts,
                        [h.sum for h in hists], [h.count for h in hists]))  # fmt: skip
    return out


def _ties(groups: list[Any]) -> list[Any]:
    """Groups of one series whose first points have the same time come in either order."""
    return sorted(groups, key=lambda g: (groups.index(next(x for x in groups if x[0] == g[0])),
                                         g[2][0], g[1]))  # fmt: skip


def read_values(store: DuckDBMetricStore, start: int, end: int) -> list[object]:
    return [
        (c.labels, c.time_ns.tolist(), c.value.tolist())
        for c in store.select_values("m", [], start, end)
    ]


def read_histograms(store: DuckDBMetricStore, start: int, end: int) -> list[object]:
    return [
        (g.labels, g.bounds, g.time_ns.tolist(), g.counts.tolist(), g.sum.tolist(),
         g.count.tolist())
        for g in store.select_histograms("m", [], start, end)
    ]  # fmt: skip


def agree(store: DuckDBMetricStore, rng: random.Random) -> None:
    windows = [(0, 2**63 - 1)] + [
        tuple(sorted((T0 + rng.randrange(-5, 400) * S, T0 + rng.randrange(-5, 400) * S)))
        for _ in range(3)
    ]
    for start, end in windows:
        assert read_values(store, start, end) == truth_values(store, start, end)
        got, want = read_histograms(store, start, end), truth_histograms(store, start, end)
        assert _ties(got) == _ties(want)


def expire(store: DuckDBMetricStore, before_ns: int) -> None:
    """As DuckDBStorage.expire does it."""
    with store._db.transaction() as txn:
        txn.con.execute("DELETE FROM samples WHERE time_ns < ?", [before_ns])
    store.expired(before_ns)


def random_batch(rng: random.Random, clock: list[int]) -> list[MetricPoint]:
    points: list[MetricPoint] = []
    for _ in range(rng.randrange(1, 40)):
        clock[0] += rng.randrange(0, 2)
        late = rng.random() < 0.15
        t = clock[0] - rng.randrange(1, 30) if late else clock[0]
        series = rng.randrange(6)
        if rng.random() < 0.3:
            points.append(hist(t, rng.randrange(9), series, rng.choice(BOUNDS)))
        else:
            points.append(value(t, float(rng.randrange(100)), series))
    return points


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cache_bytes", [0, 2_000, 1 << 20])
def test_reads_equal_duckdb_through_writes_expiry_restarts_and_the_bound(
    tmp_path: Path, seed: int, cache_bytes: int
) -> None:
    rng = random.Random(seed)
    clock = [0]
    path = tmp_path / "m.duckdb"
    for _ in range(3):  # each round ends with a restart: series are loaded on first read
        with opened(path, cache_bytes) as store:
            for step in range(12):
                store.write_points(random_batch(rng, clock))
                if step % 4 == 3:
                    agree(store, rng)
                if rng.random() < 0.1:
                    expire(store, T0 + (clock[0] - rng.randrange(20, 60)) * S)
            agree(store, rng)
            assert store.cache.nbytes == counted(store) <= cache_bytes


def test_rollback_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    with opened(tmp_path / "m.duckdb", 1 << 20) as store:
        store.write_points([value(1, 1, 0), hist(1, 1, 0), value(2, 2, 0)])
        before = (read_values(store, 0, 2**63 - 1), read_histograms(store, 0, 2**63 - 1))
        held = store.select_values("m", [], 0, 2**63 - 1)[0].value
        seen: list[int] = []

        def aborted() -> None:
            with store._db.transaction() as txn:
                # appended in place, late (merged), a new series, a new histogram group
                store.insert(txn, [value(3, 3, 0), value(0, 9, 0), value(1, 5, 1),
                                   hist(0, 4, 0), hist(2, 2, 0, BOUNDS[1])])  # fmt: skip
                seen.append(len(store.select_values("m", [], 0, 2**63 - 1)))
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            aborted()
        assert seen == [2]  # the new series was in the cache before the rollback
        assert (read_values(store, 0, 2**63 - 1), read_histograms(store, 0, 2**63 - 1)) == before
        assert before == (truth_values(store, 0, 2**63 - 1), truth_histograms(store, 0, 2**63 - 1))
        store.write_points([value(3, 30, 0), value(1, 10, 1)])  # series 1 gets the freed id
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
        assert held.tolist() == [1.0, 2.0]  # an array handed out earlier never changes


def test_arrays_handed_out_stay_as_they_were(tmp_path: Path) -> None:
    with opened(tmp_path / "m.duckdb", 1 << 20) as store:
        store.write_points([value(t, t, 0) for t in range(10)])
        [first] = store.select_values("m", [], 0, 2**63 - 1)
        store.write_points([value(t, t, 0) for t in range(10, 100)])  # grows in place
        store.write_points([value(5, -1, 0)])  # late: merged into new arrays
        assert first.value.tolist() == [float(t) for t in range(10)]
        with pytest.raises(ValueError, match="read-only"):
            first.value[0] = 1.0


def test_beyond_the_bound_the_oldest_samples_are_read_from_duckdb(tmp_path: Path) -> None:
    limit = 64 * 16 * 4  # room for ~64 float samples of each of 4 series
    with opened(tmp_path / "m.duckdb", limit) as store:
        for t in range(0, 400, 10):
            store.write_points([value(t + i, t + i, s) for i in range(10) for s in range(4)])
        assert store.cache.nbytes <= limit
        horizon = store.cache.horizon
        assert T0 < horizon < T0 + 400 * S
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
        for start in (horizon - 3 * S, horizon - 1, horizon, horizon + S):  # both sides
            assert read_values(store, start, T0 + 300 * S) == truth_values(
                store, start, T0 + 300 * S
            )
    with opened(tmp_path / "m.duckdb", limit) as store:  # a load bigger than half the limit
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
        assert store.cache.horizon > MIN_TIME
        assert store.cache.nbytes <= limit


def test_restart_loads_series_on_first_read_then_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with opened(path, 1 << 20) as store:
        store.write_points([value(t, t, s) for t in range(20) for s in range(3)])
        store.write_points([hist(t, t, 3) for t in range(5)])
    with opened(path, 1 << 20) as store:
        assert store.cache.nbytes == 0
        assert read_histograms(store, 0, 2**63 - 1) == truth_histograms(store, 0, 2**63 - 1)
        loaded = store.cache.nbytes
        assert loaded >= 20 * 3 * 16 + 5 * (3 * 8 + 24)
        store.write_points([value(20, 20, 0), value(3, 33, 1)])  # appended, late
        assert store.cache.nbytes > loaded
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)


def test_writer_and_readers_on_other_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with opened(tmp_path / "m.duckdb", 1 << 20) as store:
        done = threading.Event()

        def read() -> None:
            try:
                while not done.is_set():
                    for c in store.select_values("m", [], 0, 2**63 - 1):
                        times = c.time_ns
                        assert (np.diff(times) >= 0).all()
                        assert (c.value == (times - T0) // S).all()
                        assert len(times) % 10 == 0  # whole batches only
            except BaseException as error:  # reported by the main thread
                errors.append(error)

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        for t in range(0, 500, 10):
            store.write_points([value(t + i, t + i, s) for s in range(5) for i in range(10)])
        done.set()
        for reader in readers:
            reader.join()
        assert not errors, errors[0]
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)


def test_the_bound_is_a_storage_setting_and_zero_turns_the_cache_off(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "s.duckdb", sample_cache_bytes=0)
    try:
        storage.metrics.write_points([value(1, 1, 0), hist(1, 1, 0)])
        assert read_values(storage.metrics, 0, 2**63 - 1) == truth_values(
            storage.metrics, 0, 2**63 - 1
        )
        assert storage.metrics.cache.nbytes == 0
    finally:
        storage.close()
    with pytest.raises(ValueError, match="sample cache limit must be >= 0 bytes"):
        SampleCache(-1)


def test_a_load_in_many_groups_while_a_writer_inserts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sample_loader, "CHUNK_BYTES", 100)  # a group per ~6 samples
    path = tmp_path / "m.duckdb"
    with opened(path, 1 << 20) as store:
        store.write_points([value(t, t, s) for t in range(20) for s in range(8)])
    with opened(path, 1 << 20) as store:
        stop = threading.Event()

        def write() -> None:
            t = 20
            while not stop.is_set() and t < 2000:
                store.write_points([value(t, t, s) for s in range(8)])
                t += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            first = [c.time_ns.tolist() for c in store.select_values("m", [], 0, 2**63 - 1)]
        finally:
            stop.set()
            writer.join()
        assert len(first) == 8
        for times in first:  # loaded while the writer went on: nothing lost, nothing twice
            assert times == [T0 + t * S for t in range(len(times))]
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
        assert not store.cache.missing(list(range(1, 9)))


def counted(store: DuckDBMetricStore) -> int:
    """The bytes of every cached array, counted afresh."""
    return sum(entry.nbytes for entry in store.cache._entries.values())


def test_rollback_after_the_bound_moved_the_horizon(tmp_path: Path) -> None:
    limit = 40 * 16 * 2
    with opened(tmp_path / "m.duckdb", limit) as store:
        store.write_points([value(t, t, s) for t in range(30) for s in range(2)])
        horizon = store.cache.horizon

        def aborted() -> None:
            with store._db.transaction() as txn:
                store.insert(txn, [value(t, t, s) for t in range(30, 60) for s in range(2)])
                assert store.cache.horizon > horizon  # `fit` ran inside the transaction
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            aborted()
        assert store.cache.nbytes == counted(store)
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
        store.write_points([value(t, -t, s) for t in range(30, 60) for s in range(2)])
        assert store.cache.nbytes == counted(store) <= limit
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)


def test_warm_cache_loads_every_series_within_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "m.duckdb"
    with opened(path, 1 << 20) as store:
        store.write_points([value(t, t, s) for t in range(50) for s in range(4)])
        store.write_points([hist(t, t, 9) for t in range(5)])
    with opened(path, 1 << 20) as store:
        store.warm_cache()
        assert store.cache.missing(list(range(1, 6))) == []
        assert store.cache.nbytes == counted(store) >= 200 * 16
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
    with opened(path, 1000) as store:  # room for fewer than all: the newest samples
        store.warm_cache()
        assert store.cache.horizon > T0
        assert store.cache.nbytes <= 1000
        assert read_values(store, 0, 2**63 - 1) == truth_values(store, 0, 2**63 - 1)
