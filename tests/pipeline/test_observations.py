"""A group's metric updates made in one go equal the same updates made batch by batch (the
series may be made in another order)."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.clock import ManualClock
from meshscope.model.batch import Batch
from meshscope.model.calls import ProxyRequest
from meshscope.model.metrics import Labels, MetricPoint
from meshscope.pipeline.chain import Observations, Pipeline
from meshscope.store.memory import MemoryStorage
from tests.pipeline.test_servicegraph import make_trace


def _request(i: int) -> ProxyRequest:
    return ProxyRequest(
        service="api",
        time_ns=10**9 + i,
        duration_ns=(i % 7 + 1) * 10**6,
        status_code=500 if i % 5 == 0 else 200,
        source="web" if i % 3 else "",
        method="GET",
        path="/x",
    )


def _by_series(pipeline: Pipeline) -> dict[tuple[str, Labels], MetricPoint]:
    """The registry's points by series, histogram sums to 12 digits (a sum of the same
    floats in another grouping may differ in its last bit)."""
    points = {}
    for point in pipeline.registry.collect(0):
        if point.histogram is not None:
            total = float(f"{point.histogram.sum:.12g}")
            point = replace(point, histogram=replace(point.histogram, sum=total))
        points[point.name, point.labels] = point
    return points


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_observing_a_group_once_equals_observing_each_batch(data: st.DataObject) -> None:
    spans = [
        span
        for t in range(6)
        for span in make_trace(t, error_at=data.draw(st.sampled_from(["", "api", "db"])))
    ]
    order = data.draw(st.permutations(spans))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(order)), min_size=1, max_size=6)))
    edges = [0, *cuts, len(order)]
    batches = [
        Batch(spans=order[a:b], requests=[_request(a + k) for k in range(min(2, b - a))])
        for a, b in pairwise(edges)
    ]
    one_by_one = Pipeline(MemoryStorage(), ManualClock())
    grouped = Pipeline(MemoryStorage(), ManualClock())
    together = Observations()
    for batch in batches:
        one_by_one.derive([one_by_one.prepare(batch)])
        _, observations = grouped.derive_deferred([grouped.prepare(batch)])
        together.extend(observations)
    grouped.observe(together)
    expected = _by_series(one_by_one)
    assert _by_series(grouped) == expected
    names = {name for name, _ in expected}
    assert {"traces_service_graph_request_total", "mesh_requests_total", "calls_total"} <= names
