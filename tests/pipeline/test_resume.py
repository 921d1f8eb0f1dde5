"""A restart goes on from the stored totals: RED, the service graph and SLOs over a range that
spans a restart count everything in it (they counted only what came after the restart: the
derived series started again at 0 and a two-sample growth saw a reset), on every store that
keeps data across a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.spans import Span, SpanKind, StatusCode
from meshscope.pipeline.chain import Pipeline, PipelineSettings
from meshscope.pipeline.derive.spanmetrics import DEFAULT_BUCKETS_MS, SpanMetrics
from meshscope.query.dependencies import dependencies
from meshscope.query.red import red
from meshscope.store.base import Storage
from tests.conformance.backends import BACKENDS, REOPEN, Backend

S = 10**9
MS = 10**6


@pytest.fixture(params=[b for b in BACKENDS if REOPEN not in b.cannot], ids=str)
def backend(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.param
    if reason := backend.available():
        pytest.skip(reason)
    return backend


def _calls(n: int, start_ns: int, failed: int = 0, service: str = "api") -> list[Span]:
    """`n` web -> `service` calls (CLIENT and SERVER spans of one trace each), 10 ms each;
    the first `failed` fail."""
    spans = []
    for i in range(n):
        trace = f"{start_ns // S:016x}{i:016x}"
        status = StatusCode.ERROR if i < failed else StatusCode.UNSET
        at = start_ns + i * MS
        client = Span(trace, f"{2 * i + 1:016x}", "GET", "web", at, at + 10 * MS,
                      kind=SpanKind.CLIENT, status_code=status)  # fmt: skip
        server = Span(trace, f"{2 * i + 2:016x}", "GET", service, at, at + 10 * MS,
                      client.span_id, SpanKind.SERVER, status)  # fmt: skip
        spans += [client, server]
    return spans


def _restarted(backend: Backend, tmp_path: Path, clock: ManualClock) -> tuple[Storage, Pipeline]:
    storage = backend.open(tmp_path)
    pipeline = Pipeline(storage, clock)
    assert pipeline.resume_derived() > 0
    return storage, pipeline


def test_red_and_edges_over_a_restart_count_both_runs(backend: Backend, tmp_path: Path) -> None:
    clock = ManualClock()
    start = clock.now_ns()
    storage = backend.open(tmp_path)
    before = Pipeline(storage, clock)
    before.consume(Batch(spans=_calls(20, clock.now_ns(), failed=4)))
    clock.advance(15)
    before.flush()
    storage.close()  # stopped (its last flush was on the way out)

    clock.advance(60)
    storage, after = _restarted(backend, tmp_path, clock)
    after.consume(Batch(spans=_calls(10, clock.now_ns(), failed=1)))
    clock.advance(15)
    after.flush()
    end = clock.now_ns()
    try:
        (row,) = [r for r in red(storage.metrics, start - S, end) if r.service == "api"]
        assert (row.calls, row.errors) == (30, 5)
        assert row.p50_ms == pytest.approx(10, rel=0.03)  # the exponential histogram went on
        found = dependencies(storage.metrics, start - S, end)
        edges = {(e.parent, e.child): e.calls for e in found}
        assert edges[("web", "api")] == 30
    finally:
        storage.close()


def test_only_the_last_runs_series_and_the_same_buckets_are_resumed(
    backend: Backend, tmp_path: Path
) -> None:
    """A service whose series stopped with an earlier run stays stopped (it is not flushed
    again for ever), and a histogram whose buckets changed starts again."""
    clock = ManualClock()
    storage = backend.open(tmp_path)
    first = Pipeline(storage, clock)
    first.consume(Batch(spans=_calls(3, clock.now_ns(), service="gone")))
    first.flush()
    clock.advance(3600)  # a later run, without "gone"
    second = Pipeline(storage, clock)
    second.consume(Batch(spans=_calls(3, clock.now_ns())))
    second.flush()
    storage.close()

    clock.advance(60)
    storage, third = _restarted(backend, tmp_path, clock)
    try:
        names = {(p.name, dict(p.labels).get("service_name")) for p in third.registry.collect(0)}
        assert ("calls_total", "api") in names and ("calls_total", "gone") not in names
        assert ("duration_milliseconds", "api") in names
        other = Pipeline(storage, clock)
        other._span_metrics = SpanMetrics(other.registry, (*DEFAULT_BUCKETS_MS, 10**9))
        other.resume_derived()
        kept = {p.name for p in other.registry.collect(0)}
        assert "calls_total" in kept and "duration_milliseconds" not in kept
    finally:
        storage.close()


def test_a_cluster_node_resumes_its_own_series_only(backend: Backend, tmp_path: Path) -> None:
    """Each node's series carry `meshscope_node`; a restarted node goes on from its own, and
    its flushes do not label them twice."""
    clock = ManualClock()
    start = clock.now_ns()
    storage = backend.open(tmp_path)
    a, b = (
        Pipeline(storage, clock, PipelineSettings(series_labels=(("meshscope_node", n),)))
        for n in ("a", "b")
    )
    a.consume(Batch(spans=_calls(4, clock.now_ns())))
    b.consume(Batch(spans=_calls(6, clock.now_ns() + S)))
    a.flush()
    b.flush()
    clock.advance(30)
    again = Pipeline(storage, clock, PipelineSettings(series_labels=(("meshscope_node", "a"),)))
    try:
        assert again.resume_derived() > 0
        assert all("meshscope_node" not in dict(p.labels) for p in again.registry.collect(0))
        again.consume(Batch(spans=_calls(1, clock.now_ns() + 2 * S)))
        again.flush()
        (row,) = [r for r in red(storage.metrics, start - S, clock.now_ns()) if r.service == "api"]
        assert row.calls == 4 + 6 + 1
    finally:
        storage.close()
